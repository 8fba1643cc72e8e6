//! The state store under the failures a daemon meets in months of running: a `kill -9` in the
//! middle of a commit, a full disk, a read-only file system, and `tarpitctl` reading while the
//! daemon writes. Each must leave every committed listing readable and nothing half-written.
//!
//! The full-disk and read-only tests mount a small tmpfs in a private mount namespace of their
//! own thread, so they need root (CI runs as root) and never touch the host's mounts.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use tarpit::state::*;
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
const PER_BATCH: u64 = 10;
const WRITER_ENV: &str = "TARPIT_STATE_TEST_WRITER";

/// The prefix of listing `j` of batch `i`: distinct for every (i, j), all inside 2001:db8::/32.
fn prefix(batch: u64, j: u64) -> IpNet {
    let n = batch * PER_BATCH + j;
    let addr = Ipv6Addr::new(0x2001, 0xdb8, (n >> 16) as u16, n as u16, 0, 0, 0, 0);
    IpNet::V6(Ipv6Net::new(addr, 64).unwrap())
}

fn listing(net: IpNet, evidence_bytes: usize) -> NewListing {
    NewListing {
        net,
        since: T0,
        until: T0 + time::Duration::days(7),
        offence: 1,
        reason: format!("test listing of {net}"),
        evidence: Evidence::from_lines(
            (0..16).map(|k| format!("{k} {}", "x".repeat(evidence_bytes))),
        ),
        enforced: true,
        origin: Origin::Policy,
    }
}

fn log_source() -> SourceId {
    SourceId("file:/var/log/mail.log".into())
}

/// Batch `i`: its listings plus the position "after event `i`", as the daemon would commit them.
fn batch(i: u64) -> Batch {
    let mut batch = Batch::new();
    for j in 0..PER_BATCH {
        batch.list(listing(prefix(i, j), 40));
    }
    batch.position(
        log_source(),
        Position::File(FilePosition {
            dev: 1,
            ino: 2,
            offset: i,
            fingerprint: Fingerprint::new(b"first line".to_vec()).unwrap(),
        }),
    );
    batch
}

fn committed_offset(store: &SqliteStore) -> Option<u64> {
    match store.position(&log_source()).unwrap() {
        Some(Position::File(file)) => Some(file.offset),
        Some(other) => panic!("unexpected position {other:?}"),
        None => None,
    }
}

/// The child side of the crash test: resume after the committed position, like the daemon, and
/// commit batches until killed, reporting each commit on stdout once it returned.
fn run_writer(path: &Path) -> ! {
    let mut store = SqliteStore::open(path).unwrap();
    let mut next = committed_offset(&store).map_or(0, |done| done + 1);
    loop {
        store.commit(&batch(next)).unwrap();
        println!("committed {next}");
        next += 1;
    }
}

fn integrity_ok(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok");
}

#[test]
fn kill_9_mid_write_keeps_every_committed_listing() {
    if let Some(path) = std::env::var_os(WRITER_ENV) {
        run_writer(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let exe = std::env::current_exe().unwrap();
    let mut reported_total = 0u64;
    let mut unreported_commits = 0u64;
    for round in 0..8u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_9_mid_write_keeps_every_committed_listing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut reported = Vec::new();
        // Let it commit a round-dependent number of batches, then kill it at a varying moment.
        let wanted = 3 + round * 7;
        while (reported.len() as u64) < wanted {
            let line = lines.next().expect("the writer exited early").unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                reported.push(n.parse::<u64>().unwrap());
            }
        }
        std::thread::sleep(Duration::from_micros(round * 377 % 2000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the writer died of the kill"
        );
        // Lines already written before the kill are commits too.
        for line in lines {
            if let Some(n) = line.unwrap().strip_prefix("committed ") {
                reported.push(n.parse::<u64>().unwrap());
            }
        }
        reported_total += reported.len() as u64;
        let last_reported = *reported.last().unwrap();

        integrity_ok(&path);
        let store = SqliteStore::open(&path).unwrap();
        let done = committed_offset(&store).unwrap();
        // The batch being written when killed may or may not have committed; nothing else.
        assert!(
            done == last_reported || done == last_reported + 1,
            "round {round}: position {done}, last reported {last_reported}"
        );
        unreported_commits += done - last_reported;
        let active = store.active(T0).unwrap();
        assert_eq!(
            active.len() as u64,
            (done + 1) * PER_BATCH,
            "round {round}: whole batches only, each once"
        );
        for i in 0..=done {
            for j in 0..PER_BATCH {
                assert!(
                    store.get(prefix(i, j), T0).unwrap().is_some(),
                    "round {round}: listing {j} of committed batch {i} lost"
                );
            }
        }
        assert!(store.get(prefix(done + 1, 0), T0).unwrap().is_none());
    }
    eprintln!(
        "crash test: {reported_total} commits reported over 8 kills, all kept; \
         {unreported_commits} kills landed after a commit finished but before it was reported"
    );
}

#[test]
fn a_reader_sees_whole_batches_while_the_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut writer = SqliteStore::open(&path).unwrap();
    writer.commit(&batch(0)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let path = path.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let reader = SqliteStore::open_read_only(&path).unwrap();
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                let count = reader.active(T0).unwrap().len() as u64;
                let stats = reader.counts(T0).unwrap();
                assert_eq!(count % PER_BATCH, 0, "a reader saw half a batch");
                assert!(stats.active >= count, "counts went backwards");
                seen.push(count);
                if finished {
                    return seen;
                }
            }
        })
    };
    for i in 1..200 {
        writer.commit(&batch(i)).unwrap();
    }
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "reads went backwards"
    );
    assert_eq!(*seen.last().unwrap(), 200 * PER_BATCH);
    assert!(seen.len() > 2, "the reader read while the writer wrote");
}

