//! The project's own sample logs (`samples/*.log`) against expectations written independently
//! of the parser (`samples/expected/<file>.jsonl`): every listed line yields that event (class,
//! address, sender, recipient), and no other line yields one. Entries marked `or_none` are hostile
//! lines that may yield nothing, but never another address.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tarpit::event::EventClass;
use tarpit::parse::clock::Clock;
use tarpit::parse::{MtaChoice, Outcome, Parser};

fn parser() -> Parser {
    // The samples are from early December 2026 (and one turn of the year into January 2027).
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2027-01-02T12:00:00Z".parse().unwrap(),
    );
    Parser::builtin(MtaChoice::Auto, clock).unwrap()
}

#[test]
fn every_sample_line_yields_exactly_the_expected_event() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let parser = parser();
    let mut failures = Vec::new();
    let mut classes: BTreeMap<(String, EventClass), usize> = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        files += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mta = if name.starts_with("exim") {
            "exim"
        } else {
            "postfix"
        };
        let expected_path = dir.join("expected").join(format!("{name}.jsonl"));
        let expected: BTreeMap<usize, Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["line"].as_u64().unwrap() as usize, v)
            })
            .collect();
        let data = std::fs::read(&path).unwrap();
        for (i, line) in data.split(|&b| b == b'\n').enumerate() {
            let no = i + 1;
            let got = match parser.parse(line) {
                Outcome::Event(e) => Some(e),
                _ => None,
            };
            let text = String::from_utf8_lossy(line);
            match (expected.get(&no), got) {
                (None, None) => {}
                (None, Some(e)) => failures.push(format!(
                    "{name}:{no}: unexpected {} event for {}\n    {text}",
                    e.class, e.ip
                )),
                (Some(want), None) => {
                    if !want["or_none"].as_bool().unwrap_or(false) {
                        failures.push(format!(
                            "{name}:{no}: no event, expected {want}\n    {text}"
                        ));
                    }
                }
                (Some(want), Some(e)) => {
                    let got = serde_json::json!({
                        "ip": e.ip.to_string(),
                        "class": e.class.as_str(),
                        "sender": e.sender,
                        "recipient": e.recipient,
                    });
                    let want_cmp = serde_json::json!({
                        "ip": want["ip"], "class": want["class"],
                        "sender": want["sender"], "recipient": want["recipient"],
                    });
                    if got != want_cmp {
                        failures.push(format!(
                            "{name}:{no}: got {got}, expected {want_cmp}\n    {text}"
                        ));
                    }
                    *classes.entry((mta.to_owned(), e.class)).or_default() += 1;
                }
            }
        }
    }
    assert!(files >= 4, "sample logs missing from {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for mta in ["postfix", "exim"] {
        for class in EventClass::ALL {
            assert!(
                classes.contains_key(&(mta.to_owned(), class)),
                "no {mta} sample yields {class}"
            );
        }
    }
}
