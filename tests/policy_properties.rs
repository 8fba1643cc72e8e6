//! No sequence of events ever lists an allowlisted address, by any path (score, trap, protected
//! recipient, hard-fail repeat, IPv6 prefix or /48 widening).

use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;
use tarpit::event::{Delivery, Event, EventClass, Mta};
use tarpit::policy::config::parse_policy_section;
use tarpit::policy::engine::Engine;
use time::OffsetDateTime;

/// Never to be listed: private (default `allow`), loopback, own, SPF-authorised, correspondents.
const ALLOWED: &[&str] = &[
    "10.1.2.3",
    "192.168.7.7",
    "fd00::5",
    "127.0.0.1",
    "::1",
    "203.0.113.1",
    "192.0.2.3",
    "198.51.100.25",
    "2001:db8:9:9::25",
];
/// Offenders, some sharing a /64 or /48 with an allowed host.
const OTHERS: &[&str] = &[
    "198.51.100.7",
    "198.51.100.8",
    "192.0.2.200",
    "2001:db8:9:9::66",
    "2001:db8:9:1::1",
    "2001:db8:9:2::1",
    "2001:db8:9:3::1",
    "2001:db8:7:1::1",
    "2001:db8:7:2::1",
    "2001:db8:7:3::1",
];
const RECIPIENTS: &[&str] = &[
    "trap@example.org",
    "list-owner@example.org",
    "a@example.org",
    "b@example.org",
];

fn engine() -> Engine {
    let yaml = r#"
policy:
  threshold: 4
  traps: ["trap@example.org"]
  protected: ["*-owner@example.org"]
  repeat_after_hardfail: 2
  ipv6_widen_after: 2
"#;
    let section = parse_policy_section("test", yaml).unwrap();
    let mut engine = Engine::new(&section, vec!["203.0.113.1".parse().unwrap()]);
    engine.set_spf(vec![(
        "192.0.2.0/28".parse().unwrap(),
        "example.org: ip4:192.0.2.0/28".into(),
    )]);
    for host in ["198.51.100.25", "2001:db8:9:9::25"] {
        engine.observe_delivery(&Delivery {
            time: OffsetDateTime::from_unix_timestamp(1_764_849_000).unwrap(),
            ip: host.parse().unwrap(),
            mta: Mta::Postfix,
            queue_id: None,
            rule: "t".into(),
            line: "delivered".into(),
        });
    }
    engine
}

fn an_event() -> impl Strategy<Value = (bool, usize, usize, usize, u32, bool, bool)> {
    (
        any::<bool>(),
        0..OTHERS.len(),
        0..EventClass::ALL.len(),
        0..RECIPIENTS.len(),
        0u32..600,
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_event_sequence_lists_an_allowlisted_address(
        events in proptest::collection::vec(an_event(), 1..300)
    ) {
        let mut engine = engine();
        let allowed: Vec<IpAddr> = ALLOWED.iter().map(|a| a.parse().unwrap()).collect();
        let mut t = 1_764_849_600i64;
        for (from_allowed, pick, class, rcpt, gap, bounce, five) in events {
            t += i64::from(gap);
            let ip: IpAddr = if from_allowed {
                allowed[pick % allowed.len()]
            } else {
                OTHERS[pick].parse().unwrap()
            };
            let e = Event {
                time: OffsetDateTime::from_unix_timestamp(t).unwrap(),
                ip,
                class: EventClass::ALL[class],
                mta: Mta::Postfix,
                service: "smtpd".into(),
                sender: Some(if bounce { String::new() } else { "x@example.com".into() }),
                recipient: Some(RECIPIENTS[rcpt].into()),
                helo: None,
                code: Some(if five { 550 } else { 450 }),
                rule: "t".into(),
                line: format!("line from {ip}"),
            };
            for d in engine.observe_event(&e) {
                let net: IpNet = d.ip;
                for a in &allowed {
                    prop_assert!(!net.contains(a), "{} listed although it holds {}: {}", net, a, d.reason);
                }
            }
        }
    }
}

/// The property is not vacuous: with this engine, every offender of the pool can be listed
/// (the IPv6 ones beside an allowed host only as far as their prefix holds none).
#[test]
fn the_offenders_of_the_pool_do_get_listed() {
    let mut engine = engine();
    let mut listed = Vec::new();
    for (n, other) in OTHERS.iter().enumerate() {
        for i in 0..4i64 {
            let e = Event {
                time: OffsetDateTime::from_unix_timestamp(1_764_849_600 + 10 * n as i64 + i)
                    .unwrap(),
                ip: other.parse().unwrap(),
                class: EventClass::RelayDenied,
                mta: Mta::Postfix,
                service: "smtpd".into(),
                sender: Some("x@example.com".into()),
                recipient: Some(format!("r{i}@example.org")),
                helo: None,
                code: Some(554),
                rule: "t".into(),
                line: String::new(),
            };
            listed.extend(
                engine
                    .observe_event(&e)
                    .into_iter()
                    .map(|d| d.ip.to_string()),
            );
        }
    }
    assert_eq!(
        listed,
        [
            "198.51.100.7/32",
            "198.51.100.8/32",
            "192.0.2.200/32",
            "2001:db8:9:1::/64",
            "2001:db8:9:2::/64",
            "2001:db8:9:3::/64",
            "2001:db8:7:1::/64",
            "2001:db8:7::/48",
        ]
    );
}
