//! End to end with a real Exim: Debian's `exim4` daemon, unpacked (not installed: its package
//! conflicts with `postfix`, which `e2e_postfix` needs) by `tests/e2e/fetch-exim.sh`, runs in the
//! private network namespace `mx` of the shared lab (`tests/e2e/lab.rs`) from its own
//! configuration, spool and log directory under a temp dir, writing a mainlog that `tarpitd`
//! follows (`mta: exim`) in the same namespace. Clients in their own namespaces (`spammer`,
//! `stranger`, and the allowlisted `friend`) speak SMTP to it with `swaks`. Proves: a spammer whose
//! rejections cross the threshold is in the kernel set within a second of the deciding mainlog
//! line and `tarpitctl show` explains why; its next connection gets the stall listener's endless
//! `220-` greeting and never reaches Exim; a friend's mail is delivered to the maildir meanwhile;
//! a spam-trap hit lists at once; `tarpitctl del` lets the spammer reach Exim's `220 ` banner
//! again. And, with a second Exim in `spammer` as the sender (its smtp transport's
//! `command_timeout` scaled to 10 s, stall interval 2 s), that one delivery attempt ends at its
//! `command_timeout`, not later: Exim does not restart that timer on each trickled byte.
//! `scripts/stuck-time.sh --sender exim` runs the same with default timers (an ignored test here).
//!
//! The binary insists on its build-time user `Debian-exim`, which the host need not have, and
//! links libidn12, which the host need not have either: the test gives each namespace Exim runs
//! in its own `/etc/passwd`, `/etc/group` (a copy plus that user, with nobody's ids) and
//! `/etc/ld.so.cache` (the host's directories plus the unpacked libraries) through
//! `/etc/netns/<namespace>/`, which `ip netns exec` binds over `/etc` for the processes it starts,
//! and removes them afterwards. Exim runs as root with `-C`; without a `TRUSTED_CONFIG_LIST` entry
//! (nothing under the host's `/etc/exim4` is read or written) its re-executions for delivery run
//! as the Exim user (and log "exim user lost privilege for using -C option"), which is why the
//! maildir and spools belong to nobody.
//!
//! Needs root (namespaces, nftables), `swaks`, `python3` and `apt-get download`; skips with a
//! reason when any of that fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "e2e/util.rs"]
mod util;
use util::{
    bounded, id_of, report_stuck_time, seconds_from_env, text, wait_until, watch_connection,
};
#[path = "e2e/lab.rs"]
mod lab;
use lab::{arrives, e2e_dir, preflight, Lab, DOMAIN, FRIEND, MX, SPAMMER, STRANGER};

/// Where the unpacked libraries are, under the cache directory `fetch-exim.sh` prints.
const LIBDIR: &str = "root/usr/lib/x86_64-linux-gnu";

/// A lab (`tag` tells apart the labs of tests running at once in one process) with Exim
/// unpacked (not yet started), or `None` (with the reason printed) when this
/// machine cannot run one; [`Lab::mta_root`] is `fetch-exim.sh`'s cache directory.
fn exim_lab(tag: &'static str) -> Option<Lab> {
    if !preflight("Exim", &["apt-get", "dpkg"]) {
        return None;
    }
    let fetch = bounded(
        Duration::from_secs(300),
        "bash",
        &[e2e_dir().join("fetch-exim.sh").to_str().unwrap()],
    );
    if !fetch.status.success() {
        eprintln!(
            "skipped: Exim is not available because {}",
            String::from_utf8_lossy(&fetch.stderr).trim()
        );
        return None;
    }
    let mut lab = Lab::new(tag)?;
    lab.mta_root = PathBuf::from(String::from_utf8_lossy(&fetch.stdout).trim());
    Some(lab)
}

