//! `tarpitctl replay --events` as a user runs it: JSON lines on standard output, the summary on
//! standard error, standard input and gzip files, and a clear error for unreadable files.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const LOG: &str = "\
Dec  4 10:00:00 mx postfix/smtpd[1]: connect from unknown[192.0.2.7]
Dec  4 10:00:01 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table; from=<> to=<nobody@example.org> proto=ESMTP helo=<spam.example.com>
this line has no header at all
2026-12-04 10:00:02 H=(pc) [2001:db8::7]:4711 F=<a@example.com> rejected RCPT <b@example.org>: relay not permitted
";

fn tarpitctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tarpitctl"));
    c.env("TZ", "UTC");
    c
}

/// The events of a run that must have succeeded.
fn succeeded(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&out.stdout)
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn events_are_json_lines_with_every_field_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    std::fs::write(&path, LOG).unwrap();
    let out = tarpitctl()
        .args(["replay", "--events", "--now", "2026-12-04T12:00:00Z"])
        .arg(&path)
        .output()
        .unwrap();
    let ev = succeeded(&out);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["file"], path.display().to_string());
    assert_eq!(ev[0]["line"], 2);
    assert_eq!(ev[0]["time"], "2026-12-04T10:00:01Z");
    assert_eq!(ev[0]["ip"], "192.0.2.7");
    assert_eq!(ev[0]["class"], "unknown-recipient");
    assert_eq!(ev[0]["mta"], "postfix");
    assert_eq!(ev[0]["service"], "smtpd");
    assert_eq!(ev[0]["sender"], "", "the null sender is an empty string");
    assert_eq!(ev[0]["recipient"], "nobody@example.org");
    assert_eq!(ev[1]["line"], 4);
    assert_eq!(ev[1]["ip"], "2001:db8::7");
    assert_eq!(ev[1]["class"], "relay-denied");
    assert_eq!(ev[1]["mta"], "exim");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lines=4 events=2 skipped=1 no-header=1"),
        "{err}"
    );
}

#[test]
fn mta_choice_limits_the_replay() {
    let mut child = tarpitctl()
        .args(["replay", "--events", "--mta", "exim", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(LOG.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let ev = events(&out.stdout);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["file"], "-");
    assert_eq!(ev[0]["mta"], "exim");
}

#[test]
fn gzip_files_replay_like_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log.2.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(LOG.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let out = tarpitctl()
        .args(["replay", "--events"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(events(&out.stdout).len(), 2);
}

#[test]
fn an_unreadable_file_is_named_and_fails_the_command_but_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    std::fs::write(&good, LOG).unwrap();
    let missing = dir.path().join("missing.log");
    let out = tarpitctl()
        .args(["replay", "--events"])
        .arg(&missing)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read {}", missing.display())),
        "{err}"
    );
    assert_eq!(events(&out.stdout).len(), 2);
}

#[test]
fn a_broken_rule_file_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("local.yaml");
    std::fs::write(&rules, "mta: postfix\nrules:\n  - name: mine\n    literal: x\n    regex: '(?P<ip>['\n    class: relay-denied\n").unwrap();
    let out = tarpitctl()
        .args(["replay", "--events", "--rules"])
        .arg(&rules)
        .arg("-")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("local.yaml") && err.contains("\"mine\""),
        "{err}"
    );
}

#[test]
fn an_operator_rule_is_tried_first() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("local.yaml");
    std::fs::write(
        &rules,
        "mta: exim\nrules:\n  - name: local-greylist\n    literal: ' rejected RCPT '\n    regex: '%{PREFIX}H=%{HOST}%{TAIL} (?:%{SENDER} )?rejected RCPT <(?P<recipient>[^>]*)>: relay not permitted$'\n    class: policy-rejected\n",
    )
    .unwrap();
    let log = dir.path().join("exim.log");
    std::fs::write(&log, LOG).unwrap();
    let out = tarpitctl()
        .args(["replay", "--events", "--rules"])
        .arg(&rules)
        .arg(&log)
        .output()
        .unwrap();
    let ev = succeeded(&out);
    let exim: Vec<&Value> = ev.iter().filter(|e| e["mta"] == "exim").collect();
    assert_eq!(exim[0]["rule"], "local-greylist");
    assert_eq!(exim[0]["class"], "policy-rejected");
}

#[test]
fn a_log_of_many_chunks_replays_every_event_in_order_with_its_line_number() {
    // Over 4 MiB, so the parallel replay splits it into several chunks.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    let mut log = String::new();
    let mut expected = Vec::new();
    for n in 1..=60_000u64 {
        if n % 997 == 0 {
            expected.push(n);
            log.push_str(&format!("Dec  4 10:00:00 mx postfix/smtpd[1]: too many errors after RCPT from unknown[192.0.2.{}]\n", n % 250 + 1));
        } else {
            log.push_str(&format!("Dec  4 10:00:00 mx postfix/smtpd[1]: connect from mail{n}.example.com[198.51.100.{}] padding padding padding padding\n", n % 250 + 1));
        }
    }
    assert!(log.len() > 4 << 20);
    std::fs::write(&path, log).unwrap();
    let out = tarpitctl()
        .args(["replay", "--events"])
        .arg(&path)
        .output()
        .unwrap();
    let ev = succeeded(&out);
    let lines: Vec<u64> = ev.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, expected);
    for (e, n) in ev.iter().zip(&expected) {
        assert_eq!(e["ip"], format!("192.0.2.{}", n % 250 + 1));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("lines=60000 events={} skipped=0", expected.len())),
        "{err}"
    );
}

/// The README's example of an Exim rule file for site-specific ACL wording, as a user copies it.
fn readme_exim_rule_file() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("# /etc/tarpit/local-exim.yaml")
        .expect("the README shows an Exim rule file");
    let block = &readme[start..];
    let end = block.find("```").unwrap();
    let indent = "   ";
    block[..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix(indent).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_exim_rule_example_gives_its_wording_a_class() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("local-exim.yaml");
    std::fs::write(&rules, readme_exim_rule_file()).unwrap();
    let log = dir.path().join("mainlog");
    let line = "2026-12-04 10:00:01 H=(spam.example) [192.0.2.9]:4711 F=<a@spam.example> rejected RCPT <nobody@example.org>: no mailbox here\n";
    std::fs::write(&log, line).unwrap();

    let without = succeeded(
        &tarpitctl()
            .args(["replay", "--events"])
            .arg(&log)
            .output()
            .unwrap(),
    );
    assert_eq!(
        without[0]["class"], "policy-rejected",
        "built in: unknown wording"
    );

    let out = tarpitctl()
        .args(["replay", "--events", "--rules"])
        .arg(&rules)
        .arg(&log)
        .output()
        .unwrap();
    let with = succeeded(&out);
    assert_eq!(with.len(), 1);
    assert_eq!(with[0]["rule"], "local-no-mailbox");
    assert_eq!(with[0]["class"], "unknown-recipient");
    assert_eq!(with[0]["ip"], "192.0.2.9");
    assert_eq!(with[0]["recipient"], "nobody@example.org");
}
