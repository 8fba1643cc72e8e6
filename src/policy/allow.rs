//! Who is never listed: loopback, the host's own addresses, the `allow` networks, the hosts of
//! the `allow_spf` domains, and the servers our MTA delivered to recently.
//!
//! Owns the lookups (by address, per event, and by prefix overlap, per listing) and the reason
//! each answer gives. It never resolves names (SPF answers come in from [`super::spf`]) and
//! never reads the clock: times are passed in.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::config::is_always_allowed;
use super::key::{mask, to_u128};

/// Why an address is never listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowReason {
    /// Loopback, unspecified or link-local.
    Special,
    /// One of this host's own addresses.
    Own,
    /// Inside a network of the `allow` list.
    Network(IpNet),
    /// Authorised by an SPF record of an `allow_spf` domain; the text names the record.
    Spf(String),
    /// Our MTA delivered mail to it at this Unix time.
    Delivered(i64),
}

impl std::fmt::Display for AllowReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowReason::Special => f.write_str("loopback, unspecified or link-local address"),
            AllowReason::Own => f.write_str("one of this host's own addresses"),
            AllowReason::Network(n) => write!(f, "inside allowed network {n}"),
            AllowReason::Spf(s) => write!(f, "authorised by SPF: {s}"),
            AllowReason::Delivered(t) => write!(f, "our MTA delivered mail to it (unix time {t})"),
        }
    }
}

/// A set of networks with a label each, looked up by one hash probe per distinct prefix length.
#[derive(Debug, Clone, Default)]
pub struct NetSet {
    nets: Vec<(IpNet, String)>,
    /// (is IPv6, prefix length in the u128 form, masked address -> index into `nets`).
    by_len: Vec<(bool, u8, FxHashMap<u128, usize>)>,
}

impl NetSet {
    /// Builds the set from labelled networks.
    pub fn new(nets: Vec<(IpNet, String)>) -> Self {
        let mut by_len: Vec<(bool, u8, FxHashMap<u128, usize>)> = Vec::new();
        for (i, (net, _)) in nets.iter().enumerate() {
            let v6 = matches!(net, IpNet::V6(_));
            let len = wide_len(net);
            let slot = match by_len.iter().position(|(b, l, _)| *b == v6 && *l == len) {
                Some(p) => p,
                None => {
                    by_len.push((v6, len, FxHashMap::default()));
                    by_len.len() - 1
                }
            };
            by_len[slot]
                .2
                .entry(mask(to_u128(net.network()), len))
                .or_insert(i);
        }
        NetSet { nets, by_len }
    }

    /// The label of a network holding `ip`.
    pub fn find(&self, ip: IpAddr) -> Option<(&IpNet, &str)> {
        let v6 = ip.is_ipv6();
        let a = to_u128(ip);
        self.by_len
            .iter()
            .filter(|(b, _, _)| *b == v6)
            .find_map(|(_, len, map)| map.get(&mask(a, *len)))
            .map(|&i| (&self.nets[i].0, self.nets[i].1.as_str()))
    }

    /// The label of a network that overlaps `net` (contains it or lies inside it).
    pub fn overlapping(&self, net: &IpNet) -> Option<(&IpNet, &str)> {
        self.nets
            .iter()
            .find(|(n, _)| n.contains(net) || net.contains(n))
            .map(|(n, l)| (n, l.as_str()))
    }

    /// How many networks.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The prefix length of `net` within the u128 form of its addresses (IPv4 lives in the last 32 bits).
fn wide_len(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(n) => 96 + n.prefix_len(),
        IpNet::V6(n) => n.prefix_len(),
    }
}

/// The whole allowlist. Deliveries are remembered by host and, for IPv6, by the counted prefix
/// and its /48, so a listing of a prefix can see a correspondent inside it.
#[derive(Debug, Clone)]
pub struct Allowlist {
    own: Vec<IpAddr>,
    networks: NetSet,
    spf: NetSet,
    delivered_for: i64,
    ipv6_prefix: u8,
    delivered: FxHashMap<IpAddr, i64>,
    delivered_v6_prefixes: FxHashMap<(u128, u8), i64>,
    cleaned_at_len: usize,
}

impl Allowlist {
    /// An allowlist of the host's own addresses and the configured networks.
    pub fn new(own: Vec<IpAddr>, allow: &[IpNet], delivered_for: i64, ipv6_prefix: u8) -> Self {
        let networks = NetSet::new(allow.iter().map(|n| (*n, n.to_string())).collect());
        Allowlist {
            own,
            networks,
            spf: NetSet::default(),
            delivered_for,
            ipv6_prefix,
            delivered: FxHashMap::default(),
            delivered_v6_prefixes: FxHashMap::default(),
            cleaned_at_len: 1024,
        }
    }

    /// Replaces the SPF-authorised networks (labels say which record allowed each).
    pub fn set_spf(&mut self, nets: Vec<(IpNet, String)>) {
        self.spf = NetSet::new(nets);
    }