/// Creates `dirs`, owned by nobody: Exim's processes work in them as its user (nobody's ids).
fn nobodys_dirs(dirs: &[PathBuf]) {
    for p in dirs {
        std::fs::create_dir_all(p).unwrap();
        let out = bounded(
            Duration::from_secs(5),
            "chown",
            &["nobody:nogroup", p.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

impl Lab {
    /// Gives the namespace of `role` its own `/etc` files, bound over the host's by
    /// `ip netns exec`: a passwd and group with `Debian-exim` (as nobody's ids), and a loader
    /// cache that also knows the unpacked libraries (Exim re-executes itself, setuid root, for
    /// deliveries, and a setuid program ignores `LD_LIBRARY_PATH` but reads the cache).
    fn prepare_etc(&mut self, role: &str) {
        let etc = Path::new("/etc/netns").join(self.ns(role));
        std::fs::create_dir_all(&etc).unwrap();
        self.etc_netns.push(etc.clone());
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let group = std::fs::read_to_string("/etc/group").unwrap();
        let (uid, gid) = (id_of("-u", "nobody"), id_of("-g", "nobody"));
        std::fs::write(
            etc.join("passwd"),
            format!("{passwd}Debian-exim:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin\n"),
        )
        .unwrap();
        std::fs::write(etc.join("group"), format!("{group}Debian-exim:x:{gid}:\n")).unwrap();
        let conf = self.path("ld.so.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ld.so.conf.d/*.conf\n{}\n",
                self.mta_root.join(LIBDIR).display()
            ),
        )
        .unwrap();
        let cache = etc.join("ld.so.cache");
        let out = bounded(
            Duration::from_secs(30),
            "ldconfig",
            &[
                "-X",
                "-C",
                cache.to_str().unwrap(),
                "-f",
                conf.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "ldconfig: {}", text(&out));
    }

    /// Writes Exim's configuration, starts the daemon in `mx` and waits for its banner.
    fn start_exim(&mut self) {
        self.prepare_etc("mx");
        let d = self.dir.path().display().to_string();
        nobodys_dirs(&["spool", "log", "mail"].map(|sub| self.path(sub)));
        let exim = self.mta_root.join("root/usr/sbin/exim4");
        let config = format!(
            "exim_path = {exim}
keep_environment =
primary_hostname = mx.{DOMAIN}
domainlist local_domains = {DOMAIN}
local_interfaces = {MX}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
log_selector = +smtp_connection
pipelining_connect_advertise_hosts =
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  deny    recipients = trap@{DOMAIN}
          message    = unknown user
  deny    !domains   = +local_domains
          message    = relay not permitted
  deny    !local_parts = alice : bob
          message    = Unknown user
  accept

begin routers

mailbox:
  driver     = accept
  domains    = +local_domains
  local_parts = alice : bob
  transport  = maildir

begin transports

maildir:
  driver           = appendfile
  directory        = {d}/mail/${{local_part_data}}
  maildir_format
  create_directory
  user             = nobody
  group            = nogroup
",
            exim = exim.display(),
        );
        std::fs::write(self.path("exim.conf"), config).unwrap();
        let conf = self.path("exim.conf");
        let pid = self.path("exim.pid");
        let out = self.exec(
            "mx",
            Duration::from_secs(20),
            &[
                exim.to_str().unwrap(),
                "-C",
                conf.to_str().unwrap(),
                "-bd",
                "-oX",
                "25",
                "-oP",
                pid.to_str().unwrap(),
            ],
        );
        self.stops.push((
            "mx",
            vec![
                "sh".into(),
                "-c".into(),
                format!("kill \"$(cat '{}')\"", pid.display()),
            ],
        ));
        assert!(out.status.success(), "exim -bd: {}", text(&out));
        let up = wait_until(Duration::from_secs(15), || {
            self.greeting("friend", 25, Duration::from_secs(2))
                .starts_with("220 ")
        });
        assert!(up, "Exim did not answer:\n{}", self.mainlog());
    }

    /// Prepares a second Exim in `spammer`, from its own configuration, spool and log directory
    /// under `sender/`, that routes all mail to the MX with an `smtp` transport: the real sender
    /// whose stuck time the stall listener is measured against. `command_timeout` scales down the
    /// transport's timeout for each SMTP response (the greeting included); `None` leaves Exim's
    /// default (5 minutes). No daemon: [`Lab::queue_at_sender`] hands it a message on the
    /// command line and it delivers in the background.
    fn prepare_sender_exim(&mut self, command_timeout: Option<&str>) {
        self.prepare_etc("spammer");
        let base = self.path("sender");
        nobodys_dirs(&["spool", "log"].map(|sub| base.join(sub)));
        let timeout = command_timeout
            .map(|t| format!("  command_timeout = {t}\n"))
            .unwrap_or_default();
        let config = format!(
            "exim_path = {exim}
keep_environment =
primary_hostname = sender.spam.example
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
log_selector = +outgoing_port
host_lookup =
rfc1413_hosts =

begin routers

to_mx:
  driver     = manualroute
  route_list = * {MX}
  transport  = remote_smtp

begin transports

remote_smtp:
  driver = smtp
{timeout}
begin retry

*  *  F,1h,10m
",
            exim = self.mta_root.join("root/usr/sbin/exim4").display(),
            d = base.display(),
        );
        std::fs::write(base.join("exim.conf"), config).unwrap();
    }

    /// The sender Exim's mainlog.
    fn sender_log(&self) -> String {
        std::fs::read_to_string(self.path("sender/log/mainlog")).unwrap_or_default()
    }

    /// Hands a message for the MX's domain to the sender Exim in `spammer` (background delivery)
    /// and waits until it has connected to the MX to deliver it; returns when it was first seen
    /// connected.
    fn queue_at_sender(&self) -> Instant {
        let exim = self.mta_root.join("root/usr/sbin/exim4");
        let conf = self.path("sender/exim.conf");
        let mut child = Command::new("timeout")
            .args(["20", "ip", "netns", "exec", &self.ns("spammer")])
            .arg(&exim)
            .arg("-C")
            .arg(&conf)
            .args([
                "-odb",
                "-f",
                "bulk@spam.example",
                &format!("alice@{DOMAIN}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            format!("Subject: stuck-time\nTo: alice@{DOMAIN}\n\nHello.\n").as_bytes(),
        )
        .unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the sender Exim did not take the message: {}\n{}",
            text(&out),
            self.sender_log()
        );
        assert!(
            wait_until(Duration::from_secs(15), || !self
                .spammer_connections()
                .is_empty()),
            "the sender never connected to the MX:\n{}",
            self.sender_log()
        );
        Instant::now()
    }

    /// Starts `tarpitd` following Exim's mainlog; see [`Lab::start_tarpitd`].
    fn start_tarpitd_on_exim(&mut self, interval: Option<&str>) {
        let log = self.path("log/mainlog");
        self.start_tarpitd(&log, "exim", interval);
    }

    fn mainlog(&self) -> String {
        std::fs::read_to_string(self.path("log/mainlog")).unwrap_or_default()
    }

    /// How many connections from `address` Exim has logged (`log_selector = +smtp_connection`).
    fn connects_from(&self, address: &str) -> usize {
        let needle = format!("SMTP connection from [{address}] (TCP/IP connection count");
        self.mainlog()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// The mainlog lines that reject a recipient of `address`.
    fn rejections_of(&self, address: &str) -> Vec<String> {
        let needle = format!("[{address}]");
        self.mainlog()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains(" rejected RCPT "))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn an_exim_spammer_is_listed_and_stalled_while_a_friend_delivers() {
    let Some(mut lab) = exim_lab("x") else { return };
    lab.start_exim();
    lab.start_tarpitd_on_exim(Some("100ms"));

    // (1) Under the threshold first: two unknown users (2 each) and a relay attempt (5) = 9.
    let t = lab.rcpt(
        "spammer",
        None,
        "sales@bulk.example",
        &format!("ghost1@{DOMAIN},ghost2@{DOMAIN},victim@elsewhere.example"),
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab.rejections_of(SPAMMER).len()
            == 3),
        "Exim did not reject the three recipients:\n{t}\n{}",
        lab.mainlog()
    );
    let all = lab.rejections_of(SPAMMER).join("\n");
    assert!(
        all.contains("Unknown user") && all.contains("relay not permitted"),
        "{all}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !lab.is_listed(SPAMMER),
        "a score of 9 is under the threshold of 10:\n{}",
        lab.daemon_log()
    );

    // The deciding line: a third unknown user (2) takes it to 11.
    let t = lab.rcpt(
        "spammer",
        None,
        "promo@bulk.example",
        &format!("ghost3@{DOMAIN}"),
    );
    assert!(t.contains("550 Unknown user"), "{t}");
    let lag = lab.listing_lag(
        SPAMMER,
        || lab.mainlog().contains("rejected RCPT <ghost3@"),
        || lab.mainlog(),
    );
    eprintln!("listed {lag:?} after the deciding line appeared in Exim's mainlog");
    assert!(lag <= Duration::from_secs(1), "listed after {lag:?}");
    let report = lab.show(SPAMMER);
    let listing = &report["listing"];
    let reason = listing["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("unknown-recipient") && reason.contains("relay-denied"),
        "{listing}"
    );
    let evidence: Vec<&str> = listing["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(evidence.len(), 4, "{listing}");
    for expected in [
        "rejected RCPT <ghost1@example.test>: Unknown user",
        "rejected RCPT <victim@elsewhere.example>: relay not permitted",
        "rejected RCPT <ghost3@example.test>: Unknown user",
    ] {
        assert!(
            evidence.iter().any(|l| l.contains(expected)),
            "no evidence line with {expected:?}: {evidence:?}"
        );
    }

    // (2) Its next connection gets the trickling 220- greeting and no final reply; Exim never
    // sees it.
    let before = lab.connects_from(SPAMMER);
    assert_eq!(before, 2, "{}", lab.mainlog());
    lab.assert_stalled("spammer", Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.connects_from(SPAMMER),
        before,
        "Exim saw the listed host's connection:\n{}",
        lab.mainlog()
    );

    // (3) The friend delivers meanwhile, and the message is in alice's maildir.
    let subject = format!("e2e-exim-{}", std::process::id());
    let t = lab.friend_sends(&subject);
    assert!(t.contains("250 OK id="), "{t}");
    let delivered = arrives(&lab.path("mail/alice"), &subject);
    assert!(
        delivered,
        "the friend's message never arrived:\n{}",
        lab.mainlog()
    );
    assert!(!lab.is_listed(FRIEND));

    // (4) One spam-trap hit from another client lists it at once.
    let t = lab.rcpt(
        "stranger",
        None,
        "news@letters.example",
        &format!("trap@{DOMAIN}"),
    );
    assert!(t.contains("550 unknown user"), "{t}");
    assert!(
        wait_until(Duration::from_secs(1), || lab.is_listed(STRANGER)),
        "a trap hit did not list at once:\n{}\n{}",
        lab.mainlog(),
        lab.daemon_log()
    );
    let trap = lab.show(STRANGER);
    assert!(
        trap["listing"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("trap"),
        "{trap}"
    );

    // (5) `tarpitctl del` lets the spammer reach Exim again.
    let (code, out) = lab.ctl(&["del", SPAMMER]);
    assert_eq!(code, 0, "{out}");
    assert!(!lab.is_listed(SPAMMER));
    let got = lab.greeting("spammer", 25, Duration::from_secs(5));
    assert!(
        got.starts_with(&format!("220 mx.{DOMAIN} ESMTP Exim")),
        "after del the spammer should meet Exim: {got:?}"
    );
    assert!(
        wait_until(Duration::from_secs(3), || lab.connects_from(SPAMMER)
            == before + 1),
        "Exim did not log the connection after del:\n{}",
        lab.mainlog()
    );
}

#[test]
fn a_real_exim_sender_is_held_for_its_command_timeout_whatever_the_trickle() {
    let Some(mut lab) = exim_lab("xs") else {
        return;
    };
    lab.start_exim();
    // A byte every 2 s, against a sender whose timeout for a response is 10 s: a timer restarted
    // on every byte would never fire.
    lab.start_tarpitd_on_exim(Some("2s"));
    lab.list_by_hand(SPAMMER, "10m");
    lab.prepare_sender_exim(Some("10s"));
    let before = lab.connects_from(SPAMMER);
    let connected = lab.queue_at_sender();
    let ended = wait_until(Duration::from_secs(30), || {
        lab.spammer_connections().is_empty()
    });
    let stuck = connected.elapsed();
    let log = lab.sender_log();
    eprintln!(
        "one delivery attempt of an Exim sender (command_timeout 10s) stayed connected {stuck:?} \
         to a 2 s trickle:\n{log}"
    );
    assert!(
        ended,
        "the attempt outlived the sender's command_timeout:\n{log}"
    );
    assert!(
        stuck >= Duration::from_secs(9),
        "the attempt ended after {stuck:?}, before the command_timeout:\n{log}"
    );
    assert!(
        stuck <= Duration::from_secs(13),
        "the attempt lasted {stuck:?}: the timer was restarted by the trickle:\n{log}"
    );
    assert!(
        log.contains("SMTP timeout after initial connection"),
        "the greeting timeout did not end the attempt:\n{log}"
    );
    assert!(!log.contains(" => "), "the message got through:\n{log}");
    assert_eq!(
        lab.connects_from(SPAMMER),
        before,
        "Exim on the MX saw the listed sender:\n{}",
        lab.mainlog()
    );
}

/// Not in CI: how long one delivery attempt of a real Exim sender with its DEFAULT timers stays
/// connected to the stall listener at its default interval. Run by `scripts/stuck-time.sh
/// --sender exim`, which sets `TARPIT_STUCK_LIMIT` (seconds after which it stops and reports
/// "still connected"). Prints the figure as a `stuck-time:` line.
#[test]
#[ignore = "takes minutes; run by scripts/stuck-time.sh"]
fn stuck_time_of_a_default_exim_sender() {
    let limit = Duration::from_secs(seconds_from_env("TARPIT_STUCK_LIMIT", 6 * 3600));
    let Some(mut lab) = exim_lab("xd") else {
        return;
    };
    lab.start_exim();
    lab.start_tarpitd_on_exim(None);
    let listed_for = format!("{}s", limit.as_secs() + 3600);
    lab.list_by_hand(SPAMMER, &listed_for);
    lab.prepare_sender_exim(None);
    let connected = lab.queue_at_sender();
    let (stuck, still) = watch_connection(connected, limit, || lab.spammer_connections());
    let log = lab.sender_log();
    let lines: Vec<&str> = log.lines().collect();
    report_stuck_time(
        "exim sender (default timers), stall at its default interval",
        stuck,
        still,
        &lines,
    );
    assert!(!log.contains(" => "), "the message got through:\n{log}");
}
