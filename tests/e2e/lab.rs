//! The lab shared by the end-to-end tests (`tests/e2e_postfix.rs`, `tests/e2e_exim.rs`): private
//! network namespaces `mx` (the MTA, `tarpitd` and its nft table), `spammer`, `stranger` and
//! `friend`, joined by veth pairs to a bridge inside `mx`, with addresses from 198.51.100.0/24 and
//! 2001:db8:77::/64, 2001:db8:78::/64 only; `tarpitd` started, restarted and asked (`tarpitctl`,
//! `nft`) in `mx`; SMTP clients (`swaks`, `greeting.py`) in the others. Each test file adds its
//! MTA's own methods to [`Lab`]. Everything the lab started is stopped, and every namespace and
//! `/etc/netns` directory it made is deleted, when it is dropped, whether the test passed or not.
//! It never touches the host's network, ruleset or mail system.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bounded, have, is_root, text, wait_until};

pub const DOMAIN: &str = "example.test";
pub const MX: &str = "198.51.100.1";
pub const SPAMMER: &str = "198.51.100.10";
pub const STRANGER: &str = "198.51.100.11";
pub const FRIEND: &str = "198.51.100.20";
/// Two more addresses of the stranger's: offenders left one point under the threshold across a
/// restart of tarpitd (SIGTERM, then kill -9).
pub const PATIENT: &str = "198.51.100.12";
pub const PATIENT2: &str = "198.51.100.13";
/// A second address of the friend's, in tarpitd's allow list, that the MTA rejects often.
pub const ALLOWED: &str = "198.51.100.21";
pub const MX6: &str = "2001:db8:77::1";
/// The stranger's IPv6 address, in a /64 of its own (routed on the link) so that listing its /64
/// does not cover the MX.
pub const STRANGER6: &str = "2001:db8:78::11";

/// The directory of the end-to-end tests' helper scripts.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Whether this process can build a lab with `mta` in it: root, and the tools it runs. Says why
/// not ("skipped: ...") when it cannot.
pub fn preflight(mta: &str, tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces, nftables and {mta}");
        return false;
    }
    for tool in ["ip", "nft", "ss", "swaks", "python3", "timeout"]
        .iter()
        .chain(tools)
    {
        if !have(tool) {
            eprintln!("skipped: {tool} is not installed (scripts/install-deps.sh installs it)");
            return false;
        }
    }
    true
}

