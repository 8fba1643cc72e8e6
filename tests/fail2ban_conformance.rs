//! Conformance with fail2ban's own Postfix and Exim test logs (`../shared/corpus/fail2ban/`).
//!
//! Every `"match": true` line must yield an event for the annotated host, and at the annotated
//! local time; every `"match": false` line must yield none. fail2ban has modes (normal, more,
//! ddos, aggressive, ...) and tarpit has one vocabulary, so where the two deliberately differ the
//! line is listed with its reason in `tests/fail2ban_exceptions.txt`. Lines that only fail2ban's
//! `aggressive` mode expects (its "everything, noise included" mode, which tarpit does not have)
//! may match, as the corpus's README allows; when they do, the host must be right. The corpus is not part of
//! the repository; without it the test says so and passes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tarpit::parse::clock::Clock;
use tarpit::parse::{MtaChoice, Outcome, Parser};

const FILES: &[&str] = &["postfix", "exim", "exim-spam"];

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TARPIT_FAIL2BAN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/fail2ban")
        });
    dir.join("postfix").exists().then_some(dir)
}

struct Case {
    /// Only fail2ban's `aggressive` mode (everything, noise included) expects this line.
    aggressive_only: bool,
    line_no: usize,
    text: String,
    expect_match: bool,
    host: Option<String>,
    time: Option<String>,
}

fn cases(text: &str) -> Vec<Case> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut aggressive_only = false;
    for (i, line) in lines.iter().enumerate() {
        if let Some(opts) = line.strip_prefix("# filterOptions:") {
            let v: serde_json::Value =
                serde_json::from_str(opts.trim()).expect("filterOptions is JSON");
            let sets: Vec<serde_json::Value> = match v {
                serde_json::Value::Array(a) => a,
                one => vec![one],
            };
            aggressive_only = sets.iter().all(|s| s["mode"] == "aggressive");
            continue;
        }
        let trimmed = line.trim_start_matches('#').trim_start();
        let Some(json) = trimmed.strip_prefix("failJSON:") else {
            continue;
        };
        if !line.starts_with('#') {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(json.trim()).expect("failJSON is JSON");
        let target = i + 1;
        out.push(Case {
            aggressive_only,
            line_no: target + 1,
            text: lines[target].to_owned(),
            expect_match: v["match"].as_bool().unwrap_or(false),
            host: v["host"].as_str().map(str::to_owned),
            time: v["time"].as_str().map(str::to_owned),
        });
    }
    out
}

/// `2005-03-7T02:09:33` → `2005-03-07T02:09:33` (fraction dropped).
fn normalize_time(t: &str) -> String {
    let (date, clock) = t.split_once('T').unwrap_or((t, ""));
    let parts: Vec<&str> = date.split('-').collect();
    let clock = clock.split('.').next().unwrap_or("");
    format!("{}-{:0>2}-{:0>2}T{}", parts[0], parts[1], parts[2], clock)
}

fn exceptions() -> BTreeMap<(String, usize), String> {
    let text = include_str!("fail2ban_exceptions.txt");
    let mut map = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, reason) = line
            .split_once(char::is_whitespace)
            .expect("FILE:LINE reason");
        let (file, no) = key.split_once(':').expect("FILE:LINE");
        map.insert(
            (file.to_owned(), no.parse().expect("line number")),
            reason.trim().to_owned(),
        );
    }
    map
}

#[test]
fn fail2ban_corpus_postfix_and_exim_conform() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: fail2ban corpus not found at ../shared/corpus/fail2ban (set TARPIT_FAIL2BAN_CORPUS)");
        return;
    };
    // fail2ban's harness runs with the clock at 2005-08-14 12:00 CEST in Europe/Zurich.
    let tz = jiff::tz::TimeZone::get("Europe/Zurich").unwrap();
    let clock = Clock::new(tz.clone(), "2005-08-14T10:00:00Z".parse().unwrap());
    let parser = Parser::builtin(MtaChoice::Auto, clock).unwrap();
    let exceptions = exceptions();
    let mut used = Vec::new();
    let mut failures = Vec::new();
    println!(
        "{:<10} {:>6} {:>9} {:>6} {:>7} {:>6} {:>11} {:>16}",
        "file", "lines", "expected", "found", "missed", "false", "exceptions", "aggressive-only"
    );
    for file in FILES {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let (mut expected, mut found, mut missed, mut false_hits, mut excepted) = (0, 0, 0, 0, 0);
        let mut aggressive_unmatched = 0;
        for case in cases(&text) {
            let outcome = parser.parse(case.text.as_bytes());
            let event = match &outcome {
                Outcome::Event(e) => Some(e),
                _ => None,
            };
            let problem = if case.expect_match {
                expected += 1;
                match event {
                    None if case.aggressive_only => {
                        aggressive_unmatched += 1;
                        None
                    }
                    None => Some(format!("no event ({outcome:?})")),
                    Some(e) if Some(e.ip.to_string()) != case.host => {
                        Some(format!("host {} instead of {:?}", e.ip, case.host))
                    }
                    Some(e) => case.time.as_ref().and_then(|t| {
                        let local = jiff::Timestamp::from_second(e.time.unix_timestamp())
                            .unwrap()
                            .to_zoned_datetime(tz.clone())
                            .datetime()
                            .to_string();
                        let local = local.split('.').next().unwrap().to_owned();
                        (local != normalize_time(t)).then(|| format!("time {local} instead of {t}"))
                    }),
                }
            } else {
                event.map(|e| format!("unexpected {} event for {}", e.class, e.ip))
            };
            let key = (file.to_string(), case.line_no);
            match (problem, exceptions.get(&key)) {
                (None, None) => {
                    if case.expect_match && event.is_some() {
                        found += 1;
                    }
                }
                (None, Some(_)) => failures.push(format!(
                    "{file}:{}: listed as an exception but conforms; remove it",
                    case.line_no
                )),
                (Some(_), Some(_)) => {
                    excepted += 1;
                    used.push(key);
                }
                (Some(p), None) => {
                    if case.expect_match {
                        missed += 1;
                    } else {
                        false_hits += 1;
                    }
                    failures.push(format!("{file}:{}: {p}\n    {}", case.line_no, case.text));
                }
            }
        }
        println!(
            "{file:<10} {:>6} {expected:>9} {found:>6} {missed:>7} {false_hits:>6} {excepted:>11} {aggressive_unmatched:>16}",
            text.lines().count()
        );
    }
    for key in exceptions.keys().filter(|k| !used.contains(k)) {
        if !failures
            .iter()
            .any(|f| f.starts_with(&format!("{}:{}:", key.0, key.1)))
        {
            failures.push(format!(
                "{}:{}: exception names no annotated line",
                key.0, key.1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
