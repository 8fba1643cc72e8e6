//! The policy's output: a [`Decision`] to list an address or prefix, and its JSON line form.
//!
//! Owns what a listing says (who, until when, which offence, why, on what evidence) and how it is
//! printed. It never decides anything and never touches the kernel or the disk.

use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What to do with the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Put it into the set until `until`.
    List,
}

/// One decision of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The time of the event that led to it (log time, never the wall clock).
    pub time: OffsetDateTime,
    /// The listed address (a /32 or /128) or prefix (e.g. an IPv6 /64 or /48).
    pub ip: IpNet,
    /// What to do.
    pub action: Action,
    /// When the listing ends.
    pub until: OffsetDateTime,
    /// How long it lasts.
    pub duration: Duration,
    /// Which offence of this address this is, counting from 1.
    pub offence: u32,
    /// Why, in words: "7 rejections in 38 min: 5× unknown-recipient, 2× relay-denied".
    pub reason: String,
    /// The last few log lines that led to it (oldest first, capped).
    pub evidence: Vec<String>,
    /// False in `mode: dry-run`: decided and recorded, but not to be carried out.
    pub enforced: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    ip: String,
    action: Action,
    until: String,
    duration_s: u64,
    offence: u32,
    reason: &'a str,
    #[serde(skip_serializing_if = "is_true")]
    enforced: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A host route prints as a bare address (`198.51.100.7`), a prefix with its length.
pub fn ip_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl Decision {
    /// The JSON line `{"time","ip","action","until","duration_s","offence","reason"}`, with
    /// `"enforced":false` added in dry-run; no line end.
    pub fn json_line(&self) -> String {
        let line = Line {
            time: stamp(self.time),
            ip: ip_text(&self.ip),
            action: self.action,
            until: stamp(self.until),
            duration_s: self.duration.as_secs(),
            offence: self.offence,
            reason: &self.reason,
            enforced: self.enforced,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_has_the_interface_keys_and_a_bare_host_address() {
        let t = OffsetDateTime::from_unix_timestamp(1_764_849_600).unwrap();
        let d = Decision {
            time: t,
            ip: "198.51.100.7/32".parse().unwrap(),
            action: Action::List,
            until: t + Duration::from_secs(3600),
            duration: Duration::from_secs(3600),
            offence: 1,
            reason: "r".into(),
            evidence: vec![],
            enforced: true,
        };
        assert_eq!(
            d.json_line(),
            r#"{"time":"2025-12-04T12:00:00Z","ip":"198.51.100.7","action":"list","until":"2025-12-04T13:00:00Z","duration_s":3600,"offence":1,"reason":"r"}"#
        );
        let v6 = Decision {
            ip: "2001:db8:1:2::/64".parse().unwrap(),
            enforced: false,
            ..d
        };
        let line = v6.json_line();
        assert!(line.contains(r#""ip":"2001:db8:1:2::/64""#), "{line}");
        assert!(line.ends_with(r#""enforced":false}"#), "{line}");
    }
}
