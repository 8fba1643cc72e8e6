//! The policy's configuration: the `mode`, `policy` and `ban` keys of the daemon's YAML.
//!
//! Owns the typed settings and their defaults, and a small loader for the three keys it knows
//! ([`load_policy_section`]); every other top-level key is left to the daemon's own config. It
//! never resolves names or reads clocks: a loaded [`PolicyConfig`] is plain data.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::event::EventClass;

/// `enforce` lists offenders; `dry-run` decides the same but enforces nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decisions are carried out.
    #[default]
    Enforce,
    /// Decisions are recorded and marked as not enforced.
    DryRun,
}

/// The default weight of each event class, chosen by how clearly the class marks unwanted mail.
///
/// | class | weight | why |
/// |---|---|---|
/// | rbl-listed | 5 | a blocklist already judged the host |
/// | relay-denied | 5 | nobody legitimate relays through a stranger's MX |
/// | protocol-violation | 4 | pregreet, pipelining, bare newlines: bots, not MTAs |
/// | auth-failed | 3 | password guessing |
/// | unknown-recipient | 2 | dictionary attacks; a typo now and then stays below the threshold |
/// | helo-rejected | 2 | bad HELO names are common for bots, rare but possible for misconfigured MTAs |
/// | client-rejected | 2 | no rDNS or an access entry |
/// | sender-rejected | 2 | forged or unresolvable senders |
/// | content-rejected | 2 | a spam filter said no |
/// | policy-rejected | 1 | greylisting and policy services also turn away honest first attempts |
/// | rate-limited | 1 | honest bulk senders hit limits too |
pub fn default_weight(class: EventClass) -> u32 {
    match class {
        EventClass::RblListed | EventClass::RelayDenied => 5,
        EventClass::ProtocolViolation => 4,
        EventClass::AuthFailed => 3,
        EventClass::UnknownRecipient
        | EventClass::HeloRejected
        | EventClass::ClientRejected
        | EventClass::SenderRejected
        | EventClass::ContentRejected => 2,
        EventClass::PolicyRejected | EventClass::RateLimited => 1,
    }
}

/// The `policy:` section: who gets listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The sliding window scores are summed over (default 1h).
    pub window: HumanDuration,
    /// The weighted score within `window` that lists an offender (default 10).
    pub threshold: u32,
    /// Weights per event class; classes not named keep [`default_weight`].
    pub weights: BTreeMap<EventClass, u32>,
    /// What a rejected bounce (null sender `<>`) scores instead of its class weight (default 5).
    pub backscatter_weight: u32,
    /// Glob patterns (`*`, `?`, case-insensitive) of recipients whose every rejected attempt
    /// scores `protected_weight`.
    pub protected: Vec<String>,
    /// What an attempt to a protected recipient scores (default: the threshold).
    pub protected_weight: Option<u32>,
    /// Spam-trap recipients (globs): any rejected attempt lists at once.
    pub traps: Vec<String>,
    /// The Nth 5xx-refused attempt from one client to one recipient within the window lists it
    /// (default 3; 0 turns the rule off).
    pub repeat_after_hardfail: u32,
    /// Networks never listed (default: RFC 1918 and RFC 4193 ranges; a list given replaces it).
    /// A plain address means that one host.
    #[serde(deserialize_with = "nets_or_hosts")]
    pub allow: Vec<IpNet>,
    /// Domains whose SPF-authorised hosts are never listed.
    pub allow_spf: Vec<String>,
    /// The name server (`address:port`) SPF records are looked up at; the system's resolvers
    /// (`/etc/resolv.conf`) when absent.
    pub spf_nameserver: Option<std::net::SocketAddr>,
    /// Hosts our MTA delivered mail to are never listed for this long (default 30d).
    pub allow_delivered_for: HumanDuration,
    /// IPv6 offenders are counted and listed per prefix of this length (default 64).
    pub ipv6_prefix: u8,
    /// When this many IPv6 prefixes inside one /48 are listed at once, the /48 is listed
    /// (default 4; 0 turns widening off).
    pub ipv6_widen_after: u32,
}

/// Reads a list of networks where a plain address stands for its host prefix (/32, /128), as
/// an operator writes an allowlist.
fn nets_or_hosts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Ok(Vec::<NetOrHost>::deserialize(d)?
        .into_iter()
        .map(|n| n.0)
        .collect())
}

/// One allowlist entry; parsed one by one so that an error points at the entry.
struct NetOrHost(IpNet);

