//! Property tests: the parser never panics, and never returns an address that is not the
//! client's.
//!
//! Two properties. Generated lines put a known client address in the MTA's client field and
//! hostile text (fake client fields, quotes, brackets, random bytes) everywhere the remote client
//! writes: an event must carry exactly the known client. Mutated lines take realistic lines and
//! insert, delete and overwrite bytes anywhere: an event's address must sit in a client-shaped
//! field of the mutated line (an oracle written here, independent of the rule files).
//!
//! `TARPIT_PROPTEST_CASES` sets the number of cases per property (default 10,000);
//! `scripts/proptest-10m.sh` runs ten million.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use regex::bytes::RegexBuilder;
use tarpit::parse::clock::Clock;
use tarpit::parse::{MtaChoice, Outcome, Parser};

fn cases() -> u32 {
    std::env::var("TARPIT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

fn parser() -> Parser {
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2026-12-04T12:00:00Z".parse().unwrap(),
    );
    Parser::builtin(MtaChoice::Auto, clock).unwrap()
}

fn ipv4() -> impl Strategy<Value = String> {
    any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]))
}

fn ipv6() -> impl Strategy<Value = String> {
    any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string())
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![3 => ipv4(), 1 => ipv6(), 1 => Just("192.0.2.1".to_owned())]
}

/// Pieces of text a remote client would use to fool a parser.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        ip().prop_map(|i| format!("[{i}]").into_bytes()),
        ip().prop_map(|i| format!(" from evil.example[{i}]: ").into_bytes()),
        ip().prop_map(|i| format!(" from [{i}]:25 ").into_bytes()),
        ip().prop_map(|i| format!(" from x[{i}]; from=<a> ").into_bytes()),
        ip().prop_map(|i| format!(") [{i}]").into_bytes()),
        ip().prop_map(|i| format!(" H=(x) [{i}]:25 ").into_bytes()),
        ip().prop_map(|i| format!("\" H=[{i}] ").into_bytes()),
        ip().prop_map(|i| format!("H=[{i}]").into_bytes()),
        ip().prop_map(|i| format!(" (host=evil [{i}]) for x").into_bytes()),
        ip().prop_map(
            |i| format!("warning: x[{i}]: SASL LOGIN authentication failed").into_bytes()
        ),
        Just(b"; from=<".to_vec()),
        Just(b"> to=<".to_vec()),
        Just(b" proto=ESMTP helo=<".to_vec()),
        Just(b">".to_vec()),
        Just(b"\"".to_vec()),
        Just(b")".to_vec()),
        Just(b"(".to_vec()),
        Just(b" rejected RCPT <a@b>: relay not permitted".to_vec()),
        Just(b"Dec  4 10:00:00 mx postfix/smtpd[1]: ".to_vec()),
        "[a-zA-Z0-9@.<>_ :;=-]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..8),
    ]
}

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
}

/// One word without blanks or quotes (an AUTH mechanism).
fn word() -> impl Strategy<Value = Vec<u8>> {
    hostile().prop_map(|b| {
        b.into_iter()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'"')
            .collect()
    })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just("unknown".to_owned()), "[a-z0-9][a-z0-9.-]{0,20}"]
}

#[derive(Debug, Clone)]
struct Fields {
    template: usize,
    client: String,
    name: String,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    word: Vec<u8>,
}

const TEMPLATES: usize = 13;

fn fields() -> impl Strategy<Value = Fields> {
    (
        0..TEMPLATES,
        ip(),
        name(),
        hostile(),
        hostile(),
        hostile(),
        word(),
    )
        .prop_map(|(template, client, name, a, b, c, word)| Fields {
            template,
            client,
            name,
            a,
            b,
            c,
            word,
        })
}