/// Runs `body` on a thread of its own in a private mount namespace with a tmpfs of `size` bytes
/// mounted on a fresh folder; returns `None` (after printing why) when that cannot be set up.
fn in_private_tmpfs<T: Send + 'static>(
    test: &str,
    size: usize,
    body: impl FnOnce(&Path) -> T + Send + 'static,
) -> Option<T> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: {test} because it mounts a tmpfs in a private mount namespace, which needs root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().to_path_buf();
    let test = test.to_owned();
    let result = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNS gives only this thread (it unshares its fs_struct)
        // a copy of the mount namespace; the mounts below are invisible to the host.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            let e = std::io::Error::last_os_error();
            eprintln!("skipped: {test} because unshare(CLONE_NEWNS) failed: {e}");
            return None;
        }
        let root = CString::new("/").unwrap();
        // SAFETY: valid C strings; makes every mount in this new namespace private so nothing
        // propagates back to the host.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        mount_tmpfs(&mount_point, size, 0);
        Some(body(&mount_point))
    })
    .join()
    .unwrap();
    drop(dir);
    result
}

fn mount_tmpfs(at: &Path, size: usize, flags: libc::c_ulong) {
    let target = CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
    let fstype = CString::new("tmpfs").unwrap();
    let options = CString::new(format!("size={size},mode=0755")).unwrap();
    // SAFETY: valid C strings; called only inside a private mount namespace.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing_committed() {
    in_private_tmpfs("a_full_disk_is_a_clear_error", 1 << 20, |dir| {
        let path = dir.join("state.db");
        // Ballast to delete later, so space can come back.
        std::fs::write(dir.join("ballast"), vec![7u8; 256 << 10]).unwrap();
        let mut store = SqliteStore::open(&path).unwrap();
        let mut committed = 0u64;
        let err = loop {
            let mut one = Batch::new();
            one.list(listing(prefix(committed, 0), 900));
            match store.commit(&one) {
                Ok(_) => committed += 1,
                Err(e) => break e,
            }
            assert!(committed < 10_000, "the tmpfs never filled");
        };
        eprintln!("full disk after {committed} listings: {err}");
        assert!(
            matches!(err, StoreError::Full { op: Op::Commit, .. }),
            "{err}"
        );
        assert!(err.is_retryable());
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no space left"), "{text}");
        assert!(committed > 10, "only {committed} listings fitted");
        // Everything committed is there, through this connection and a fresh one.
        assert_eq!(store.active(T0).unwrap().len() as u64, committed);
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(reader.active(T0).unwrap().len() as u64, committed);
        drop(reader);
        // Free space: the same batch now commits, and the store carries on.
        std::fs::remove_file(dir.join("ballast")).unwrap();
        let mut one = Batch::new();
        one.list(listing(prefix(committed, 0), 900));
        store.commit(&one).unwrap();
        drop(store);
        integrity_ok(&path);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.active(T0).unwrap().len() as u64, committed + 1);
        committed
    });
}

#[test]
fn a_read_only_file_system_is_a_clear_error_and_readers_still_read() {
    in_private_tmpfs("a_read_only_file_system_is_a_clear_error", 8 << 20, |dir| {
        let path = dir.join("state.db");
        {
            let mut store = SqliteStore::open(&path).unwrap();
            store.commit(&batch(0)).unwrap();
        }
        remount(dir, libc::MS_RDONLY);
        let err = SqliteStore::open(&path).unwrap_err();
        eprintln!("read-only file system: {err}");
        assert!(
            matches!(err, StoreError::ReadOnly { op: Op::Open, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("state.db") && text.contains("read-only"),
            "{text}"
        );

        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(reader.active(T0).unwrap().len() as u64, PER_BATCH);
        drop(reader);

        remount(dir, 0);
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.active(T0).unwrap().len() as u64, PER_BATCH);
        store.commit(&batch(1)).unwrap();
        assert_eq!(store.active(T0).unwrap().len() as u64, 2 * PER_BATCH);
    });
}

fn remount(at: &Path, flags: libc::c_ulong) {
    let target = CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string; remounts the test's own tmpfs inside its private namespace.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | flags,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "remount: {}", std::io::Error::last_os_error());
}

#[test]
fn a_read_only_file_is_a_clear_error_when_not_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: a_read_only_file_is_a_clear_error_when_not_root because root writes through file modes (the read-only file system test covers root)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("state.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.commit(&batch(0)).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.active(T0).unwrap().len() as u64, PER_BATCH);
}

#[test]
fn a_covering_lookup_finds_a_plain_address_in_a_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    store.commit(&batch(0)).unwrap();
    let inside: IpAddr = "2001:db8:0:3:abcd::25".parse().unwrap();
    let found = store.covering(inside, T0).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].net, prefix(0, 3));
}
