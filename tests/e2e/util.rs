//! Helpers shared by the end-to-end tests (`tests/e2e_postfix.rs`, `tests/e2e_exim.rs`):
//! running commands with a bound, waiting for a condition, asking the system about users.

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program args` bounded by `limit` (coreutils `timeout`), capturing its output.
pub fn bounded(limit: Duration, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", &format!("{}", limit.as_secs_f64())])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("timeout(1) runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Polls `check` every few milliseconds until it holds or `within` passes.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    check()
}

pub fn id_of(flag: &str, user: &str) -> String {
    let out = bounded(Duration::from_secs(5), "id", &[flag, user]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Seconds from the environment variable `name`, or `default` when it is unset.
pub fn seconds_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be whole seconds, not {v:?}"))
    })
}

/// For `scripts/stuck-time.sh`: watches the first connection that `connections` (`ss` lines)
/// lists, seen at `connected`, once a second, until it is gone or `limit` has passed since then,
/// printing progress every 10 minutes as `stuck-time:` lines. Returns how long it stayed
/// connected and whether it is still connected (the limit came first).
pub fn watch_connection(
    connected: Instant,
    limit: Duration,
    connections: impl Fn() -> String,
) -> (Duration, bool) {
    let listed = connections();
    eprintln!("stuck-time: the sender connected: {listed}");
    // Its two endpoints: the queue columns before them change as bytes come and go.
    let endpoints = |line: &str| -> String {
        line.split_whitespace()
            .filter(|w| w.contains(':'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = endpoints(listed.lines().next().unwrap_or_default());
    assert!(!first.is_empty(), "no connection to watch: {listed:?}");
    let mut last_report = Instant::now();
    let mut still = true;
    while connected.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        if !connections().lines().any(|l| endpoints(l) == first) {
            still = false;
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(600) {
            eprintln!(
                "stuck-time: still connected after {} s",
                connected.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
    }
    (connected.elapsed(), still)
}

/// Prints the `stuck-time:` figure for `who`, and the sender's log `lines` that tell why.
pub fn report_stuck_time(who: &str, stuck: Duration, still: bool, lines: &[&str]) {
    for line in lines {
        eprintln!("stuck-time: sender log: {line}");
    }
    let secs = stuck.as_secs();
    if still {
        eprintln!("stuck-time: {who}: still connected after {secs} s");
    } else {
        eprintln!("stuck-time: {who}: one delivery attempt stayed connected {secs} s");
    }
}