/// A line with the client in the MTA's client field and hostile text everywhere else.
fn render(f: &Fields) -> Vec<u8> {
    let (t, n) = (&f.client, &f.name);
    let pf = "Dec  4 10:00:00 mx postfix/smtpd[4242]: ";
    let ex = "2026-12-04 10:00:00 ";
    let parts: Vec<&[u8]> = match f.template {
        0 => vec![pf.as_bytes(), b"NOQUEUE: reject: RCPT from ", n.as_bytes(), b"[", t.as_bytes(), b"]: 554 5.7.1 <", &f.a, b">: Relay access denied; from=<", &f.b, b"> to=<", &f.a, b"> proto=ESMTP helo=<", &f.c, b">"],
        1 => vec![pf.as_bytes(), b"improper command pipelining after DATA from ", n.as_bytes(), b"[", t.as_bytes(), b"]: ", &f.a],
        2 => vec![pf.as_bytes(), b"warning: ", n.as_bytes(), b"[", t.as_bytes(), b"]: SASL LOGIN authentication failed: ", &f.a],
        3 => vec![pf.as_bytes(), b"warning: non-SMTP command from ", n.as_bytes(), b"[", t.as_bytes(), b"]: ", &f.a],
        4 => vec![b"Dec  4 10:00:00 mx postfix/postscreen[1]: PREGREET 11 after 0.2 from [", t.as_bytes(), b"]:1234: ", &f.a],
        5 => vec![b"Dec  4 10:00:00 mx postfix/cleanup[1]: ABC123: reject: header Subject: ", &f.a, b" from ", n.as_bytes(), b"[", t.as_bytes(), b"]; from=<", &f.b, b"> to=<x@example.org> proto=ESMTP helo=<", &f.c, b">: 5.7.1 ", &f.a],
        6 => vec![ex.as_bytes(), b"H=", n.as_bytes(), b" (", &f.c, b") [", t.as_bytes(), b"]:25 I=[203.0.113.1]:25 F=<", &f.b, b"> rejected RCPT <", &f.a, b">: ", &f.a],
        7 => vec![ex.as_bytes(), b"dovecot_login authenticator failed for (", &f.c, b") [", t.as_bytes(), b"]:1: 535 Incorrect authentication data (set_id=", &f.a, b")"],
        8 => vec![ex.as_bytes(), b"SMTP protocol error in \"", &f.a, b"\" H=(", &f.c, b") [", t.as_bytes(), b"] AUTH command used when not advertised"],
        9 => vec![ex.as_bytes(), b"SMTP protocol error in \"AUTH ", &f.word, b"\" H=(", &f.c, b") [", t.as_bytes(), b"]:1 ", &f.word, b" authentication mechanism not supported"],
        10 => vec![ex.as_bytes(), b"SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[", t.as_bytes(), b"]:1 I=[203.0.113.1]:25 input=\"", &f.a, b"\""],
        11 => vec![ex.as_bytes(), b"1VxHWD-000NuW-83 SA: Action: silently tossed message: score=31.0 (scanned in 6/6 secs | Message-Id: ", &f.a, b"). From <", &f.b, b"> (host=", n.as_bytes(), b" [", t.as_bytes(), b"]) for ", &f.word],
        _ => vec![ex.as_bytes(), b"SMTP call from ", n.as_bytes(), b" [", t.as_bytes(), b"]:1 I=[203.0.113.1]:25 dropped: too many nonmail commands (last was \"", &f.a, b"\")"],
    };
    parts.concat()
}

fn canonical(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[test]
fn generated_hostile_lines_never_yield_another_address() {
    let parser = parser();
    let count = AtomicU64::new(0);
    let events = AtomicU64::new(0);
    runner()
        .run(&fields(), |f| {
            count.fetch_add(1, Ordering::Relaxed);
            let line = render(&f);
            if let Outcome::Event(e) = parser.parse(&line) {
                events.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(
                    Some(e.ip),
                    canonical(&f.client),
                    "line: {}",
                    String::from_utf8_lossy(&line)
                );
            }
            Ok(())
        })
        .unwrap();
    let (n, e) = (count.into_inner(), events.into_inner());
    println!("generated hostile lines: cases={n} events={e}");
    assert!(
        e > n / 10,
        "too few lines yielded events ({e} of {n}): the generator is not testing the parser"
    );
}

/// Realistic lines to mutate.
const SEEDS: &[&str] = &[
    "Dec  4 10:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from mail.example.com[192.0.2.1]: 550 5.1.1 <u@example.org>: Recipient address rejected: User unknown in local recipient table; from=<s@example.com> to=<u@example.org> proto=ESMTP helo=<mail.example.com>",
    "Dec  4 10:00:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[2001:db8::5]: 554 5.7.1 Service unavailable; Client host [2001:db8::5] blocked using zen.spamhaus.org; from=<s@example.com> to=<u@example.org> proto=ESMTP helo=<x>",
    "Dec  4 10:00:02 mx postfix/postscreen[2]: NOQUEUE: reject: RCPT from [198.51.100.7]:4711: 550 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen.spamhaus.org; from=<s@example.com>, to=<u@example.org>, proto=ESMTP, helo=<x>",
    "Dec  4 10:00:03 mx postfix/postscreen[2]: PREGREET 11 after 0.1 from [203.0.113.9]:4711: EHLO x\\r\\n",
    "Dec  4 10:00:04 mx postfix/smtpd[1]: warning: unknown[192.0.2.44]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    "Dec  4 10:00:05 mx postfix/submission/smtpd[1]: lost connection after AUTH from unknown[192.0.2.45]",
    "Dec  4 10:00:06 mx postfix/cleanup[3]: 4F5A3D: reject: header Subject: hi from m.example.com[192.0.2.46]; from=<s@example.com> to=<u@example.org> proto=ESMTP helo=<m>: 5.7.1 no",
    "Dec  4 10:00:07 mx postfix/smtpd[1]: warning: Connection rate limit exceeded: 61 from unknown[192.0.2.47] for service smtp",
    "2026-12-04 10:00:08 H=m.example.com (helo.example.com) [192.0.2.48]:1 I=[203.0.113.1]:25 F=<s@example.com> rejected RCPT <u@example.org>: relay not permitted",
    "2026-12-04 10:00:09 plain authenticator failed for ([192.168.0.1]) [198.51.100.49]:1: 535 Incorrect authentication data (set_id=x)",
    "2026-12-04 10:00:10 SMTP protocol error in \"AUTH LOGIN\" H=(x) [192.0.2.50] AUTH command used when not advertised",
    "2026-12-04 10:00:11 SMTP call from [192.0.2.51] dropped: too many unrecognized commands (last was \"x\")",
    "2026-12-04 10:00:12 1abcde-000123-AB H=m.example.com [192.0.2.52] F=<s@example.com> rejected after DATA: spam",
    "mx exim[1]: 2026-12-04 10:00:13 SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.53]:1 input=\"x\"",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Overwrite(usize, u8),
}

fn edits() -> impl Strategy<Value = (usize, Vec<Edit>)> {
    let edit = prop_oneof![
        (any::<usize>(), fragment()).prop_map(|(at, f)| Edit::Insert(at, f)),
        (any::<usize>(), 1usize..12).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Overwrite(at, b)),
    ];
    (0..SEEDS.len(), proptest::collection::vec(edit, 1..5))
}