impl<'de> Deserialize<'de> for NetOrHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let item = String::deserialize(d)?;
        let item = item.trim();
        item.parse::<IpNet>()
            .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
            .map(NetOrHost)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{item:?} is neither an address nor a network (e.g. 192.0.2.7 or 2001:db8::/48)"
                ))
            })
    }
}

/// The default `allow` list: the private ranges of RFC 1918 and RFC 4193.
pub fn default_allow() -> Vec<IpNet> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            window: HumanDuration(Duration::from_secs(3600)),
            threshold: 10,
            weights: BTreeMap::new(),
            backscatter_weight: 5,
            protected: Vec::new(),
            protected_weight: None,
            traps: Vec::new(),
            repeat_after_hardfail: 3,
            allow: default_allow(),
            allow_spf: Vec::new(),
            spf_nameserver: None,
            allow_delivered_for: HumanDuration(Duration::from_secs(30 * 86400)),
            ipv6_prefix: 64,
            ipv6_widen_after: 4,
        }
    }
}

impl PolicyConfig {
    /// The weight of `class`: the configured one, else [`default_weight`].
    pub fn weight(&self, class: EventClass) -> u32 {
        self.weights
            .get(&class)
            .copied()
            .unwrap_or_else(|| default_weight(class))
    }

    /// What an attempt to a protected recipient scores.
    pub fn protected_weight(&self) -> u32 {
        self.protected_weight.unwrap_or(self.threshold)
    }
}

/// The `ban:` section: how long listings last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanConfig {
    /// The first listing's length (default 1h).
    pub first: HumanDuration,
    /// Each repeat offence multiplies the length by this (default 4).
    pub factor: f64,
    /// No listing is longer than this (default 28d).
    pub max: HumanDuration,
    /// An offender's history is forgotten after this long without a listing (default 90d).
    pub forget_after: HumanDuration,
    /// Spread each length by up to ± this fraction (0 to 0.5; default 0, none), so a botnet's
    /// listings do not all end in the same second. Derived from the address, so replays repeat.
    pub jitter: f64,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig {
            first: HumanDuration(Duration::from_secs(3600)),
            factor: 4.0,
            max: HumanDuration(Duration::from_secs(28 * 86400)),
            forget_after: HumanDuration(Duration::from_secs(90 * 86400)),
            jitter: 0.0,
        }
    }
}

/// The three keys of the daemon's config that the policy reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicySection {
    /// `enforce` or `dry-run`.
    pub mode: Mode,
    /// Who gets listed.
    pub policy: PolicyConfig,
    /// How long.
    pub ban: BanConfig,
}

/// A policy config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The YAML is malformed or a value is of the wrong kind; the message carries line and column.
    #[error("{path}: {error}")]
    Yaml {
        /// The file.
        path: String,
        /// What serde_yaml_ng found, with its position.
        error: serde_yaml_ng::Error,
    },
    /// A value has the right kind but cannot be used.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The key, e.g. `policy.ipv6_prefix`.
        key: &'static str,
        /// What is wrong and what would be right.
        problem: String,
    },
}

/// Reads `mode:`, `policy:` and `ban:` from the YAML file at `path`; other top-level keys are
/// ignored (they belong to the daemon's config). Missing keys take their defaults.
pub fn load_policy_section(path: &Path) -> Result<PolicySection, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse_policy_section(&path.display().to_string(), &text)
}

/// Parses the policy's keys from YAML text; `label` names the source in errors.
pub fn parse_policy_section(label: &str, text: &str) -> Result<PolicySection, ConfigError> {
    // Only the three keys are deserialised (strictly); serde skips the other top-level keys.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Whole {
        mode: Mode,
        policy: PolicyConfig,
        ban: BanConfig,
    }
    let whole: Whole = if text.trim().is_empty() {
        Whole::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|error| ConfigError::Yaml {
            path: label.to_owned(),
            error,
        })?
    };
    let section = PolicySection {
        mode: whole.mode,
        policy: whole.policy,
        ban: whole.ban,
    };
    check_values(&section.policy, &section.ban).map_err(|bad| ConfigError::Invalid {
        path: label.to_owned(),
        key: bad.key,
        problem: bad.problem,
    })?;
    Ok(section)
}

/// A policy or ban value that parses but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct BadValue {
    /// The key, e.g. `policy.ipv6_prefix`.
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub problem: String,
}

