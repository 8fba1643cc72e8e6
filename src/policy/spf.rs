//! The hosts the `allow_spf` domains authorise to send their mail, from their SPF records.
//!
//! Owns the walk of SPF records (RFC 7208: `ip4:`, `ip6:`, `a`, `mx`, `include:`, `redirect=`,
//! at most 10 DNS-querying terms) into networks, each labelled with the record that allowed it,
//! and keeps the last good answer per domain when DNS fails. DNS itself is behind the
//! [`SpfResolver`] trait, so tests inject answers; the daemon calls [`SpfAllow::refresh`] at start
//! and every few hours and hands [`SpfAllow::networks`] to the engine. It never lists anybody.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// RFC 7208 section 4.6.4: at most 10 terms that query DNS.
pub const MAX_LOOKUPS: u32 = 10;
/// RFC 7208 section 4.6.4: an `mx` term looks up at most 10 MX hosts.
const MAX_MX: usize = 10;

/// A DNS failure as the SPF walk sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name has no records of the asked type (or does not exist).
    #[error("no such record")]
    NotFound,
    /// The query failed (timeout, SERVFAIL, no server): try again later.
    #[error("DNS failure: {0}")]
    Failed(String),
}

/// The three queries SPF needs.
pub trait SpfResolver {
    /// The TXT strings at `name` (each record's strings joined).
    fn txt(&self, name: &str) -> Result<Vec<String>, DnsError>;
    /// The A and AAAA addresses of `name`.
    fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError>;
    /// The MX host names of `name`.
    fn mx(&self, name: &str) -> Result<Vec<String>, DnsError>;
}

/// Why a domain's SPF could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpfError {
    /// DNS failed; the last good answer (if any) is kept.
    #[error("{domain}: {source}")]
    Dns {
        /// The name queried.
        domain: String,
        /// What failed.
        source: DnsError,
    },
    /// The domain publishes no `v=spf1` record.
    #[error("{0}: no SPF record (v=spf1)")]
    NoRecord(String),
    /// More than one `v=spf1` record (RFC 7208 permerror).
    #[error("{0}: more than one SPF record")]
    TwoRecords(String),
    /// More than 10 DNS-querying terms (RFC 7208 permerror).
    #[error("{0}: more than 10 DNS lookups")]
    TooManyLookups(String),
    /// A term that cannot be read.
    #[error("{domain}: cannot read SPF term {term:?}")]
    BadTerm {
        /// The record's domain.
        domain: String,
        /// The term.
        term: String,
    },
}

/// One authorised network and the record term that authorised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfNet {
    /// The network.
    pub net: IpNet,
    /// E.g. `example.org: include:_spf.example.net → _spf.example.net: ip4:192.0.2.0/24`.
    pub source: String,
}

/// Walks `domain`'s SPF record into the networks it authorises.
pub fn resolve(resolver: &dyn SpfResolver, domain: &str) -> Result<Vec<SpfNet>, SpfError> {
    let mut walk = Walk {
        resolver,
        lookups: 0,
        out: Vec::new(),
    };
    walk.record(domain, domain)?;
    Ok(walk.out)
}

struct Walk<'a> {
    resolver: &'a dyn SpfResolver,
    lookups: u32,
    out: Vec<SpfNet>,
}