fn mutate(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut line = seed.as_bytes().to_vec();
    for e in edits {
        let len = line.len().max(1);
        match e {
            Edit::Insert(at, f) => {
                let at = at % (line.len() + 1);
                line.splice(at..at, f.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(line.len());
                if at < end {
                    line.drain(at..end);
                }
            }
            Edit::Overwrite(at, b) => {
                if !line.is_empty() && *b != b'\n' {
                    let at = at % line.len();
                    line[at] = *b;
                }
            }
        }
    }
    line
}

/// Addresses in client-shaped fields: `from NAME[a]`, `warning: NAME[a]:`, Exim's
/// `H=`/`from`/`for` `NAME (HELO) [a]` and `host=NAME [a]`. Independent of the rule files.
fn client_field_addresses(line: &[u8]) -> Vec<IpAddr> {
    // ASCII classes: MTAs write ASCII host names, so a non-ASCII byte is part of the name.
    let shapes = RegexBuilder::new(
        r"(?:from |warning: )[^\s\[\]]*\[([0-9A-Fa-f:.]+)\]|(?:H=|from |for )(?:[^\s\[\]()]+ )?(?:\([^()]*\) )?\[([0-9A-Fa-f:.]+)\]|host=[^\s\[\]()]+ \[([0-9A-Fa-f:.]+)\]",
    )
    .unicode(false)
    .build()
    .unwrap();
    shapes
        .captures_iter(line)
        .filter_map(|c| {
            let m = c.iter().skip(1).flatten().next()?;
            canonical(std::str::from_utf8(m.as_bytes()).ok()?)
        })
        .collect()
}

#[test]
fn mutated_real_lines_never_yield_an_address_outside_a_client_field() {
    let parser = parser();
    let count = AtomicU64::new(0);
    let events = AtomicU64::new(0);
    runner()
        .run(&edits(), |(seed, edits)| {
            count.fetch_add(1, Ordering::Relaxed);
            let line = mutate(SEEDS[seed], &edits);
            if let Outcome::Event(e) = parser.parse(&line) {
                events.fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&line);
                prop_assert!(
                    client_field_addresses(&line).contains(&e.ip),
                    "{} is in no client field of: {}",
                    e.ip,
                    text
                );
            }
            Ok(())
        })
        .unwrap();
    let (n, e) = (count.into_inner(), events.into_inner());
    println!("mutated real lines: cases={n} events={e}");
    assert!(
        e > n / 10,
        "too few mutated lines yielded events ({e} of {n})"
    );
}

#[test]
fn every_seed_line_is_an_event_before_mutation() {
    let parser = parser();
    for seed in SEEDS {
        assert!(
            matches!(parser.parse(seed.as_bytes()), Outcome::Event(_)),
            "{seed}"
        );
    }
}
