//! The journald source against real journal files made by `systemd-journal-remote` (the test
//! machines run no journald): entries become lines the parser's header splitter understands,
//! the unit filter holds, a saved cursor resumes after its entry, and new entries are picked up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tarpit::parse::header;
use tarpit::source::config::JournaldConfig;
use tarpit::source::journald::{JournaldSource, JOURNALCTL};
use tarpit::source::position::{JournalCursor, Position};
use tarpit::source::Line;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT: &str = "0123456789abcdef0123456789abcdef";
/// 2026-12-04T10:00:00Z in microseconds.
const BASE_US: u64 = 1_796_378_400_000_000;

/// Whether the tools are here; says why not when they are missing.
fn tools_present() -> bool {
    let journalctl = Command::new(JOURNALCTL)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !journalctl {
        eprintln!("skipped: journald source test because {JOURNALCTL} is not installed");
        return false;
    }
    if !Path::new(JOURNAL_REMOTE).exists() {
        eprintln!(
            "skipped: journald source test because {JOURNAL_REMOTE} is missing (apt-get install systemd-journal-remote; scripts/install-deps.sh does)"
        );
        return false;
    }
    true
}

/// One entry in the journal export format.
fn entry(second: u64, unit: &str, program: &str, message: &[u8]) -> Vec<u8> {
    let mut e = format!(
        "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT}\n_HOSTNAME=mx1\n\
         SYSLOG_IDENTIFIER={program}\n_SYSTEMD_UNIT={unit}\n_PID={}\n",
        BASE_US + second * 1_000_000,
        second * 1_000_000 + 5,
        1000 + second
    )
    .into_bytes();
    if message.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        e.extend_from_slice(b"MESSAGE=");
        e.extend_from_slice(message);
    } else {
        // Binary fields: the name, a newline, a little-endian 64-bit length, the bytes.
        e.extend_from_slice(b"MESSAGE\n");
        e.extend_from_slice(&(message.len() as u64).to_le_bytes());
        e.extend_from_slice(message);
    }
    e.extend_from_slice(b"\n\n");
    e
}

/// Appends entries to `dir/test.journal` (created on first use).
fn append(dir: &Path, entries: &[Vec<u8>]) {
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(dir.join("test.journal"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for e in entries {
        stdin.write_all(e).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(dir: &Path) -> JournaldConfig {
    JournaldConfig {
        units: vec!["postfix@-.service".into()],
        directory: Some(PathBuf::from(dir)),
    }
}

async fn next(source: &mut JournaldSource) -> Line {
    tokio::time::timeout(Duration::from_secs(10), source.next_line())
        .await
        .expect("no entry within 10 s")
        .unwrap()
}

fn cursor(line: &Line) -> JournalCursor {
    match &line.position {
        Position::Journal(c) => c.clone(),
        other => panic!("not a journal position: {other:?}"),
    }
}

fn first_entries() -> Vec<Vec<u8>> {
    vec![
        entry(
            1,
            "postfix@-.service",
            "postfix/smtpd",
            b"connect from unknown[192.0.2.1]",
        ),
        entry(2, "ssh.service", "sshd", b"Accepted publickey for root"),
        entry(
            3,
            "postfix@-.service",
            "postfix/smtpd",
            b"NOQUEUE: reject: RCPT from unknown[192.0.2.1]: bad \xff byte",
        ),
    ]
}

#[tokio::test]
async fn entries_become_lines_with_the_journals_time_and_cursor() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &first_entries());
    let mut source = JournaldSource::spawn(&config(dir.path()), None).unwrap();

    let one = next(&mut source).await;
    assert_eq!(
        String::from_utf8_lossy(&one.bytes),
        "2026-12-04T10:00:01.000000+00:00 mx1 postfix/smtpd[1001]: connect from unknown[192.0.2.1]"
    );
    let h = header::split(&one.bytes);
    assert!(h.stamp.is_some(), "the parser sees no time: {h:?}");
    assert_eq!(h.program, Some(&b"postfix/smtpd"[..]));
    assert_eq!(h.body, b"connect from unknown[192.0.2.1]");

    // The sshd entry of another unit is filtered out; the non-UTF-8 message arrives as bytes.
    let three = next(&mut source).await;
    assert!(
        three
            .bytes
            .ends_with(b"RCPT from unknown[192.0.2.1]: bad \xff byte"),
        "{:?}",
        String::from_utf8_lossy(&three.bytes)
    );
    assert!(three
        .bytes
        .starts_with(b"2026-12-04T10:00:03.000000+00:00 mx1 "));
    assert_ne!(cursor(&one), cursor(&three));
    // Positions are saved as text.
    let text = three.position.to_string();
    assert_eq!(text.parse::<Position>().unwrap(), three.position);
}

#[tokio::test]
async fn a_saved_cursor_resumes_after_its_entry_and_new_entries_arrive() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &first_entries());
    let saved = {
        let mut source = JournaldSource::spawn(&config(dir.path()), None).unwrap();
        cursor(&next(&mut source).await)
    };

    let mut source = JournaldSource::spawn(&config(dir.path()), Some(saved)).unwrap();
    let after = next(&mut source).await;
    assert!(
        after.bytes.starts_with(b"2026-12-04T10:00:03"),
        "{:?}",
        String::from_utf8_lossy(&after.bytes)
    );

    // Entries written while the source waits are picked up, in order.
    append(
        dir.path(),
        &[
            entry(4, "postfix@-.service", "postfix/smtpd", b"four"),
            entry(5, "postfix@-.service", "postfix/postscreen", b"five"),
        ],
    );
    let four = next(&mut source).await;
    assert!(four.bytes.ends_with(b"postfix/smtpd[1004]: four"));
    let five = next(&mut source).await;
    assert!(five.bytes.ends_with(b"postfix/postscreen[1005]: five"));

    // And nothing twice.
    let extra = tokio::time::timeout(Duration::from_millis(700), source.next_line()).await;
    assert!(extra.is_err(), "an extra entry: {extra:?}");
}

#[tokio::test]
async fn a_journal_that_cannot_be_read_is_a_clear_error() {
    if !tools_present() {
        return;
    }
    let config = JournaldConfig {
        units: vec![],
        directory: Some("/nonexistent/journal".into()),
    };
    let mut source = JournaldSource::spawn(&config, None).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), source.next_line())
        .await
        .expect("journalctl did not give up within 10 s")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("journalctl exited"), "{text}");
    assert!(
        text.contains("/nonexistent/journal"),
        "the error does not say why: {text}"
    );
}
