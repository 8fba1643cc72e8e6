//! Replays of the policy samples give the same decisions every time, for every criterion, and
//! the decisions match the hand-checked expectations in `samples/policy/expected/*.jsonl`.
//!
//! The samples (`samples/policy/*.log`, kept apart from the parser samples whose
//! expectations are events) and their policy (`samples/policy/policy.yaml`):
//! - escalation: 1h, then 4h, then 16h for a host that keeps going; a host below the threshold
//!   and one whose rejections are spread wider than the window are never listed; after 90 days
//!   without a listing the history is forgotten (offence 1 again);
//! - allow: private and loopback addresses and a correspondent we delivered to are never listed;
//!   the correspondent is a stranger again after `allow_delivered_for`;
//! - criteria: trap, protected recipient, backscatter, hard-fail repeats (and the same count
//!   spread over two recipients, which is not a repeat);
//! - ipv6: two hosts add up in one /64; the fourth listed /64 of a /48 lists the /48.

use std::path::{Path, PathBuf};

use tarpit::control::replay::{replay_decisions, ReplayOptions};
use tarpit::policy::config::{load_policy_section, parse_policy_section, Mode, PolicySection};
use tarpit::policy::engine::Engine;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn replay(section: &PolicySection, log: &str) -> String {
    let options = ReplayOptions {
        timezone: Some(jiff::tz::TimeZone::UTC),
        ..ReplayOptions::default()
    };
    let mut engine = Engine::new(section, Vec::new());
    let mut out = Vec::new();
    let mut err = Vec::new();
    let files: Vec<PathBuf> = vec![root().join("samples/policy").join(log)];
    replay_decisions(&files, &options, &mut engine, &mut out, &mut err).unwrap();
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

fn section() -> PolicySection {
    load_policy_section(&root().join("samples/policy/policy.yaml")).unwrap()
}

fn expected(log: &str) -> String {
    std::fs::read_to_string(root().join(format!("samples/policy/expected/{log}.jsonl"))).unwrap()
}

fn check(log: &str) -> String {
    let got = replay(&section(), log);
    assert_eq!(got, expected(log), "{log}");
    assert_eq!(
        got,
        replay(&section(), log),
        "{log}: a second replay differs"
    );
    got
}

#[test]
fn escalation_multiplies_and_forgetting_resets_the_offence() {
    let got = check("escalation.log");
    let offences: Vec<(u64, u64)> = got
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["offence"].as_u64().unwrap(),
                v["duration_s"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(offences, vec![(1, 3600), (2, 14400), (3, 57600), (1, 3600)]);
    assert!(!got.contains("203.0.113.5"), "below the threshold");
    assert!(
        !got.contains("198.51.100.8"),
        "spread wider than the window"
    );
}

#[test]
fn allowlisted_hosts_and_recent_correspondents_are_never_listed() {
    let got = check("allow.log");
    assert!(!got.contains("10.1.2.3") && !got.contains("127.0.0.1"));
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(r#""ip":"198.51.100.26""#));
    assert!(lines[1].contains(r#""ip":"198.51.100.25""#) && lines[1].contains("2027-01-04"));
}

#[test]
fn traps_protected_backscatter_and_hard_fail_repeats_list() {
    let got = check("criteria.log");
    assert!(got.contains("spam trap trap@example.org"));
    assert!(got.contains("1× protected-recipient"));
    assert!(got.contains("2× backscatter"));
    assert!(got.contains("3 attempts to ceo@example.org"));
    assert!(
        !got.contains("192.0.2.54"),
        "two recipients are not a repeat"
    );
}

#[test]
fn ipv6_hosts_add_up_per_64_and_four_64s_widen_to_the_48() {
    let got = check("ipv6.log");
    assert!(got.contains(r#""ip":"2001:db8:1:1::/64""#));
    assert!(got.contains(r#""ip":"2001:db8:1::/48""#));
    assert!(
        !got.contains("2001:db8:1:4::/64\",\"action"),
        "the fourth /64 became the /48"
    );
    assert!(!got.contains("2001:db8:1:5::"), "inside the listed /48");
}

#[test]
fn dry_run_decides_the_same_and_marks_nothing_enforced() {
    let mut dry = section();
    dry.mode = Mode::DryRun;
    for log in ["criteria.log", "escalation.log"] {
        let enforced = replay(&section(), log);
        let got = replay(&dry, log);
        assert_eq!(got.lines().count(), enforced.lines().count());
        for (d, e) in got.lines().zip(enforced.lines()) {
            assert_eq!(d, e.replace('}', r#","enforced":false}"#), "{log}");
        }
    }
}

#[test]
fn an_operator_allow_list_replaces_the_private_default() {
    let s = parse_policy_section("t", "policy: { allow: [\"198.51.100.26/32\"] }").unwrap();
    let got = replay(&s, "allow.log");
    assert!(
        got.contains(r#""ip":"10.1.2.3""#),
        "10/8 no longer allowed: {got}"
    );
    assert!(!got.contains("198.51.100.26"));
    assert!(!got.contains("127.0.0.1"), "loopback is always allowed");
}

/// An injected resolver: example.org's SPF includes a record naming 198.51.100.26.
struct Dns;

impl tarpit::policy::spf::SpfResolver for Dns {
    fn txt(&self, name: &str) -> Result<Vec<String>, tarpit::policy::spf::DnsError> {
        match name {
            "example.org" => Ok(vec!["v=spf1 include:_spf.example.org -all".into()]),
            "_spf.example.org" => Ok(vec!["v=spf1 ip4:198.51.100.26 ~all".into()]),
            _ => Err(tarpit::policy::spf::DnsError::NotFound),
        }
    }
    fn addresses(&self, _: &str) -> Result<Vec<std::net::IpAddr>, tarpit::policy::spf::DnsError> {
        Err(tarpit::policy::spf::DnsError::NotFound)
    }
    fn mx(&self, _: &str) -> Result<Vec<String>, tarpit::policy::spf::DnsError> {
        Err(tarpit::policy::spf::DnsError::NotFound)
    }
}

#[test]
fn a_host_an_allow_spf_domain_authorises_is_never_listed_and_the_record_is_named() {
    let s = parse_policy_section("t", "policy: { allow_spf: [example.org] }").unwrap();
    let mut spf = tarpit::policy::spf::SpfAllow::default();
    assert!(spf.refresh(&Dns, &s.policy.allow_spf).is_empty());
    let options = ReplayOptions {
        timezone: Some(jiff::tz::TimeZone::UTC),
        ..ReplayOptions::default()
    };
    let mut engine = Engine::new(&s, Vec::new());
    engine.set_spf(spf.networks());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let files = vec![root().join("samples/policy/allow.log")];
    replay_decisions(&files, &options, &mut engine, &mut out, &mut err).unwrap();
    let got = String::from_utf8(out).unwrap();
    assert!(!got.contains("198.51.100.26"), "{got}");
    assert!(
        got.contains("198.51.100.25"),
        "outside the SPF range: still listed"
    );
    let why = engine
        .allowed(
            "198.51.100.26".parse().unwrap(),
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
        .to_string();
    assert_eq!(
        why,
        "authorised by SPF: example.org: include:_spf.example.org → _spf.example.org: ip4:198.51.100.26"
    );
}

#[test]
fn tarpitctl_replay_with_a_config_prints_the_decisions_and_a_summary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .args(["replay", "--timezone", "UTC", "--config"])
        .arg(root().join("samples/policy/policy.yaml"))
        .arg(root().join("samples/policy/criteria.log"))
        .arg(root().join("samples/policy/escalation.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = expected("criteria.log") + &expected("escalation.log");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("decisions=8"), "{summary}");
}

#[test]
fn tarpitctl_replay_refuses_a_config_with_an_unknown_key_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tarpit.yaml");
    std::fs::write(&config, "mode: dry-run\npolicy:\n  treshold: 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .args(["replay", "--config"])
        .arg(&config)
        .arg(root().join("samples/policy/criteria.log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("treshold") && err.contains("line 3"), "{err}");
}