    /// Remembers that our MTA delivered to `ip` at Unix time `now`.
    pub fn delivered(&mut self, ip: IpAddr, now: i64) {
        self.delivered.insert(ip, now);
        if ip.is_ipv6() {
            let a = to_u128(ip);
            for len in [self.ipv6_prefix, 48] {
                self.delivered_v6_prefixes.insert((mask(a, len), len), now);
            }
        }
        // Forget old correspondents whenever the map has doubled, so it stays bounded by the
        // correspondents of one `allow_delivered_for` period, at O(1) amortised cost.
        if self.delivered.len() >= self.cleaned_at_len * 2 {
            let horizon = now - self.delivered_for;
            self.delivered.retain(|_, t| *t > horizon);
            self.delivered_v6_prefixes.retain(|_, t| *t > horizon);
            self.cleaned_at_len = self.delivered.len().max(1024);
        }
    }

    /// Why `ip` is never listed at Unix time `now`, if it is not.
    pub fn allows(&self, ip: IpAddr, now: i64) -> Option<AllowReason> {
        if is_always_allowed(ip) {
            return Some(AllowReason::Special);
        }
        if self.own.contains(&ip) {
            return Some(AllowReason::Own);
        }
        if let Some((n, _)) = self.networks.find(ip) {
            return Some(AllowReason::Network(*n));
        }
        if let Some((_, label)) = self.spf.find(ip) {
            return Some(AllowReason::Spf(label.to_owned()));
        }
        match self.delivered.get(&ip) {
            Some(&t) if now - t < self.delivered_for => Some(AllowReason::Delivered(t)),
            _ => None,
        }
    }

    /// Why some never-listed address lies inside `net` at `now`, if one does. Checked before any
    /// listing, so a prefix that holds an allowed host is never listed.
    pub fn allows_some_of(&self, net: &IpNet, now: i64) -> Option<AllowReason> {
        if net.prefix_len() == net.max_prefix_len() {
            return self.allows(net.addr(), now);
        }
        let special: [IpNet; 4] = [
            IpNet::V4(ipnet::Ipv4Net::new_assert([127, 0, 0, 0].into(), 8)),
            IpNet::V4(ipnet::Ipv4Net::new_assert([169, 254, 0, 0].into(), 16)),
            IpNet::V6(ipnet::Ipv6Net::new_assert(
                std::net::Ipv6Addr::LOCALHOST,
                128,
            )),
            IpNet::V6(ipnet::Ipv6Net::new_assert(
                std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
                10,
            )),
        ];
        if special.iter().any(|s| s.contains(net) || net.contains(s)) {
            return Some(AllowReason::Special);
        }
        if self.own.iter().any(|a| net.contains(a)) {
            return Some(AllowReason::Own);
        }
        if let Some((n, _)) = self.networks.overlapping(net) {
            return Some(AllowReason::Network(*n));
        }
        if let Some((_, label)) = self.spf.overlapping(net) {
            return Some(AllowReason::Spf(label.to_owned()));
        }
        if let IpNet::V6(v6) = net {
            let len = v6.prefix_len();
            let key = (mask(to_u128(net.addr()), len), len);
            if let Some(&t) = self.delivered_v6_prefixes.get(&key) {
                if now - t < self.delivered_for {
                    return Some(AllowReason::Delivered(t));
                }
            }
        }
        None
    }
}

/// A case-insensitive glob (`*` any run, `?` one character) over recipient addresses.
#[derive(Debug, Clone)]
pub struct Glob(Vec<char>);

impl Glob {
    /// Compiles `pattern` (lowercased).
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.trim().to_lowercase().chars().collect())
    }

    /// Whether `text` (already lowercased) matches.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let p = &self.0;
        // Iterative matcher with one backtrack point for the last `*`: linear in practice.
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_admin_addresses_case_insensitively() {
        let g = Glob::new("*-owner@Example.org");
        assert!(g.matches("list-owner@example.org"));
        assert!(!g.matches("list-owner@example.org.evil"));
        assert!(!g.matches("owner@example.org"));
        assert!(Glob::new("trap?@example.org").matches("trap1@example.org"));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
    }

    #[test]
    fn networks_are_found_by_address_and_by_overlap() {
        let set = NetSet::new(vec![
            ("192.0.2.0/24".parse().unwrap(), "a".into()),
            ("2001:db8:1::/48".parse().unwrap(), "b".into()),
        ]);
        assert_eq!(set.find("192.0.2.9".parse().unwrap()).unwrap().1, "a");
        assert!(set.find("192.0.3.9".parse().unwrap()).is_none());
        assert_eq!(set.find("2001:db8:1:5::1".parse().unwrap()).unwrap().1, "b");
        assert!(set.overlapping(&"2001:db8::/32".parse().unwrap()).is_some());
        assert!(set
            .overlapping(&"2001:db8:1:7::/64".parse().unwrap())
            .is_some());
        assert!(set
            .overlapping(&"2001:db8:2::/48".parse().unwrap())
            .is_none());
    }

    #[test]
    fn a_correspondent_protects_its_prefix_until_the_period_ends() {
        let mut a = Allowlist::new(vec![], &[], 100, 64);
        a.delivered("2001:db8:5:6::25".parse().unwrap(), 1000);
        let p64: IpNet = "2001:db8:5:6::/64".parse().unwrap();
        let p48: IpNet = "2001:db8:5::/48".parse().unwrap();
        assert!(a.allows_some_of(&p64, 1050).is_some());
        assert!(a.allows_some_of(&p48, 1050).is_some());
        assert!(a.allows_some_of(&p64, 1100).is_none());
    }
}