impl Walk<'_> {
    fn count(&mut self, domain: &str) -> Result<(), SpfError> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(SpfError::TooManyLookups(domain.to_owned()));
        }
        Ok(())
    }

    fn dns<T>(&self, name: &str, r: Result<Vec<T>, DnsError>) -> Result<Vec<T>, SpfError> {
        match r {
            Ok(v) => Ok(v),
            Err(DnsError::NotFound) => Ok(Vec::new()),
            Err(source) => Err(SpfError::Dns {
                domain: name.to_owned(),
                source,
            }),
        }
    }

    fn record(&mut self, domain: &str, path: &str) -> Result<(), SpfError> {
        let txt = self.resolver.txt(domain);
        let records: Vec<String> = self
            .dns(domain, txt)?
            .into_iter()
            .filter(|t| {
                let t = t.trim_start().to_ascii_lowercase();
                t == "v=spf1" || t.starts_with("v=spf1 ")
            })
            .collect();
        let record = match records.as_slice() {
            [] => return Err(SpfError::NoRecord(domain.to_owned())),
            [one] => one.clone(),
            _ => return Err(SpfError::TwoRecords(domain.to_owned())),
        };
        let mut redirect = None;
        let mut has_all = false;
        for term in record.split_ascii_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            if let Some(target) = lower.strip_prefix("redirect=") {
                redirect = Some(target.to_owned());
                continue;
            }
            if lower.contains('=') {
                continue; // exp= and unknown modifiers
            }
            let (pass, mech) = match lower.as_bytes().first() {
                Some(b'+') => (true, &lower[1..]),
                Some(b'-' | b'~' | b'?') => (false, &lower[1..]),
                _ => (true, lower.as_str()),
            };
            let here = format!("{path}: {term}");
            let (name, arg) = mech
                .split_once(':')
                .map_or((mech, None), |(n, a)| (n, Some(a)));
            let (name, cidr) = match name.split_once('/') {
                Some((n, c)) => (n, Some(c)),
                None => (name, None),
            };
            match name {
                "all" => has_all = true,
                "ip4" | "ip6" => {
                    if pass {
                        let text = arg.unwrap_or_default();
                        let net = text
                            .parse::<IpNet>()
                            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| self.bad(domain, term))?;
                        self.out.push(SpfNet { net, source: here });
                    }
                }
                "a" | "mx" => {
                    self.count(domain)?;
                    let (target, cidr) = split_cidr(arg.unwrap_or(domain), cidr);
                    if target.contains('%') || !pass {
                        continue; // macros cannot be expanded without a client
                    }
                    let (v4, v6) = cidr_lengths(cidr).ok_or_else(|| self.bad(domain, term))?;
                    let hosts = if name == "a" {
                        vec![target.to_owned()]
                    } else {
                        let mx = self.resolver.mx(target);
                        let mut m = self.dns(target, mx)?;
                        m.truncate(MAX_MX);
                        m
                    };
                    for host in hosts {
                        let answer = self.resolver.addresses(&host);
                        for ip in self.dns(&host, answer)? {
                            let len = if ip.is_ipv4() { v4 } else { v6 };
                            if let Ok(net) = IpNet::new(ip, len) {
                                self.out.push(SpfNet {
                                    net: net.trunc(),
                                    source: here.clone(),
                                });
                            }
                        }
                    }
                }
                "include" => {
                    self.count(domain)?;
                    let target = arg.ok_or_else(|| self.bad(domain, term))?;
                    if target.contains('%') {
                        continue;
                    }
                    if pass {
                        self.record(target, &format!("{here} → {target}"))?;
                    }
                }
                "exists" | "ptr" => self.count(domain)?,
                _ => return Err(self.bad(domain, term)),
            }
        }
        match redirect {
            Some(target) if !has_all && !target.contains('%') => {
                self.count(domain)?;
                self.record(&target, &format!("{path}: redirect={target} → {target}"))
            }
            _ => Ok(()),
        }
    }

    fn bad(&self, domain: &str, term: &str) -> SpfError {
        SpfError::BadTerm {
            domain: domain.to_owned(),
            term: term.to_owned(),
        }
    }
}

/// Splits `a:host/24` style arguments: the CIDR may trail the domain.
fn split_cidr<'a>(target: &'a str, cidr: Option<&'a str>) -> (&'a str, Option<&'a str>) {
    match (cidr, target.split_once('/')) {
        (None, Some((t, c))) => (t, Some(c)),
        _ => (target, cidr),
    }
}

/// `24`, `//64` or `24//64` into (IPv4, IPv6) prefix lengths.
fn cidr_lengths(cidr: Option<&str>) -> Option<(u8, u8)> {
    let Some(c) = cidr else {
        return Some((32, 128));
    };
    let (v4, v6) = match c.split_once("//") {
        Some((a, b)) => (a, Some(b)),
        None if c.starts_with('/') => ("", Some(&c[1..])),
        None => (c, None),
    };
    let v4 = if v4.is_empty() {
        32
    } else {
        v4.parse().ok().filter(|&n| n <= 32)?
    };
    let v6 = match v6 {
        Some(s) => s.parse().ok().filter(|&n| n <= 128)?,
        None => 128,
    };
    Some((v4, v6))
}

/// The last good answer per `allow_spf` domain.
#[derive(Debug, Clone, Default)]
pub struct SpfAllow {
    domains: BTreeMap<String, Vec<SpfNet>>,
}

