//! Whole behaviours of the stall listener on loopback: holding and trickling, the message in the
//! greeting, both bounds, a flooding client, shutdown, the reply strategy, and real SMTP clients
//! (Python's smtplib, swaks) that never get a final `220 ` reply.
//!
//! Most tests run the listener in-process on `127.0.0.1:0`; those about the process (memory,
//! SIGTERM) run `tarpitd --stall-only --config FILE`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tarpit::duration::HumanDuration;
use tarpit::stall::{Shutdown, Stall, StallConfig, StallError, StallStats, Strategy};

const MESSAGE: &str =
    "example.org tarpits this host for sending unwanted mail; see https://example.org/tarpit";

struct Running {
    addr: SocketAddr,
    stats: StallStats,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), StallError>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(interval_ms: u64) -> StallConfig {
    StallConfig {
        listen: vec!["127.0.0.1:0".to_owned()],
        interval: HumanDuration(Duration::from_millis(interval_ms)),
        message: MESSAGE.to_owned(),
        ..StallConfig::default()
    }
}

fn start(config: StallConfig) -> Running {
    let stall = Stall::bind(&config).unwrap();
    let addr = stall.local_addrs()[0];
    let stats = stall.stats();
    let shutdown = Shutdown::new().unwrap();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || stall.run(&stop));
    Running {
        addr,
        stats,
        shutdown,
        thread: Some(thread),
    }
}

/// Connects from the given loopback source address.
fn connect_from(src: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(src), 0).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// Reads for `window`, returning the bytes and when each read returned.
fn read_for(stream: &mut TcpStream, window: Duration) -> (Vec<u8>, Vec<Duration>, bool) {
    let start = Instant::now();
    let mut data = Vec::new();
    let mut times = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = window.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (data, times, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (data, times, true),
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                times.push(start.elapsed());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (data, times, true),
        }
    }
}

/// Whether the peer closes within `within` (EOF or reset), reading and discarding anything sent.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    read_for(stream, within).2
}

fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn held_connection_gets_one_byte_per_interval() {
    let stall = start(config(200));
    let mut client = TcpStream::connect(stall.addr).unwrap();
    let (data, times, closed) = read_for(&mut client, Duration::from_millis(1_100));
    assert!(!closed, "the listener closed a held connection");
    assert!(
        times[0] < Duration::from_millis(150),
        "first byte came after {:?}",
        times[0]
    );
    // 1 byte at once, then one per 200 ms: 6 in 1.1 s (5 to 7 allowing for scheduling).
    assert!(
        (5..=7).contains(&data.len()),
        "got {} bytes: {data:?}",
        data.len()
    );
    assert_eq!(
        data.len(),
        times.len(),
        "bytes arrived in bursts: {times:?}"
    );
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(120),
            "bytes too close: {times:?}"
        );
    }
    assert!(data.starts_with(b"220-e"), "{data:?}");
    assert_eq!(stall.stats.snapshot().current, 1);
}

#[test]
fn greeting_carries_the_message_and_never_ends() {
    let stall = start(config(10));
    let mut client = TcpStream::connect(stall.addr).unwrap();
    let (data, _, closed) = read_for(&mut client, Duration::from_millis(2_500));
    assert!(!closed);
    let text = String::from_utf8(data).unwrap();
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert!(lines.len() >= 4, "{text:?}");
    let complete = &lines[..lines.len() - 1];
    for line in complete {
        assert!(
            line.starts_with("220-"),
            "not a continuation line: {line:?}"
        );
        assert!(line.len() <= 76, "line too long: {line:?}");
    }
    let words: Vec<&str> = complete.iter().map(|l| &l[4..]).collect();
    assert!(
        words.join(" ").contains(MESSAGE),
        "message not carried: {text:?}"
    );
    assert!(
        !text.contains("220 "),
        "a final greeting line was sent: {text:?}"
    );
}

#[test]
fn max_per_ip_closes_extra_connections_at_once() {
    let stall = start(StallConfig {
        max_per_ip: 2,
        ..config(100)
    });
    let src = Ipv4Addr::new(127, 0, 0, 21);
    let mut first = connect_from(src, stall.addr);
    let mut second = connect_from(src, stall.addr);
    let mut third = connect_from(src, stall.addr);
    let started = Instant::now();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "third connection was held"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal was not immediate"
    );
    assert!(!closed_within(&mut first, Duration::from_millis(300)));
    assert!(!closed_within(&mut second, Duration::from_millis(300)));
    // Another address is not affected.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 22), stall.addr);
    assert!(!closed_within(&mut other, Duration::from_millis(300)));
    // A slot freed by a client that leaves is given to the next one.
    drop(first);
    assert!(wait_until(Duration::from_secs(3), || stall
        .stats
        .snapshot()
        .current
        == 2));
    let mut fourth = connect_from(src, stall.addr);
    assert!(!closed_within(&mut fourth, Duration::from_millis(300)));
    let snap = stall.stats.snapshot();
    assert_eq!(snap.refused_per_ip, 1);
    assert_eq!(snap.current, 3);
    let per = snap
        .per_ip
        .iter()
        .find(|e| e.ip == IpAddr::V4(src))
        .unwrap();
    assert_eq!((per.current, per.total, per.refused), (2, 3, 1));
}