/// The namespaces, `tarpitd`, and what the test file's MTA needs undone.
pub struct Lab {
    pub dir: tempfile::TempDir,
    namespaces: Vec<String>,
    /// Tells apart the labs of tests running at once in one process.
    tag: &'static str,
    /// Commands that stop an MTA, each run in its role's namespace when the lab is dropped.
    pub stops: Vec<(&'static str, Vec<String>)>,
    /// `/etc/netns/<namespace>` directories made for the MTA, deleted when the lab is dropped.
    pub etc_netns: Vec<PathBuf>,
    /// Where the test file's MTA was unpacked, when it is not installed.
    pub mta_root: PathBuf,
    /// The MTA log `tarpitd` follows.
    source_log: PathBuf,
    daemon: Option<Child>,
}

impl Lab {
    /// Creates the namespaces: a bridge in `mx` carrying the MX's addresses, and one veth pair
    /// from each client namespace into it. Call [`preflight`] and make the MTA available first.
    pub fn new(tag: &'static str) -> Option<Lab> {
        let dir = tempfile::tempdir().unwrap();
        // The MTAs' unprivileged processes and their deliveries (as nobody) work under it.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut lab = Lab {
            dir,
            namespaces: Vec::new(),
            tag,
            stops: Vec::new(),
            etc_netns: Vec::new(),
            mta_root: PathBuf::new(),
            source_log: PathBuf::new(),
            daemon: None,
        };
        for role in ["mx", "spammer", "stranger", "friend"] {
            let name = lab.ns(role);
            let ok = bounded(Duration::from_secs(10), "ip", &["netns", "add", &name]);
            if !ok.status.success() {
                eprintln!(
                    "skipped: cannot create a network namespace: {}",
                    String::from_utf8_lossy(&ok.stderr).trim()
                );
                return None;
            }
            lab.namespaces.push(name);
            lab.must(role, &["ip", "link", "set", "lo", "up"]);
        }
        lab.must("mx", &["ip", "link", "add", "br0", "type", "bridge"]);
        lab.must(
            "mx",
            &["ip", "addr", "add", &format!("{MX}/24"), "dev", "br0"],
        );
        lab.must("mx", &["ip", "link", "set", "br0", "up"]);
        lab.must(
            "mx",
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{MX6}/64"),
                "dev",
                "br0",
                "nodad",
            ],
        );
        lab.must(
            "mx",
            &["ip", "-6", "route", "add", "2001:db8:78::/64", "dev", "br0"],
        );
        let mx = lab.ns("mx");
        for (role, address) in [
            ("spammer", SPAMMER),
            ("stranger", STRANGER),
            ("friend", FRIEND),
        ] {
            let port = format!("p-{role}");
            lab.must(
                role,
                &[
                    "ip", "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                    &mx,
                ],
            );
            lab.must("mx", &["ip", "link", "set", &port, "master", "br0", "up"]);
            lab.must(
                role,
                &["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"],
            );
            lab.must(role, &["ip", "link", "set", "eth0", "up"]);
            let extra: &[&str] = match role {
                "stranger" => &[PATIENT, PATIENT2],
                "friend" => &[ALLOWED],
                _ => &[],
            };
            for address in extra {
                lab.must(
                    role,
                    &["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"],
                );
            }
            if role == "stranger" {
                let v6 = format!("{STRANGER6}/64");
                lab.must(
                    role,
                    &["ip", "-6", "addr", "add", &v6, "dev", "eth0", "nodad"],
                );
                lab.must(
                    role,
                    &[
                        "ip",
                        "-6",
                        "route",
                        "add",
                        "2001:db8:77::/64",
                        "dev",
                        "eth0",
                    ],
                );
            }
        }
        Some(lab)
    }

    pub fn ns(&self, role: &str) -> String {
        format!("tarpit-e2e-{}{role}-{}", self.tag, std::process::id())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a command in the namespace of `role`, bounded by `limit`.
    pub fn exec(&self, role: &str, limit: Duration, args: &[&str]) -> Output {
        let ns = self.ns(role);
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        bounded(limit, "ip", &all)
    }

    pub fn must(&self, role: &str, args: &[&str]) {
        let out = self.exec(role, Duration::from_secs(10), args);
        assert!(out.status.success(), "{args:?} in {role}: {}", text(&out));
    }

    /// Writes tarpitd's configuration (stall mode, threshold 10 in a 2-minute window, the trap
    /// and protected addresses, the friend's addresses allowed, 5 minutes × 4 per offence) and
    /// starts it in `mx`, following `log` written by `mta` (`postfix` or `exim`). `interval` is
    /// the stall's trickle interval; `None` leaves its default.
    pub fn start_tarpitd(&mut self, log: &Path, mta: &str, interval: Option<&str>) {
        let interval = interval
            .map(|i| format!(", interval: {i}"))
            .unwrap_or_default();
        let config = format!(
            r#"sources:
  - file: {log}
    mta: {mta}
state: {{ path: {state} }}
control: {{ socket: {sock}, group: root }}
netfilter: {{ action: stall, ports: [25] }}
stall: {{ listen: ["[::]:2525"]{interval} }}
policy:
  threshold: 10
  window: 2m
  traps: ["trap@{DOMAIN}"]
  protected: ["list-owner@{DOMAIN}"]
  allow: ["{FRIEND}/32", "{ALLOWED}/32"]
ban: {{ first: 5m, factor: 4 }}
"#,
            log = log.display(),
            state = self.path("state/state.db").display(),
            sock = self.path("control.sock").display(),
        );
        std::fs::write(self.path("tarpit.yaml"), config).unwrap();
        self.source_log = log.to_owned();
        self.spawn_tarpitd();
    }

    /// Starts `tarpitd` in `mx` with the configuration written, its log appended to
    /// `tarpitd.log`, and waits until it answers on its control socket.
    pub fn spawn_tarpitd(&mut self) {
        let mx = self.ns("mx");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("tarpitd.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &mx, env!("CARGO_BIN_EXE_tarpitd")])
            .arg("--config")
            .arg(self.path("tarpit.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let up = wait_until(Duration::from_secs(20), || {
            self.path("control.sock").exists() && self.ctl(&["status", "--json"]).0 == 0
        });
        assert!(up, "tarpitd did not come up:\n{}", self.daemon_log());
    }

    /// Ends the running `tarpitd` with `signal` (`ip netns exec` execs it, so the child's pid is
    /// the daemon's) and waits until it has exited.
    pub fn stop_tarpitd(&mut self, signal: i32) {
        let mut child = self.daemon.take().expect("tarpitd runs");
        // SAFETY: kill on the pid of the daemon this test spawned.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let exited = wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(
            exited,
            "tarpitd did not exit on signal {signal}:\n{}",
            self.daemon_log()
        );
    }

    /// Waits until `tarpitd` has read the MTA's log to its end (per `tarpitctl status`), i.e. it
    /// has counted every line written so far and committed its position.
    pub fn wait_until_read(&self) {
        let read = wait_until(Duration::from_secs(5), || {
            let size = std::fs::metadata(&self.source_log).map_or(0, |m| m.len());
            let (code, out) = self.ctl(&["status", "--json"]);
            code == 0
                && serde_json::from_str::<Value>(&out)
                    .is_ok_and(|v| v["sources"][0]["position"]["offset"].as_u64() == Some(size))
        });
        assert!(
            read,
            "tarpitd did not read the log to its end:\n{}",
            self.ctl(&["status", "--json"]).1
        );
    }

    /// The elements of the nft set `set` in `mx` with their timeouts in seconds, per
    /// `nft -j list set` (the kernel's own word).
    pub fn set_elements(&self, set: &str) -> Vec<(String, u64)> {
        let out = self.exec(
            "mx",
            Duration::from_secs(5),
            &["nft", "-j", "list", "set", "inet", "tarpit", set],
        );
        assert!(out.status.success(), "nft list set {set}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["set"]["elem"].as_array())
            .flatten()
            .map(|e| {
                let e = &e["elem"];
                (
                    e["val"].as_str().unwrap_or_default().to_owned(),
                    e["timeout"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The timeout of `address`'s element in the `listed_v4` set, if it is there.
    pub fn set_timeout(&self, address: &str) -> Option<u64> {
        self.set_elements("listed_v4")
            .into_iter()
            .find(|(a, _)| a == address)
            .map(|(_, t)| t)
    }

    /// The addresses `tarpitctl list --json` shows as listed.
    pub fn listed_addresses(&self) -> Vec<String> {
        let (code, out) = self.ctl(&["list", "--json"]);
        assert_eq!(code, 0, "tarpitctl list: {out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let rows = v.as_array().or_else(|| v["listings"].as_array()).unwrap();
        rows.iter()
            .filter_map(|l| l["address"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("tarpitd.log")).unwrap_or_default()
    }

    pub fn ctl(&self, args: &[&str]) -> (i32, String) {
        let sock = self.path("control.sock");
        let mut all = vec!["--socket", sock.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = bounded(
            Duration::from_secs(10),
            env!("CARGO_BIN_EXE_tarpitctl"),
            &all,
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Whether `address` is in the listed_v4 set, per `nft get element` in `mx` (the kernel's
    /// own word, not the daemon's).
    pub fn is_listed(&self, address: &str) -> bool {
        self.is_in("listed_v4", address)
    }

    /// Whether `address` is in (or inside a prefix in) the nft set `set` in `mx`.
    pub fn is_in(&self, set: &str, address: &str) -> bool {
        let element = format!("{{ {address} }}");
        self.exec(
            "mx",
            Duration::from_secs(5),
            &["nft", "get", "element", "inet", "tarpit", set, &element],
        )
        .status
        .success()
    }

    /// `swaks` from `role` to the MX; returns its transcript.
    pub fn swaks(&self, role: &str, args: &[&str]) -> String {
        self.swaks_to(role, MX, args)
    }

    /// `swaks` from `role` to the MX's address `server`; returns its transcript.
    pub fn swaks_to(&self, role: &str, server: &str, args: &[&str]) -> String {
        let mut all = vec![
            "swaks",
            "--server",
            server,
            "--port",
            "25",
            "--timeout",
            "10",
        ];
        all.extend_from_slice(args);
        let out = self.exec(role, Duration::from_secs(20), &all);
        text(&out)
    }

    /// Waits (5 s at most) until `line_seen` says the deciding line is in the MTA's log and
    /// `address` is in the kernel set; returns how long after the line the listing came. Panics,
    /// with `log`, when either never happens.
    pub fn listing_lag(
        &self,
        address: &str,
        line_seen: impl Fn() -> bool,
        log: impl Fn() -> String,
    ) -> Duration {
        let mut seen: Option<Instant> = None;
        let mut listed: Option<Instant> = None;
        wait_until(Duration::from_secs(5), || {
            if seen.is_none() && line_seen() {
                seen = Some(Instant::now());
            }
            if listed.is_none() && self.is_listed(address) {
                listed = Some(Instant::now());
            }
            seen.is_some() && listed.is_some()
        });
        let (Some(seen), Some(listed)) = (seen, listed) else {
            panic!(
                "{address} not listed (line seen: {seen:?}):\n{}\n{}",
                log(),
                self.daemon_log()
            );
        };
        listed.saturating_duration_since(seen)
    }

    /// `swaks` from `role` (from its address `local`, when given) to the MX: mail from `from` to
    /// the comma-separated recipients `to`, quitting after RCPT, so that the MTA logs one
    /// rejection per refused recipient; returns the transcript.
    pub fn rcpt(&self, role: &str, local: Option<&str>, from: &str, to: &str) -> String {
        let mut args = Vec::new();
        if let Some(local) = local {
            args.extend(["--local-interface", local]);
        }
        args.extend(["-f", from, "--to", to, "--quit-after", "RCPT"]);
        self.swaks(role, &args)
    }

    /// The friend sends a message with `subject` to alice; returns the transcript.
    pub fn friend_sends(&self, subject: &str) -> String {
        self.swaks(
            "friend",
            &[
                "-f",
                "friend@partner.example",
                "--to",
                &format!("alice@{DOMAIN}"),
                "--header",
                &format!("Subject: {subject}"),
            ],
        )
    }

    /// Lists `address` by hand for `duration` (`tarpitctl add`).
    pub fn list_by_hand(&self, address: &str, duration: &str) {
        let (code, out) = self.ctl(&["add", address, "--for", duration, "--reason", "e2e"]);
        assert_eq!(code, 0, "tarpitctl add {address}: {out}");
    }

    /// Asserts that a connection from `role` to the MX's port 25 gets the stall listener's
    /// trickling `220-` greeting for `limit`, with no final reply.
    pub fn assert_stalled(&self, role: &str, limit: Duration) {
        let started = Instant::now();
        let got = self.greeting(role, 25, limit);
        let held = started.elapsed();
        assert!(got.starts_with("220-"), "no stall greeting: {got:?}");
        assert!(
            !got.split("\r\n")
                .any(|l| l.len() >= 4 && l.as_bytes()[3] == b' '),
            "the stall listener sent a final reply: {got:?}"
        );
        assert!(
            held >= limit,
            "the connection ended after {held:?}: {got:?}"
        );
        assert!(got.len() >= 10, "the greeting did not trickle: {got:?}");
    }

    /// What `role` receives on connecting to the MX's `port` within `limit`, up to the first
    /// final reply line.
    pub fn greeting(&self, role: &str, port: u16, limit: Duration) -> String {
        self.greeting_at(role, MX, port, limit)
    }

    /// [`Lab::greeting`] for the MX's address `host`.
    pub fn greeting_at(&self, role: &str, host: &str, port: u16, limit: Duration) -> String {
        let script = e2e_dir().join("greeting.py");
        let out = self.exec(
            role,
            limit + Duration::from_secs(5),
            &[
                "python3",
                script.to_str().unwrap(),
                host,
                &port.to_string(),
                &format!("{}", limit.as_secs_f64()),
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `spammer` has an established TCP connection to the MX's port 25.
    pub fn spammer_connected(&self) -> bool {
        !self.spammer_connections().is_empty()
    }

    /// `spammer`'s established TCP connections to the MX's port 25, one `ss` line each.
    pub fn spammer_connections(&self) -> String {
        let out = self.exec(
            "spammer",
            Duration::from_secs(5),
            &[
                "ss",
                "-Htn",
                "state",
                "established",
                "dst",
                &format!("{MX}:25"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn show(&self, address: &str) -> Value {
        let (code, out) = self.ctl(&["show", address, "--json"]);
        assert_eq!(code, 0, "tarpitctl show {address}: {out}");
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: kill on a pid we spawned; failure is harmless here.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for (role, argv) in &self.stops {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let _ = self.exec(role, Duration::from_secs(15), &argv);
        }
        // Whatever still runs in our namespaces (the MTAs' children, a stuck client) was
        // started by this test: end it by pid before deleting the namespaces.
        for ns in &self.namespaces {
            let pids = bounded(Duration::from_secs(5), "ip", &["netns", "pids", ns]);
            let pids = String::from_utf8_lossy(&pids.stdout).into_owned();
            let pids: Vec<i32> = pids
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            let _ = wait_until(Duration::from_secs(5), || {
                pids.iter().all(|&p| {
                    // SAFETY: signal 0 only checks that the pid exists.
                    unsafe { libc::kill(p, 0) != 0 }
                })
            });
            for p in pids {
                // SAFETY: kill on a pid that lives in a namespace this test created.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        for ns in &self.namespaces {
            let _ = bounded(Duration::from_secs(10), "ip", &["netns", "del", ns]);
        }
        for etc in self.etc_netns.drain(..) {
            let _ = std::fs::remove_dir_all(etc);
        }
    }
}

/// How long a listing (from `tarpitctl show --json`) runs: `until − since`, in seconds.
pub fn listed_secs(listing: &Value) -> u64 {
    let at = |field: &str| {
        let text = listing[field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    (at("until") - at("since")).whole_seconds().unsigned_abs()
}

/// Whether a message with `subject` arrives in the maildir `dir` (its `new/`) within 10 s.
pub fn arrives(dir: &Path, subject: &str) -> bool {
    let new = dir.join("new");
    wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(&new).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains(subject)))
        })
    })
}