/// Checks the values that parsing alone cannot (window, threshold, prefix length, patterns,
/// the ban durations).
pub fn check_values(p: &PolicyConfig, b: &BanConfig) -> Result<(), BadValue> {
    let invalid = |key: &'static str, problem: String| BadValue { key, problem };
    if p.window.get().as_secs() < 1 {
        return Err(invalid("policy.window", "must be at least 1s".into()));
    }
    if p.threshold == 0 {
        return Err(invalid(
            "policy.threshold",
            "must be at least 1 (0 would list every client on its first rejection)".into(),
        ));
    }
    if !(1..=128).contains(&p.ipv6_prefix) {
        return Err(invalid(
            "policy.ipv6_prefix",
            format!(
                "{} is not a prefix length; use 1 to 128 (usually 64)",
                p.ipv6_prefix
            ),
        ));
    }
    for pattern in p.protected.iter().chain(&p.traps) {
        if pattern.trim().is_empty() {
            return Err(invalid(
                "policy.protected/traps",
                "an empty pattern would match nothing; remove it".into(),
            ));
        }
    }
    if b.first.get().as_secs() < 1 {
        return Err(invalid("ban.first", "must be at least 1s".into()));
    }
    if !(b.factor.is_finite() && b.factor >= 1.0) {
        return Err(invalid(
            "ban.factor",
            format!("{} must be a number of at least 1", b.factor),
        ));
    }
    if b.max < b.first {
        return Err(invalid(
            "ban.max",
            format!("{} is shorter than ban.first ({})", b.max, b.first),
        ));
    }
    if !(0.0..=0.5).contains(&b.jitter) {
        return Err(invalid(
            "ban.jitter",
            format!("{} must be a fraction from 0 to 0.5", b.jitter),
        ));
    }
    Ok(())
}

/// Whether `ip` is loopback, unspecified or link-local: never listed, whatever the config says.
pub fn is_always_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let s = parse_policy_section("t", "").unwrap();
        assert_eq!(s.mode, Mode::Enforce);
        assert_eq!(s.policy.threshold, 10);
        assert_eq!(s.policy.window.get(), Duration::from_secs(3600));
        assert_eq!(s.policy.protected_weight(), 10);
        assert_eq!(s.policy.weight(EventClass::UnknownRecipient), 2);
        assert_eq!(s.policy.allow.len(), 4);
        assert_eq!(s.ban.first.get(), Duration::from_secs(3600));
        assert_eq!(s.ban.max.get(), Duration::from_secs(28 * 86400));
    }

    #[test]
    fn the_issue_example_loads_and_other_sections_are_ignored() {
        let yaml = r#"
mode: dry-run
sources:
  - file: /var/log/mail.log
    mta: auto
state:   { path: /var/lib/tarpit/state.db }
policy:
  window: 30m
  threshold: 12
  weights: { unknown-recipient: 3, relay-denied: 4 }
  backscatter_weight: 6
  protected: ["*-owner@example.org"]
  traps: ["trap@example.org"]
  allow: ["10.0.0.0/8", "192.0.2.7", "2001:db8::1"]
  allow_spf: ["example.org"]
  allow_delivered_for: 7d
  ipv6_prefix: 56
ban: { first: 2h, factor: 3, max: 14d, forget_after: 30d }
"#;
        let s = parse_policy_section("t", yaml).unwrap();
        assert_eq!(s.mode, Mode::DryRun);
        assert_eq!(s.policy.threshold, 12);
        assert_eq!(s.policy.weight(EventClass::UnknownRecipient), 3);
        assert_eq!(s.policy.weight(EventClass::RblListed), 5);
        let nets: Vec<IpNet> = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(s.policy.allow, nets, "a plain address is its host");
        assert_eq!(s.policy.ipv6_prefix, 56);
        assert_eq!(s.ban.factor, 3.0);
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_position() {
        let err = parse_policy_section("cfg.yaml", "policy:\n  threshhold: 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("threshhold"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn a_bad_cidr_or_duration_is_an_error_with_its_position() {
        let err = parse_policy_section("c", "policy:\n  allow: [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        let err = parse_policy_section("c", "ban:\n  first: 10\n").unwrap_err();
        assert!(
            err.to_string().contains("expected a number with a unit"),
            "{err}"
        );
    }

    #[test]
    fn impossible_values_are_refused_with_the_key() {
        let err = parse_policy_section("c", "policy: { ipv6_prefix: 0 }").unwrap_err();
        assert!(err.to_string().contains("policy.ipv6_prefix"), "{err}");
        let err = parse_policy_section("c", "ban: { first: 2d, max: 1d }").unwrap_err();
        assert!(err.to_string().contains("ban.max"), "{err}");
        let err = parse_policy_section("c", "policy: { threshold: 0 }").unwrap_err();
        assert!(err.to_string().contains("policy.threshold"), "{err}");
    }
}
