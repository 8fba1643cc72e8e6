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