#[test]
fn max_connections_closes_new_connections_when_full() {
    let stall = start(StallConfig {
        max_connections: 3,
        ..config(100)
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 0, 30 + i), stall.addr))
        .collect();
    let mut extra = connect_from(Ipv4Addr::new(127, 0, 0, 40), stall.addr);
    assert!(
        closed_within(&mut extra, Duration::from_secs(1)),
        "connection over max_connections was held"
    );
    for client in &mut held {
        assert!(!closed_within(client, Duration::from_millis(200)));
    }
    let snap = stall.stats.snapshot();
    assert_eq!((snap.current, snap.refused_full), (3, 1));
}

#[test]
fn shutdown_closes_every_held_connection() {
    let mut stall = start(config(100));
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(stall.addr).unwrap())
        .collect();
    assert!(wait_until(Duration::from_secs(2), || stall
        .stats
        .snapshot()
        .current
        == 20));
    let started = Instant::now();
    stall.shutdown.trigger().unwrap();
    let result = stall.thread.take().unwrap().join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    for client in &mut clients {
        assert!(
            closed_within(client, Duration::from_secs(1)),
            "a connection survived shutdown"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let snap = stall.stats.snapshot();
    assert_eq!(snap.current, 0);
    assert!(
        TcpStream::connect(stall.addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn reset_and_half_closed_clients_do_not_disturb_the_others() {
    let stall = start(config(50));
    let mut watcher = TcpStream::connect(stall.addr).unwrap();
    for _ in 0..20 {
        // Reset: linger 0 makes close() send RST.
        let s = Socket::from(TcpStream::connect(stall.addr).unwrap());
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        // Half-closed: the client stops sending but keeps reading.
        let half = TcpStream::connect(stall.addr).unwrap();
        half.shutdown(std::net::Shutdown::Write).unwrap();
        drop(half);
    }
    let mut half_open = TcpStream::connect(stall.addr).unwrap();
    half_open.shutdown(std::net::Shutdown::Write).unwrap();
    let (data, _, closed) = read_for(&mut half_open, Duration::from_millis(400));
    assert!(
        !closed && data.len() >= 4,
        "half-closed client no longer fed: {data:?}"
    );
    let (data, _, closed) = read_for(&mut watcher, Duration::from_millis(400));
    assert!(!closed && data.len() >= 4);
    assert!(wait_until(Duration::from_secs(3), || stall
        .stats
        .snapshot()
        .current
        == 2));
    assert_eq!(stall.stats.snapshot().total, 42);
}

#[test]
fn reply_strategy_answers_the_first_command_with_an_endless_451() {
    let stall = start(StallConfig {
        strategy: Strategy::Reply,
        ..config(10)
    });
    let client = TcpStream::connect(stall.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert_eq!(greeting, format!("220 {MESSAGE}\r\n"));
    (&client).write_all(b"EHLO client.example.net\r\n").unwrap();
    let mut reply = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("451-"), "{line:?}");
        reply.push(line);
    }
    assert!(reply.len() >= 3, "{reply:?}");
}

/// The listener's resident memory in kB.
/// The process's anonymous resident memory (heap and stacks): what it allocates, without the
/// code pages of the binary that are read in as new paths run.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tarpitd --stall-only --config FILE` with `stall_yaml` as the `stall:` section, listening on
/// a free loopback port; returns once it is accepting.
fn daemon(stall_yaml: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tarpit.yaml");
    std::fs::write(
        &path,
        format!("policy: {{ignored: true}}\nstall:\n  listen: [\"127.0.0.1:0\"]\n{stall_yaml}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tarpitd"))
        .args(["--stall-only", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tarpitd logs to standard error.
    let out = child.stderr.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("tarpitd exited before listening")
            .unwrap();
        let plain = strip_ansi(&line);
        if let Some(rest) = plain.split("listen=[").nth(1) {
            break rest.split(']').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Daemon {
        child,
        addr,
        _dir: dir,
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn stall_only_daemon_holds_with_the_configured_message_and_stops_on_sigterm() {
    let mut d = daemon("  interval: 10ms\n  message: example.org tarpits you\n");
    let mut clients: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(d.addr).unwrap())
        .collect();
    let (data, _, closed) = read_for(&mut clients[0], Duration::from_millis(800));
    assert!(!closed);
    assert!(
        String::from_utf8_lossy(&data).contains("220-example.org tarpits you\r\n"),
        "{data:?}"
    );
    let pid = d.child.id() as i32;
    // SAFETY: sends SIGTERM to the child we spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    for client in &mut clients {
        assert!(
            closed_within(client, Duration::from_secs(2)),
            "a connection survived SIGTERM"
        );
    }
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn stall_only_refuses_a_broken_stall_section_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "stall:\n  interval: 10s\n  max_per_ipp: 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tarpitd"))
        .args(["--stall-only", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:3:"), "{err}");
    assert!(err.contains("max_per_ipp"), "{err}");
}

#[test]
fn flooding_clients_are_stopped_by_the_small_window_and_cost_no_memory() {
    let d = daemon("  interval: 100ms\n");
    let pid = d.child.id();
    let mut watcher = TcpStream::connect(d.addr).unwrap();
    let before = rss_kb(pid);
    let chunk = vec![b'x'; 64 * 1024];
    let mut pushed = Vec::new();
    let mut floods = Vec::new();
    for i in 0..16u8 {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        socket
            .bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i + 1)), 0).into())
            .unwrap();
        socket.connect(&d.addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        floods.push(socket);
        pushed.push(0usize);
    }
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for (socket, total) in floods.iter().zip(pushed.iter_mut()) {
            if let Ok(n) = socket.send(&chunk) {
                *total += n;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Our receive window is a few KiB and nobody reads: each flooder gets stuck after its own small
    // send buffer plus our window, not after megabytes.
    for total in &pushed {
        assert!(*total < 64 * 1024, "a flooder pushed {total} bytes");
    }
    let after = rss_kb(pid);
    assert!(
        after <= before + 256,
        "listener RSS grew from {before} kB to {after} kB"
    );
    let (data, _, closed) = read_for(&mut watcher, Duration::from_millis(500));
    assert!(
        !closed && data.len() >= 3,
        "other clients starved during the flood"
    );
}

/// Runs a Python smtplib client with a 1 s per-read timeout (like Postfix's per-read
/// `smtp_helo_timeout`) and a 4 s overall watchdog (like Postfix's `daemon_timeout`).
#[test]
fn smtplib_client_never_gets_a_final_greeting_until_its_own_watchdog() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: smtplib test because python3 is not installed (scripts/install-deps.sh installs it)");
        return;
    }
    let stall = start(StallConfig {
        message: "example.org tarpits you".to_owned(),
        ..config(20)
    });
    let script = r#"
import smtplib, signal, sys, time
class Watchdog(Exception): pass
def fire(*_): raise Watchdog()
signal.signal(signal.SIGALRM, fire)
signal.alarm(4)
t0 = time.time()
try:
    smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=1)
    print("RESULT greeting-completed")
except Watchdog:
    print("RESULT watchdog %.1f" % (time.time() - t0))
except Exception as e:
    print("RESULT error %r" % (e,))
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &stall.addr.ip().to_string(),
            &stall.addr.port().to_string(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("RESULT watchdog"),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap = stall.stats.snapshot();
    // 4 s at one byte per 20 ms: about 200 bytes reached the client before its watchdog fired.
    assert!(snap.bytes_sent >= 100, "{snap:?}");
    assert_eq!(snap.total, 1);
}

/// swaks has one timeout for the whole reply (like Exim's `command_timeout`): it is held that long,
/// bytes arriving all along, and never sees a final line (it reports a timeout instead).
#[test]
fn swaks_is_held_until_its_own_timeout_and_never_sees_a_final_greeting() {
    if Command::new("swaks").arg("--version").output().is_err() {
        eprintln!("skipped: swaks test because swaks is not installed (scripts/install-deps.sh installs it)");
        return;
    }
    let stall = start(StallConfig {
        message: "example.org tarpits you".to_owned(),
        ..config(20)
    });
    let started = Instant::now();
    let out = Command::new("swaks")
        .args([
            "--server",
            &stall.addr.to_string(),
            "--to",
            "postmaster@example.org",
            "--timeout",
            "2s",
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{transcript}");
    assert!(
        transcript.contains("Timeout (2 secs) waiting for server response"),
        "{transcript}"
    );
    assert!(
        !transcript.contains("<-  220 "),
        "final greeting seen: {transcript}"
    );
    assert!(
        elapsed >= Duration::from_millis(1_900),
        "gave up after {elapsed:?}: {transcript}"
    );
    let snap = stall.stats.snapshot();
    // One byte per 20 ms while swaks waited: its greeting timer ran out with bytes still coming.
    assert!(snap.bytes_sent >= 60, "{snap:?}");
    assert_eq!(snap.total, 1);
}

#[test]
fn a_port_in_use_is_a_bind_error_that_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = StallConfig {
        listen: vec![taken.local_addr().unwrap().to_string()],
        ..StallConfig::default()
    };
    match Stall::bind(&config) {
        Err(err @ StallError::Bind { .. }) => {
            let text = err.to_string();
            assert!(text.contains("another process"), "{text}");
        }
        Err(other) => panic!("expected a bind error, got {other}"),
        Ok(_) => panic!("bound a port that is in use"),
    }
}
