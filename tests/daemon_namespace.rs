//! `tarpitd --config FILE` for real, in a private network namespace it shares with nobody:
//! a sender that crosses the threshold in a followed Postfix log is in the kernel set within
//! moments; a restart (clean, and `kill -9`) keeps it and counts no line twice; an allowlisted
//! client is never listed; `tarpitctl` sees and changes it all through the control socket.
//!
//! Needs root (network namespaces, nftables); skips with a reason otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace made for one test, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let name = format!("tarpit-d-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        let ns = Netns(name);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args[0])
            .args(&args[1..])
            .output()
            .expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The addresses in the listed_v4 set, per `nft -j` (an independent reading of the kernel).
    fn listed_v4(&self) -> Vec<String> {
        let out = self.run(&["nft", "-j", "list", "set", "inet", "tarpit", "listed_v4"]);
        let Ok(v) = serde_json::from_str::<Value>(&out) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["set"]["elem"].as_array().into_iter().flatten() {
                if let Some(a) = e["elem"]["val"].as_str().or_else(|| e.as_str()) {
                    found.push(a.to_owned());
                }
            }
        }
        found
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    ns: Netns,
}

impl Setup {
    fn new(tag: &str) -> Option<Setup> {
        if !is_root() {
            eprintln!("skipped: needs root for network namespaces and nftables");
            return None;
        }
        let Some(ns) = Netns::new(tag) else {
            eprintln!("skipped: cannot create a network namespace (ip netns add failed)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "sources:\n  - file: {log}\nstate: {{ path: {state} }}\ncontrol: {{ socket: {sock}, group: root }}\nstall: {{ listen: [\"[::]:2525\"] }}\npolicy: {{ threshold: 10, window: 10m }}\nban: {{ first: 5m, factor: 4 }}\n",
            log = dir.path().join("mail.log").display(),
            state = dir.path().join("state/state.db").display(),
            sock = dir.path().join("control.sock").display(),
        );
        std::fs::write(dir.path().join("tarpit.yaml"), config).unwrap();
        std::fs::write(dir.path().join("mail.log"), "").unwrap();
        Some(Setup { dir, ns })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self) -> Child {
        self.start_with(&[])
    }

    /// Starts the daemon in the namespace; `prefix` runs before it (e.g. a mount namespace
    /// with a tiny file system for the state).
    fn start_with(&self, prefix: &[&str]) -> Child {
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = self.ns.command(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_tarpitd"));
                c
            }
            None => self.ns.command(env!("CARGO_BIN_EXE_tarpitd")),
        };
        let mut child = command
            .arg("--config")
            .arg(self.path("tarpit.yaml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("tarpitd.log")).unwrap())
            .spawn()
            .unwrap();
        let sock = self.path("control.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if sock.exists() && self.ctl(&["status", "--json"]).0 == 0 {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "tarpitd did not come up:\n{}",
            std::fs::read_to_string(self.path("tarpitd.log")).unwrap_or_default()
        );
    }

    fn ctl(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
            .arg("--socket")
            .arg(self.path("control.sock"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn listings(&self) -> Vec<Value> {
        let (_, out) = self.ctl(&["list", "--json"]);
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Appends `n` relay rejections of `ip` (weight 5 each) to the followed log.
    fn reject(&self, ip: &str, n: usize, tag: &str) {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("mail.log"))
            .unwrap();
        let now = jiff::ZonedDateTime::now()
            .strftime("%b %e %H:%M:%S")
            .to_string();
        for i in 0..n {
            writeln!(
                log,
                "{now} mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <u{tag}{i}@example.net>: Relay access denied; from=<s@example.com> to=<u{tag}{i}@example.net> proto=ESMTP helo=<spam.example.com>"
            )
            .unwrap();
        }
    }

    fn wait_listed(&self, ip: &str, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.ns.listed_v4().iter().any(|a| a == ip) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

fn stop(mut child: Child, signal: i32) {
    // SAFETY: kill on a pid we own; failure is harmless here.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let _ = child.wait();
}

fn only_listing_of<'a>(listings: &'a [Value], ip: &str) -> &'a Value {
    let mine: Vec<&Value> = listings.iter().filter(|l| l["address"] == ip).collect();
    assert_eq!(mine.len(), 1, "expected one listing of {ip}: {listings:?}");
    mine[0]
}

#[test]
fn a_sender_over_the_threshold_is_listed_and_a_restart_keeps_it() {
    let Some(s) = Setup::new("list") else { return };
    let daemon = s.start();
    s.reject("198.51.100.7", 1, "a");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.ns.listed_v4().is_empty(),
        "one rejection is under the threshold"
    );
    s.reject("198.51.100.7", 1, "b");
    let took = s.wait_listed("198.51.100.7", Duration::from_secs(5));
    assert!(
        took.is_some(),
        "not listed:\n{}",
        std::fs::read_to_string(s.path("tarpitd.log")).unwrap()
    );
    eprintln!(
        "listed {:?} after the deciding line was written",
        took.unwrap()
    );
    let listing = only_listing_of(&s.listings(), "198.51.100.7").clone();
    assert_eq!(listing["offences"], 1);
    assert!(
        listing["reason"].as_str().unwrap().contains("relay-denied"),
        "{listing}"
    );
    assert_eq!(listing["evidence"].as_array().unwrap().len(), 2);

    // A clean restart: the listing stays in the kernel and in the state, and the two lines
    // already read are not read again.
    stop(daemon, libc::SIGTERM);
    assert!(
        s.ns.listed_v4().iter().any(|a| a == "198.51.100.7"),
        "the kernel set outlives the daemon"
    );
    let daemon = s.start();
    let again = s.listings();
    assert_eq!(
        only_listing_of(&again, "198.51.100.7")["since"],
        listing["since"]
    );

    // kill -9 mid-stream, with more lines written while it is down: still one listing of the
    // first offender, and the new offender listed once after the restart.
    s.reject("203.0.113.9", 1, "c");
    std::thread::sleep(Duration::from_millis(300));
    stop(daemon, libc::SIGKILL);
    s.reject("203.0.113.9", 1, "d");
    let daemon = s.start();
    assert!(s
        .wait_listed("203.0.113.9", Duration::from_secs(5))
        .is_some());
    let after = s.listings();
    only_listing_of(&after, "198.51.100.7");
    assert_eq!(only_listing_of(&after, "203.0.113.9")["offences"], 1);
    let held = s.ns.listed_v4();
    assert!(
        held.contains(&"198.51.100.7".to_owned()) && held.contains(&"203.0.113.9".to_owned()),
        "{held:?}"
    );
    stop(daemon, libc::SIGTERM);
}

#[test]
fn an_allowlisted_client_is_never_listed_and_del_lets_a_host_out() {
    let Some(s) = Setup::new("allow") else { return };
    let daemon = s.start();
    // 10.0.0.0/8 is in the default allowlist (private ranges).
    s.reject("10.1.2.3", 10, "a");
    s.reject("192.0.2.44", 2, "b");
    assert!(s
        .wait_listed("192.0.2.44", Duration::from_secs(5))
        .is_some());
    assert!(!s.ns.listed_v4().contains(&"10.1.2.3".to_owned()));
    assert!(!s.listings().iter().any(|l| l["address"] == "10.1.2.3"));
    let (code, _) = s.ctl(&["add", "10.1.2.3"]);
    assert_eq!(code, 4, "adding an allowlisted host needs --force");

    let (code, _) = s.ctl(&["del", "192.0.2.44"]);
    assert_eq!(code, 0);
    assert!(
        !s.ns.listed_v4().contains(&"192.0.2.44".to_owned()),
        "del removes it from the kernel at once"
    );
    assert!(!s.listings().iter().any(|l| l["address"] == "192.0.2.44"));
    // Its next offence escalates: 5 min × 4.
    s.reject("192.0.2.44", 2, "c");
    assert!(s
        .wait_listed("192.0.2.44", Duration::from_secs(5))
        .is_some());
    let l = only_listing_of(&s.listings(), "192.0.2.44").clone();
    assert_eq!(l["offences"], 2, "{l}");
    let (code, _) = s.ctl(&[
        "add",
        "198.51.100.200",
        "--for",
        "2h",
        "--reason",
        "seen by hand",
    ]);
    assert_eq!(code, 0);
    assert!(s.ns.listed_v4().contains(&"198.51.100.200".to_owned()));
    stop(daemon, libc::SIGTERM);
}

#[test]
fn a_full_disk_is_reported_and_the_daemon_keeps_enforcing() {
    let Some(s) = Setup::new("full") else { return };
    let state = s.path("state");
    std::fs::create_dir_all(&state).unwrap();
    // The state lives on a 160 KiB file system in a mount namespace of the daemon's own.
    let script = format!(
        "mount -t tmpfs -o size=160k tmpfs {} && exec \"$0\" \"$@\"",
        state.display()
    );
    let daemon = s.start_with(&["unshare", "-m", "sh", "-c", &script]);
    // Listings with long evidence lines until the disk is full.
    let long = "x".repeat(900);
    let mut listed = 0;
    for i in 1..=120u32 {
        let ip = format!("203.0.113.{}", i % 250 + 1);
        let ip = if i > 250 {
            format!("198.51.100.{i}")
        } else {
            ip
        };
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(s.path("mail.log"))
            .unwrap();
        let now = jiff::ZonedDateTime::now()
            .strftime("%b %e %H:%M:%S")
            .to_string();
        for k in 0..2 {
            writeln!(log, "{now} mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <{long}{k}@example.net>: Relay access denied; from=<s@example.com> to=<u{k}@example.net> proto=ESMTP helo=<x>").unwrap();
        }
        drop(log);
        if s.wait_listed(&ip, Duration::from_secs(3)).is_some() {
            listed += 1;
        }
    }
    let log = std::fs::read_to_string(s.path("tarpitd.log")).unwrap();
    assert!(
        log.contains("cannot commit state; still enforcing"),
        "the full disk was not reported:\n{log}"
    );
    assert_eq!(
        listed, 120,
        "every offender reaches the kernel set, full disk or not"
    );
    stop(daemon, libc::SIGTERM);
}

#[test]
fn a_bad_reload_keeps_the_old_configuration_and_a_good_one_applies() {
    let Some(s) = Setup::new("reload") else {
        return;
    };
    let daemon = s.start();
    let good = std::fs::read_to_string(s.path("tarpit.yaml")).unwrap();
    std::fs::write(
        s.path("tarpit.yaml"),
        format!("{good}policy: {{ treshold: 3 }}\n"),
    )
    .unwrap();
    let (code, _) = s.ctl(&["reload"]);
    assert_eq!(code, 1, "a broken configuration is refused");
    // The old policy (threshold 10) is still in force: one relay rejection (5) lists nobody.
    s.reject("192.0.2.80", 1, "a");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.ns.listed_v4().contains(&"192.0.2.80".to_owned()));
    // A lower threshold applies at once.
    std::fs::write(
        s.path("tarpit.yaml"),
        good.replace("threshold: 10", "threshold: 5"),
    )
    .unwrap();
    // SIGHUP does what `tarpitctl reload` does.
    // SAFETY: kill on a pid we own.
    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGHUP);
    }
    std::thread::sleep(Duration::from_millis(500));
    s.reject("192.0.2.81", 1, "b");
    assert!(
        s.wait_listed("192.0.2.81", Duration::from_secs(5))
            .is_some(),
        "the reloaded threshold applies"
    );
    stop(daemon, libc::SIGTERM);
}

#[test]
fn every_tarpitctl_command_works_against_the_running_daemon() {
    let Some(s) = Setup::new("ctl") else { return };
    let daemon = s.start();
    let json = |args: &[&str]| -> (i32, Value) {
        let (code, out) = s.ctl(args);
        (code, serde_json::from_str(&out).unwrap_or(Value::Null))
    };
    let (code, status) = json(&["status", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["table_present"], true);
    assert_eq!(
        status["sources"][0]["name"],
        format!("file:{}", s.path("mail.log").display())
    );

    s.reject("198.51.100.9", 2, "a");
    assert!(s
        .wait_listed("198.51.100.9", Duration::from_secs(5))
        .is_some());
    let (code, show) = json(&["show", "198.51.100.9", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(show["listing"]["offences"], 1);
    assert_eq!(show["listing"]["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(show["allowlist"]["allowed"], false);
    let (code, _) = json(&["show", "192.0.2.250", "--json"]);
    assert_eq!(code, 1, "a host that is not listed");

    let (code, stats) = json(&["stats", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(stats["events_by_class"]["relay-denied"], 2);
    assert_eq!(stats["listings_by_class"]["relay-denied"], 1);

    // A manual /64 listing: a plain address inside it finds it.
    let (code, _) = json(&["add", "2001:db8:5:6::/64", "--for", "1h", "--json"]);
    assert_eq!(code, 0);
    let (code, inside) = json(&["show", "2001:db8:5:6::77", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(inside["listing"]["address"], "2001:db8:5:6::/64");
    assert_eq!(inside["listing"]["source"], "manual");

    let (code, _) = json(&["del", "192.0.2.251"]);
    assert_eq!(code, 1, "deleting what is not listed");
    let (code, _) = s.ctl(&["flush"]);
    assert_eq!(code, 2, "flush needs --yes");
    let (code, flushed) = json(&["flush", "--yes", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(flushed["removed"], 2);
    assert!(s.ns.listed_v4().is_empty());
    assert_eq!(s.listings().len(), 0);
    let (code, _) = json(&["reload", "--json"]);
    assert_eq!(code, 0);

    // --config reads the socket from the daemon's own configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .arg("--config")
        .arg(s.path("tarpit.yaml"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    stop(daemon, libc::SIGTERM);
    // With the daemon down, list reads the state database and changes are refused.
    let out = Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .arg("--config")
        .arg(s.path("tarpit.yaml"))
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = s.ctl(&["add", "192.0.2.9"]);
    assert_eq!(code, 3, "daemon unreachable");
}

/// `tarpitctl --config … ARGS` with a UTF-8 locale, so the chart is drawn with blocks.
fn ctl_config(s: &Setup, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .arg("--config")
        .arg(s.path("tarpit.yaml"))
        .args(args)
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap()
}

/// The sum of one figure over every hour of a `stats --history --json` reply.
fn history_sum(history: &Value, figure: &str) -> u64 {
    history["hours"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h[figure].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn stats_history_shows_this_hours_events_and_listings_with_the_daemon_up_and_down() {
    let Some(s) = Setup::new("hist") else { return };
    let daemon = s.start();
    s.reject("198.51.100.12", 2, "a");
    assert!(s
        .wait_listed("198.51.100.12", Duration::from_secs(5))
        .is_some());
    let (code, _) = s.ctl(&["add", "192.0.2.12", "--for", "1h"]);
    assert_eq!(code, 0);

    let check = |history: &Value, when: &str| {
        assert_eq!(history_sum(history, "events"), 2, "{when}: {history}");
        assert_eq!(history_sum(history, "listings"), 2, "{when}: {history}");
        let hours = history["hours"].as_array().unwrap();
        let last = hours.last().unwrap();
        assert_eq!(
            last["events_by_class"]["relay-denied"], 2,
            "{when}: {history}"
        );
        // The hour they are in is the one `now` falls in (or, across an hour boundary, the
        // one before).
        let start: jiff::Timestamp = last["start"].as_str().unwrap().parse().unwrap();
        let now: jiff::Timestamp = history["now"].as_str().unwrap().parse().unwrap();
        let age = now.duration_since(start).as_secs();
        assert!((0..7_200).contains(&age), "{when}: {history}");
    };
    let (code, out) = s.ctl(&["stats", "--history", "--json"]);
    assert_eq!(code, 0);
    let up: Value = serde_json::from_str(&out).unwrap();
    check(&up, "daemon up");
    let out = ctl_config(&s, &["stats", "--history", "--days", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let chart = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        chart.contains("rejection events: 2 in all, at most 2 in an hour (█ = 2)"),
        "{chart}"
    );
    assert!(chart.contains("new listings: 2 in all"), "{chart}");
    assert!(chart.trim_end().ends_with("in all"), "{chart}");
    assert!(chart.contains('█'), "{chart}");

    // Stopped: the same figures from the state database.
    stop(daemon, libc::SIGTERM);
    let out = ctl_config(&s, &["stats", "--history", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("read from the state database"));
    let down: Value = serde_json::from_slice(&out.stdout).unwrap();
    check(&down, "daemon down");
    let out = ctl_config(&s, &["stats", "--history", "--ascii"]);
    assert_eq!(out.status.code(), Some(0));
    let chart = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(chart.is_ascii() && chart.contains("(@ = 2)"), "{chart}");
}

/// Scrapes the daemon's metrics endpoint from inside its namespace with `tests/metrics/scrape.py`,
/// which parses the answer with the reference Python client (`python3-prometheus-client`).
fn scrape(s: &Setup, format: &str, extra: &[&str]) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/scrape.py");
    // Debian's python3-prometheus-client is installed for Debian's own interpreter.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut c = s.ns.command(python);
    c.arg(script)
        .arg("http://127.0.0.1:9465/metrics")
        .arg(format)
        .args(extra);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "the {format} scrape failed or did not parse (python3-prometheus-client comes with scripts/install-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scraped: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scraped["families"]
        .as_array()?
        .iter()
        .flat_map(|f| f["samples"].as_array().into_iter().flatten())
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

#[test]
fn the_metrics_endpoint_shows_the_real_figures_in_both_exposition_formats() {
    let Some(s) = Setup::new("metrics") else {
        return;
    };
    let mut config = std::fs::read_to_string(s.path("tarpit.yaml")).unwrap();
    config.push_str("metrics: { listen: \"127.0.0.1:9465\" }\n");
    std::fs::write(s.path("tarpit.yaml"), config).unwrap();
    let daemon = s.start();
    s.reject("198.51.100.7", 2, "a");
    s.reject("192.0.2.30", 1, "b");
    assert!(s
        .wait_listed("198.51.100.7", Duration::from_secs(5))
        .is_some());
    let (_, by_hand) = s.ctl(&["add", "2001:db8:7::/64", "--for", "1h"]);
    assert!(!by_hand.is_empty());

    // Prometheus's own request: OpenMetrics, parsed strictly; a connection held by the stall
    // listener meanwhile, and three hostile clients connected to the endpoint first (silent,
    // garbage, an endless header), which must not make it wait for their 5 s read deadline.
    let om = scrape(&s, "openmetrics", &["--hostile", "127.0.0.1:2525"]);
    assert!(om["seconds"].as_f64().unwrap() < 2.0, "{}", om["seconds"]);
    assert!(
        om["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{om}"
    );
    let v = |name: &str, labels: &[(&str, &str)]| {
        sample(&om, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in {om}"))
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(v("tarpit_build_info", &[("version", version)]), 1.0);
    assert_eq!(v("tarpit_events_total", &[("class", "relay-denied")]), 3.0);
    assert_eq!(v("tarpit_events_total", &[("class", "rbl-listed")]), 0.0);
    let active = |family, offence| {
        v(
            "tarpit_listings_active",
            &[("family", family), ("offence", offence)],
        )
    };
    assert_eq!(active("ipv4", "1"), 1.0, "198.51.100.7, a first offence");
    assert_eq!(active("ipv6", "1"), 1.0, "the /64 listed by hand");
    assert_eq!(active("ipv4", "2") + active("ipv4", "4+"), 0.0);
    assert_eq!(v("tarpit_listings_total", &[]), 2.0);
    let source = format!("file:{}", s.path("mail.log").display());
    assert_eq!(
        v("tarpit_source_lines_read_total", &[("source", &source)]),
        3.0
    );
    assert_eq!(v("tarpit_source_events_total", &[("source", &source)]), 3.0);
    let lag = v("tarpit_source_lag_seconds", &[("source", &source)]);
    assert!(
        (0.0..120.0).contains(&lag),
        "lines stamped now lag by seconds, not {lag}"
    );
    assert_eq!(v("tarpit_stall_connections_held", &[]), 1.0);
    assert_eq!(v("tarpit_stall_connections_accepted_total", &[]), 1.0);
    let (_, stats) = s.ctl(&["stats", "--json"]);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        v("tarpit_diverted_packets_total", &[]),
        stats["diverted_packets"].as_f64().unwrap(),
        "the kernel's counter, as tarpitctl stats reads it"
    );
    let families: Vec<&str> = om["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        families.contains(&"tarpit_stall_held_seconds"),
        "{families:?}"
    );
    let held = om["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "tarpit_stall_held_seconds")
        .unwrap();
    assert_eq!(held["unit"], "seconds");
    assert_eq!(held["type"], "counter");

    // curl's request: the text format 0.0.4, parsed by the other parser, same figures.
    let text = scrape(&s, "text", &[]);
    assert!(
        text["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarpit_events_total", &[("class", "relay-denied")]),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "tarpit_build_info", &[("version", version)]),
        Some(1.0)
    );

    // A host let out is no longer counted as active (scrapes a second apart are fresh).
    assert_eq!(s.ctl(&["del", "198.51.100.7"]).0, 0);
    std::thread::sleep(Duration::from_millis(1100));
    let after = scrape(&s, "text", &[]);
    let ipv4_first = [("family", "ipv4"), ("offence", "1")];
    assert_eq!(
        sample(&after, "tarpit_listings_active", &ipv4_first),
        Some(0.0)
    );
    assert_eq!(sample(&after, "tarpit_listings_total", &[]), Some(2.0));
    stop(daemon, libc::SIGTERM);
}

#[test]
fn a_metrics_address_already_taken_stops_the_start_with_a_clear_error() {
    let Some(s) = Setup::new("metrics-taken") else {
        return;
    };
    // The stall listener holds [::]:2525, which covers 127.0.0.1:2525.
    let mut config = std::fs::read_to_string(s.path("tarpit.yaml")).unwrap();
    config.push_str("metrics: { listen: \"127.0.0.1:2525\" }\n");
    std::fs::write(s.path("tarpit.yaml"), config).unwrap();
    let out =
        s.ns.command("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_tarpitd"))
            .arg("--config")
            .arg(s.path("tarpit.yaml"))
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "tarpitd should refuse to start: {:?}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:2525 for metrics")
            && stderr.contains("metrics.listen"),
        "{stderr}"
    );
    assert!(!s.path("control.sock").exists(), "nothing else was started");
}