impl SpfAllow {
    /// Resolves every domain again; a domain whose lookup fails keeps its last good answer. Returns
    /// the failures (to be logged); the daemon calls this at start and every few hours.
    pub fn refresh(&mut self, resolver: &dyn SpfResolver, domains: &[String]) -> Vec<SpfError> {
        let mut errors = Vec::new();
        self.domains.retain(|d, _| domains.contains(d));
        for domain in domains {
            match resolve(resolver, domain) {
                Ok(nets) => {
                    self.domains.insert(domain.clone(), nets);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Every authorised network with the record that allowed it, for [`super::engine::Engine::set_spf`].
    pub fn networks(&self) -> Vec<(IpNet, String)> {
        self.domains
            .values()
            .flatten()
            .map(|n| (n.net, n.source.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        txt: HashMap<String, Vec<String>>,
        addr: HashMap<String, Vec<IpAddr>>,
        mx: HashMap<String, Vec<String>>,
        down: Cell<bool>,
    }

    impl Fake {
        fn get<T: Clone>(&self, m: &HashMap<String, Vec<T>>, n: &str) -> Result<Vec<T>, DnsError> {
            if self.down.get() {
                return Err(DnsError::Failed("timeout".into()));
            }
            m.get(n).cloned().ok_or(DnsError::NotFound)
        }
    }

    impl SpfResolver for Fake {
        fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
            self.get(&self.txt, name)
        }
        fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
            self.get(&self.addr, name)
        }
        fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
            self.get(&self.mx, name)
        }
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.txt.insert(
            "example.org".into(),
            vec![
                "google-site-verification=x".into(),
                "v=spf1 ip4:192.0.2.0/25 a mx:example.org/28 include:_spf.example.net -ip4:192.0.2.200 ~all".into(),
            ],
        );
        f.txt.insert(
            "_spf.example.net".into(),
            vec!["v=spf1 ip6:2001:db8:5::/48 redirect=_rest.example.net".into()],
        );
        f.txt.insert(
            "_rest.example.net".into(),
            vec!["v=spf1 ip4:203.0.113.64/26 -all".into()],
        );
        f.addr
            .insert("example.org".into(), vec!["198.51.100.10".parse().unwrap()]);
        f.mx.insert("example.org".into(), vec!["mx1.example.org".into()]);
        f.addr.insert(
            "mx1.example.org".into(),
            vec![
                "198.51.100.33".parse().unwrap(),
                "2001:db8:6::25".parse().unwrap(),
            ],
        );
        f
    }

    #[test]
    fn every_mechanism_becomes_a_labelled_network() {
        let nets = resolve(&fake(), "example.org").unwrap();
        let got: Vec<String> = nets.iter().map(|n| n.net.to_string()).collect();
        assert_eq!(
            got,
            [
                "192.0.2.0/25",
                "198.51.100.10/32",
                "198.51.100.32/28",
                "2001:db8:6::25/128",
                "2001:db8:5::/48",
                "203.0.113.64/26"
            ]
        );
        assert_eq!(
            nets[5].source,
            "example.org: include:_spf.example.net → _spf.example.net: redirect=_rest.example.net → _rest.example.net: ip4:203.0.113.64/26"
        );
        assert!(
            !got.contains(&"192.0.2.200/32".to_string()),
            "a fail term allows nothing"
        );
    }

    #[test]
    fn more_than_ten_lookups_is_an_error() {
        let mut f = Fake::default();
        f.txt.insert(
            "loop.example".into(),
            vec!["v=spf1 a a a a a a a a a a a -all".into()],
        );
        assert_eq!(
            resolve(&f, "loop.example"),
            Err(SpfError::TooManyLookups("loop.example".into()))
        );
        f.txt.insert(
            "self.example".into(),
            vec!["v=spf1 include:self.example".into()],
        );
        assert!(matches!(
            resolve(&f, "self.example"),
            Err(SpfError::TooManyLookups(_))
        ));
    }

    #[test]
    fn a_dns_failure_keeps_the_last_good_answer() {
        let f = fake();
        let mut allow = SpfAllow::default();
        let domains = vec!["example.org".to_string()];
        assert!(allow.refresh(&f, &domains).is_empty());
        let before = allow.networks();
        assert_eq!(before.len(), 6);
        f.down.set(true);
        let errors = allow.refresh(&f, &domains);
        assert_eq!(errors.len(), 1);
        assert_eq!(allow.networks(), before);
    }

    #[test]
    fn cidr_suffixes_are_read_both_ways() {
        assert_eq!(cidr_lengths(None), Some((32, 128)));
        assert_eq!(cidr_lengths(Some("24")), Some((24, 128)));
        assert_eq!(cidr_lengths(Some("24//64")), Some((24, 64)));
        assert_eq!(cidr_lengths(Some("/64")), Some((32, 64)));
        assert_eq!(cidr_lengths(Some("33")), None);
    }
}
