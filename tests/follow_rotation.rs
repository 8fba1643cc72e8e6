//! Following a log file that is being written and rotated: every line arrives exactly once, in
//! order, through rename+create and copytruncate rotations, restarts from a saved position (also
//! across a rotation while stopped), a file that appears late, and partial lines.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tarpit::source::follow::{FileSource, FollowOptions};
use tarpit::source::position::{FilePosition, Position};
use tarpit::source::Line;

/// Options that make the follower lag behind the writer (small batches, a short channel), so
/// that rotations happen while lines are still unread.
fn options(poll_only: bool) -> FollowOptions {
    FollowOptions {
        poll_interval: Duration::from_millis(50),
        rotate_grace: Duration::from_millis(300),
        batch_lines: 7,
        channel_batches: 2,
        poll_only,
    }
}

fn numbered(n: u64) -> String {
    // Lines of varying length, so reads end anywhere inside them.
    format!(
        "{n:08} mx postfix/smtpd[1]: {}\n",
        "x".repeat((n % 37) as usize)
    )
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn number_of(line: &Line) -> u64 {
    std::str::from_utf8(&line.bytes[..8])
        .unwrap()
        .parse()
        .unwrap()
}

/// Collects `count` lines or fails after `limit`, with a pause now and then to lag behind.
async fn collect(source: &mut FileSource, count: usize, limit: Duration) -> Vec<Line> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, source.next_line()).await {
            Ok(Some(line)) => got.push(line),
            Ok(None) => panic!("the follower stopped after {} lines", got.len()),
            Err(_) => panic!(
                "only {} of {count} lines within {limit:?}; got runs {}",
                got.len(),
                runs(&got)
            ),
        }
        if got.len() % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    got
}

