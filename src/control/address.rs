//! The address an operator names on the command line or in a request: a host or a prefix.
//!
//! Owns only parsing and printing; it never decides what is listed (the policy and the state do).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 or IPv6 host (`192.0.2.7`, `2001:db8::7`) or a CIDR prefix (`198.51.100.0/24`,
/// `2001:db8:1:2::/64`). A host is held as a full-length prefix (/32 or /128). Host bits below
/// the prefix length are cleared, so `192.0.2.7/24` means `192.0.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(IpNet);

/// The text was neither an address nor a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {text:?}: expected an IPv4 or IPv6 address or a CIDR prefix, e.g. 192.0.2.7, 2001:db8::7, 198.51.100.0/24 or 2001:db8:1:2::/64")]
pub struct BadAddress {
    /// What was given.
    pub text: String,
}

impl Address {
    /// The prefix (a host is a /32 or /128).
    pub fn net(self) -> IpNet {
        self.0
    }

    /// Whether this names a single host rather than a wider prefix.
    pub fn is_host(self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }

    /// Whether `other` lies inside this prefix (a host contains only itself).
    pub fn contains(self, other: Address) -> bool {
        self.0.contains(&other.0)
    }
}

impl From<IpNet> for Address {
    fn from(net: IpNet) -> Self {
        Address(net.trunc())
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        Address(IpNet::from(ip))
    }
}

impl FromStr for Address {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let bad = || BadAddress { text: s.to_owned() };
        if text.contains('/') {
            text.parse::<IpNet>().map(Address::from).map_err(|_| bad())
        } else {
            text.parse::<IpAddr>().map(Address::from).map_err(|_| bad())
        }
    }
}

/// Hosts print as a bare address, prefixes in CIDR notation.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_prefixes_of_both_families_parse_and_print_back() {
        for text in [
            "192.0.2.7",
            "2001:db8::7",
            "198.51.100.0/24",
            "2001:db8:1:2::/64",
        ] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
        assert!("192.0.2.7".parse::<Address>().unwrap().is_host());
        assert!(!"198.51.100.0/24".parse::<Address>().unwrap().is_host());
    }

    #[test]
    fn host_bits_of_a_prefix_are_cleared() {
        let a: Address = "192.0.2.77/24".parse().unwrap();
        assert_eq!(a.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn a_host_inside_a_listed_slash_64_is_contained() {
        let net: Address = "2001:db8:1:2::/64".parse().unwrap();
        let host: Address = "2001:db8:1:2::25".parse().unwrap();
        assert!(net.contains(host));
        assert!(!host.contains(net));
    }

    #[test]
    fn garbage_is_refused_with_what_was_expected() {
        for text in ["", "mail.example.org", "192.0.2.300", "192.0.2.0/33", "::/"] {
            let err = text.parse::<Address>().unwrap_err();
            assert!(
                err.to_string().contains("expected an IPv4 or IPv6 address"),
                "{err}"
            );
        }
    }
}
