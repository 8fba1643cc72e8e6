//! Offender keys: an address, or the IPv6 prefix it is counted under, as one integer.
//!
//! Owns the mapping between addresses, prefixes and the compact `u128` form the engine's tables
//! are keyed by (IPv4 as its IPv4-mapped IPv6 form). Pure arithmetic; nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The `u128` form of an address: IPv6 as is, IPv4 as `::ffff:a.b.c.d`.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `a` with all but its first `len` bits cleared.
pub fn mask(a: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => a,
        l => a & (u128::MAX << (128 - u32::from(l))),
    }
}

/// What an offender is counted as: one IPv4 host, or one IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The masked address in `u128` form.
    pub addr: u128,
    /// The prefix length of the IPv6 prefix, or 32 for an IPv4 host.
    pub len: u8,
    /// Whether this is an IPv6 prefix.
    pub v6: bool,
}

impl Key {
    /// The key `ip` is counted under, IPv6 per `/ipv6_prefix`.
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> Key {
        match ip {
            IpAddr::V4(_) => Key {
                addr: to_u128(ip),
                len: 32,
                v6: false,
            },
            IpAddr::V6(v6) => Key {
                addr: mask(u128::from(v6), ipv6_prefix),
                len: ipv6_prefix,
                v6: true,
            },
        }
    }

    /// The same address widened to a shorter IPv6 prefix.
    pub fn widened(self, len: u8) -> Key {
        Key {
            addr: mask(self.addr, len),
            len,
            v6: self.v6,
        }
    }

    /// As a network: `198.51.100.7/32`, `2001:db8:1:2::/64`.
    pub fn net(self) -> IpNet {
        if self.v6 {
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::from(self.addr),
                self.len.min(128),
            ))
        } else {
            // The low 32 bits of the mapped form are the IPv4 address.
            let v4 = Ipv4Addr::from((self.addr & 0xffff_ffff) as u32);
            IpNet::V4(Ipv4Net::new_assert(v4, 32))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_hosts_and_ipv6_prefixes_round_trip_to_networks() {
        let k = Key::of("198.51.100.7".parse().unwrap(), 64);
        assert_eq!(k.net().to_string(), "198.51.100.7/32");
        let k = Key::of("2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
        assert_eq!(k.net().to_string(), "2001:db8:1:2::/64");
        assert_eq!(k.widened(48).net().to_string(), "2001:db8:1::/48");
        assert_eq!(mask(u128::MAX, 0), 0);
    }
}