/// The numbers received, as runs of consecutive ones: `0-4999 5000-9999`.
fn runs(lines: &[Line]) -> String {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for n in lines.iter().map(number_of) {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out.iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts that `lines` are numbered `from`, `from + 1`, ... with nothing missing or repeated.
fn assert_in_order(lines: &[Line], from: u64) {
    for (i, line) in lines.iter().enumerate() {
        let want = from + i as u64;
        let got = number_of(line);
        assert_eq!(
            got,
            want,
            "line {i}: got {:?}",
            String::from_utf8_lossy(&line.bytes)
        );
        assert_eq!(
            format!("{}\n", String::from_utf8_lossy(&line.bytes)),
            numbered(want)
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Rotation {
    /// `mv mail.log mail.log.N`; the writer goes on in the old file for a moment, then opens a
    /// new `mail.log` (what syslog does between logrotate's rename and its HUP).
    RenameCreate,
    /// `cp mail.log mail.log.1; truncate mail.log` with the writer paused (logrotate's
    /// copytruncate).
    CopyTruncate,
}

async fn rotation_loses_and_repeats_nothing(how: Rotation, poll_only: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    let total = 30_000;
    let writer = {
        let path = path.clone();
        thread::spawn(move || write_numbered_rotating(path, total, 5, how))
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut source = FileSource::spawn(&path, None, options(poll_only)).unwrap();
    let lines = collect(&mut source, total as usize, Duration::from_secs(15)).await;
    writer.join().unwrap();
    assert_in_order(&lines, 0);
    // Nothing more arrives: no line was handed out twice.
    let extra = tokio::time::timeout(Duration::from_millis(700), source.next_line()).await;
    assert!(extra.is_err(), "an extra line: {:?}", extra.ok().flatten());
}

/// Writes `total` numbered lines to `path`, rotating `rotations` times along the way.
fn write_numbered_rotating(path: PathBuf, total: u64, rotations: u64, how: Rotation) {
    let mut file = append(&path);
    let every = total / (rotations + 1);
    let mut rotated = 0;
    let mut n = 0;
    while n < total {
        file.write_all(numbered(n).as_bytes()).unwrap();
        n += 1;
        if n % 200 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        if n % every == 0 && rotated < rotations {
            rotated += 1;
            match how {
                Rotation::RenameCreate => {
                    shift_rotated(&path, rotated);
                    fs::rename(&path, path.with_extension("log.1")).unwrap();
                    // Syslog writes on into the renamed file until it reopens.
                    for _ in 0..20.min(total - n) {
                        file.write_all(numbered(n).as_bytes()).unwrap();
                        n += 1;
                    }
                    thread::sleep(Duration::from_millis(5));
                    file = append(&path);
                }
                Rotation::CopyTruncate => {
                    shift_rotated(&path, rotated);
                    fs::copy(&path, path.with_extension("log.1")).unwrap();
                    file.set_len(0).unwrap();
                }
            }
        }
    }
}

/// Renames `mail.log.N` to `mail.log.N+1`, newest last, as logrotate does before rotating.
fn shift_rotated(path: &Path, count: u64) {
    for k in (1..count).rev() {
        let from = path.with_extension(format!("log.{k}"));
        fs::rename(&from, path.with_extension(format!("log.{}", k + 1))).unwrap();
    }
}

#[tokio::test]
async fn rename_create_rotation_loses_and_repeats_nothing() {
    rotation_loses_and_repeats_nothing(Rotation::RenameCreate, false).await;
}

#[tokio::test]
async fn copytruncate_rotation_loses_and_repeats_nothing() {
    rotation_loses_and_repeats_nothing(Rotation::CopyTruncate, false).await;
}

#[tokio::test]
async fn rotations_are_followed_by_polling_without_inotify() {
    rotation_loses_and_repeats_nothing(Rotation::RenameCreate, true).await;
    rotation_loses_and_repeats_nothing(Rotation::CopyTruncate, true).await;
}

fn file_position(line: &Line) -> FilePosition {
    match &line.position {
        Position::File(p) => *p,
        other => panic!("not a file position: {other:?}"),
    }
}

fn write_range(path: &Path, range: std::ops::Range<u64>) {
    let mut f = append(path);
    for n in range {
        f.write_all(numbered(n).as_bytes()).unwrap();
    }
}

/// Reads 100 of 300 lines, stops (keeping the saved position as text, as the state store
/// does), lets `meanwhile` change the log, restarts and expects every later line exactly once.
async fn restart_resumes(meanwhile: impl FnOnce(&Path), then_total: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    write_range(&path, 0..300);
    let mut source = FileSource::spawn(&path, None, options(false)).unwrap();
    let first = collect(&mut source, 100, Duration::from_secs(10)).await;
    assert_in_order(&first, 0);
    let saved = first[99].position.to_string();
    drop(source);

    meanwhile(&path);

    let Position::File(pos) = saved.parse::<Position>().unwrap() else {
        panic!("not a file position: {saved}");
    };
    let mut source = FileSource::spawn(&path, Some(pos), options(false)).unwrap();
    let rest = collect(
        &mut source,
        (then_total - 100) as usize,
        Duration::from_secs(10),
    )
    .await;
    assert_in_order(&rest, 100);
    let extra = tokio::time::timeout(Duration::from_millis(700), source.next_line()).await;
    assert!(extra.is_err(), "an extra line: {:?}", extra.ok().flatten());
}

#[tokio::test]
async fn a_restart_resumes_at_the_saved_position() {
    restart_resumes(|path| write_range(path, 300..400), 400).await;
}

#[tokio::test]
async fn a_rename_rotation_while_stopped_finishes_the_old_file_first() {
    restart_resumes(
        |path| {
            write_range(path, 300..350);
            fs::rename(path, path.with_extension("log.1")).unwrap();
            write_range(path, 350..500);
        },
        500,
    )
    .await;
}

#[tokio::test]
async fn two_rotations_while_stopped_are_read_in_order() {
    restart_resumes(
        |path| {
            write_range(path, 300..350);
            fs::rename(path, path.with_extension("log.1")).unwrap();
            write_range(path, 350..420);
            fs::rename(path.with_extension("log.1"), path.with_extension("log.2")).unwrap();
            fs::rename(path, path.with_extension("log.1")).unwrap();
            write_range(path, 420..500);
        },
        500,
    )
    .await;
}

#[tokio::test]
async fn an_old_file_under_any_name_is_found_by_its_inode() {
    restart_resumes(
        |path| {
            fs::rename(path, path.parent().unwrap().join("archived")).unwrap();
            write_range(path, 300..320);
        },
        320,
    )
    .await;
}

#[tokio::test]
async fn a_copytruncate_while_stopped_finishes_from_the_copy() {
    restart_resumes(
        |path| {
            write_range(path, 300..310);
            fs::copy(path, path.with_extension("log.1")).unwrap();
            OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(0)
                .unwrap();
            write_range(path, 310..1000);
        },
        1000,
    )
    .await;
}

#[tokio::test]
async fn a_file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("exim4");
    let path = logs.join("mainlog");
    let mut source = FileSource::spawn(&path, None, options(false)).unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(300), source.next_line()).await;
    assert!(nothing.is_err());
    // Even the directory was missing, so this is found by polling.
    fs::create_dir(&logs).unwrap();
    write_range(&path, 0..50);
    let lines = collect(&mut source, 50, Duration::from_secs(10)).await;
    assert_in_order(&lines, 0);
}

#[tokio::test]
async fn a_partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    let mut f = append(&path);
    f.write_all(b"first\nsec").unwrap();
    let mut source = FileSource::spawn(&path, None, options(false)).unwrap();
    let first = source.next_line().await.unwrap();
    assert_eq!(first.bytes, b"first");
    assert_eq!(file_position(&first).offset, 6);
    let early = tokio::time::timeout(Duration::from_millis(500), source.next_line()).await;
    assert!(early.is_err(), "half a line was handed out: {early:?}");
    f.write_all(b"ond\nthi").unwrap();
    let second = source.next_line().await.unwrap();
    assert_eq!(second.bytes, b"second");
    assert_eq!(file_position(&second).offset, 13);
}
