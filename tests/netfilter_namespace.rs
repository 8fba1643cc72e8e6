//! The netfilter driver against the real kernel, each test in a fresh private network
//! namespace (never the host's ruleset). The `nft` CLI serves only as an independent check.
//! Without root (or without namespaces) every test is skipped with the reason printed.

use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tarpit::netfilter::{Driver, Health, NetfilterConfig, NetfilterError, Refresh, Watcher};

const HOUR: Duration = Duration::from_secs(3600);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Why the tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not running as root (network namespaces and nftables need it)".into());
    }
    if Command::new("nft").arg("--version").output().is_err() {
        return Some("the nft command (package nftables) is not installed".into());
    }
    None
}

/// Runs `f` on a thread of its own inside a fresh network namespace with loopback up;
/// processes the thread starts (nft, ip) and threads it spawns inherit the namespace.
/// Returns false (after printing why) when the test has to be skipped.
fn in_netns(test: &str, f: impl FnOnce() + Send + 'static) -> bool {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {test} because {why}");
        return false;
    }
    let outcome = thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace;
        // no memory is shared with the kernel.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        run("ip", &["link", "set", "lo", "up"]);
        f();
        Ok(())
    })
    .join();
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            eprintln!("skipped: {test} because unshare(CLONE_NEWNET) failed: {e}");
            false
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft_ok(args: &[&str]) -> bool {
    Command::new("nft")
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

/// Whether the kernel matches `addr` against our set, asked through the nft CLI.
fn nft_has(set: &str, addr: &str) -> bool {
    nft_ok(&[
        "get",
        "element",
        "inet",
        "tarpit",
        set,
        &format!("{{ {addr} }}"),
    ])
}

/// The elements of a set as `nft -j` reports them: (prefix, timeout s, expires s).
fn nft_elements(set: &str) -> Vec<(IpNet, u64, u64)> {
    let json = run("nft", &["-j", "list", "set", "inet", "tarpit", set]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        let Some(elems) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            let e = &e["elem"];
            let val = &e["val"];
            let n = if let Some(p) = val.get("prefix") {
                net(&format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]))
            } else {
                let a: IpAddr = val.as_str().unwrap().parse().unwrap();
                IpNet::from(a)
            };
            out.push((
                n,
                e["timeout"].as_u64().unwrap_or(0),
                e["expires"].as_u64().unwrap_or(0),
            ));
        }
    }
    out.sort();
    out
}

fn driver() -> Driver {
    Driver::new(&NetfilterConfig::default()).unwrap()
}

fn listed(d: &Driver) -> Vec<IpNet> {
    d.list().unwrap().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn ensure_creates_then_adopts_and_add_keeps_each_timeout() {
    in_netns(
        "ensure_creates_then_adopts_and_add_keeps_each_timeout",
        || {
            let d = driver();
            d.ensure().unwrap();
            let report = d
                .add(&[
                    (net("192.0.2.10/32"), Duration::from_secs(600)),
                    (net("192.0.2.11/32"), 2 * HOUR),
                    (net("198.51.100.0/24"), 3 * 86_400 * Duration::from_secs(1)),
                ])
                .unwrap();
            assert_eq!(report.added, 3);
            // Adopting the existing table keeps the listings.
            d.ensure().unwrap();
            assert_eq!(d.check().unwrap(), Health::Intact);

            let got = d.list().unwrap();
            let want = [
                (net("192.0.2.10/32"), 600),
                (net("192.0.2.11/32"), 7200),
                (net("198.51.100.0/24"), 259_200),
            ];
            assert_eq!(got.len(), 3, "{got:?}");
            for ((n, remaining), (wn, ws)) in got.iter().zip(want) {
                assert_eq!(*n, wn);
                let ws = Duration::from_secs(ws);
                assert!(
                    *remaining <= ws && *remaining > ws - Duration::from_secs(10),
                    "{n}: {remaining:?}"
                );
            }
            // The nft CLI sees the same, with the timeouts as given: hosts in the hash set,
            // the prefix in the interval set.
            let timeouts = |set: &str| -> Vec<(IpNet, u64)> {
                nft_elements(set)
                    .into_iter()
                    .map(|(n, t, _)| (n, t))
                    .collect()
            };
            assert_eq!(
                timeouts("listed_v4"),
                vec![(net("192.0.2.10/32"), 600), (net("192.0.2.11/32"), 7200)]
            );
            assert_eq!(
                timeouts("listed_v4_nets"),
                vec![(net("198.51.100.0/24"), 259_200)]
            );
            let ruleset = run("nft", &["list", "table", "inet", "tarpit"]);
            assert_eq!(
                ruleset.matches("flags interval,timeout").count(),
                2,
                "{ruleset}"
            );
            for (proto, set) in [
                ("ip", "listed_v4"),
                ("ip", "listed_v4_nets"),
                ("ip6", "listed_v6"),
                ("ip6", "listed_v6_nets"),
            ] {
                let rule = format!(
                    "{proto} saddr @{set} tcp dport 25 counter packets 0 bytes 0 redirect to :2525"
                );
                assert!(ruleset.contains(&rule), "{rule} missing from {ruleset}");
            }
            assert_eq!(
                ruleset.matches("redirect").count(),
                4,
                "ensure twice must not duplicate rules: {ruleset}"
            );
        },
    );
}

#[test]
fn an_element_expires_on_its_own() {
    in_netns("an_element_expires_on_its_own", || {
        let d = driver();
        d.ensure().unwrap();
        d.add(&[
            (net("192.0.2.20/32"), Duration::from_secs(1)),
            (net("192.0.2.21/32"), HOUR),
        ])
        .unwrap();
        assert_eq!(listed(&d), vec![net("192.0.2.20/32"), net("192.0.2.21/32")]);
        thread::sleep(Duration::from_millis(2500));
        assert_eq!(listed(&d), vec![net("192.0.2.21/32")]);
        assert!(!nft_has("listed_v4", "192.0.2.20"));
    });
}

#[test]
fn remove_and_flush_take_listings_out() {
    in_netns("remove_and_flush_take_listings_out", || {
        let d = driver();
        d.ensure().unwrap();
        d.add(&[
            (net("192.0.2.30/32"), HOUR),
            (net("192.0.2.31/32"), HOUR),
            (net("2001:db8:30::/48"), HOUR),
        ])
        .unwrap();
        // One listed and one unknown: the unknown one is ignored, not an error.
        assert_eq!(
            d.remove(&[net("192.0.2.30/32"), net("203.0.113.99/32")])
                .unwrap(),
            1
        );
        assert_eq!(
            listed(&d),
            vec![net("192.0.2.31/32"), net("2001:db8:30::/48")]
        );
        d.flush().unwrap();
        assert!(listed(&d).is_empty());
        assert!(nft_elements("listed_v4").is_empty());
        assert_eq!(d.check().unwrap(), Health::Intact, "flush keeps the rules");
    });
}

fn refresh_case(refresh: Refresh) {
    let d = driver().with_refresh(refresh);
    d.ensure().unwrap();
    let ip = net("192.0.2.40/32");
    d.add(&[(ip, HOUR), (net("192.0.2.41/32"), HOUR)]).unwrap();
    // Shorter, then longer: the new timeout wins both times.
    d.add(&[(ip, Duration::from_secs(90))]).unwrap();
    let cli = nft_elements("listed_v4");
    assert_eq!(cli[0].0, ip);
    assert_eq!(cli[0].1, 90, "{refresh:?}: {cli:?}");
    d.add(&[(ip, 5 * HOUR), (net("192.0.2.42/32"), HOUR)])
        .unwrap();
    let cli = nft_elements("listed_v4");
    assert_eq!(
        cli.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
        vec![
            (ip, 18_000),
            (net("192.0.2.41/32"), 3600),
            (net("192.0.2.42/32"), 3600)
        ],
        "{refresh:?}"
    );
    // Prefixes (interval set, two elements each) refresh the same way.
    let v6 = net("2001:db8:40::/64");
    d.add(&[(v6, HOUR)]).unwrap();
    d.add(&[
        (v6, Duration::from_secs(120)),
        (net("198.51.100.0/24"), HOUR),
    ])
    .unwrap();
    d.add(&[(net("198.51.100.0/24"), 3 * HOUR)]).unwrap();
    let v6_left = d
        .list()
        .unwrap()
        .into_iter()
        .find(|(n, _)| *n == v6)
        .unwrap()
        .1;
    assert!(
        v6_left <= Duration::from_secs(120),
        "{refresh:?}: {v6_left:?}"
    );
    assert_eq!(nft_elements("listed_v4_nets")[0].1, 10_800, "{refresh:?}");
}

#[test]
fn re_adding_refreshes_the_timeout_by_re_add() {
    in_netns("re_adding_refreshes_the_timeout_by_re_add", || {
        refresh_case(Refresh::ReAdd)
    });
}

#[test]
fn re_adding_refreshes_the_timeout_by_delete_and_add() {
    in_netns("re_adding_refreshes_the_timeout_by_delete_and_add", || {
        refresh_case(Refresh::DeleteAdd)
    });
}

#[test]
fn ipv6_prefix_is_listed_and_an_address_inside_it_matches() {
    in_netns(
        "ipv6_prefix_is_listed_and_an_address_inside_it_matches",
        || {
            let d = driver();
            d.ensure().unwrap();
            d.add(&[
                (net("2001:db8:1:2::77/64"), HOUR),
                (net("198.51.100.0/24"), HOUR),
            ])
            .unwrap();
            assert_eq!(
                listed(&d),
                vec![net("198.51.100.0/24"), net("2001:db8:1:2::/64")]
            );
            assert!(nft_has("listed_v6_nets", "2001:db8:1:2::dead"));
            assert!(!nft_has("listed_v6_nets", "2001:db8:1:3::1"));
            assert!(nft_has("listed_v4_nets", "198.51.100.200"));
            assert!(!nft_has("listed_v4_nets", "198.51.101.1"));
        },
    );
}

#[test]
fn overlapping_and_adjacent_prefixes_do_not_fail_the_batch() {
    in_netns(
        "overlapping_and_adjacent_prefixes_do_not_fail_the_batch",
        || {
            let d = driver();
            d.ensure().unwrap();
            d.add(&[
                (net("192.0.2.5/32"), HOUR),
                (net("192.0.2.16/28"), HOUR),
                (net("203.0.113.0/24"), HOUR),
            ])
            .unwrap();
            let report = d
                .add(&[
                    (net("192.0.2.0/24"), 2 * HOUR), // covers a listed /28: replaces it
                    (net("192.0.2.5/32"), 2 * HOUR), // a host: its own set, refreshed
                    (net("203.0.113.0/26"), HOUR),   // inside a listed /24: skipped
                    (net("198.51.100.0/25"), HOUR),  // two adjacent halves
                    (net("198.51.100.128/25"), HOUR),
                    (net("198.51.100.128/26"), HOUR), // inside a requested prefix: skipped
                ])
                .unwrap();
            let skipped: Vec<(IpNet, IpNet)> = report
                .skipped
                .iter()
                .map(|s| (s.net, s.covered_by))
                .collect();
            assert_eq!(
                skipped,
                vec![
                    (net("198.51.100.128/26"), net("198.51.100.128/25")),
                    (net("203.0.113.0/26"), net("203.0.113.0/24")),
                ]
            );
            assert_eq!(
                listed(&d),
                vec![
                    net("192.0.2.0/24"),
                    net("192.0.2.5/32"),
                    net("198.51.100.0/25"),
                    net("198.51.100.128/25"),
                    net("203.0.113.0/24")
                ]
            );
            let five = d
                .list()
                .unwrap()
                .into_iter()
                .find(|(n, _)| *n == net("192.0.2.5/32"))
                .unwrap();
            assert!(five.1 > HOUR, "the host was refreshed to 2 h: {five:?}");
        },
    );
}

#[test]
fn zero_timeout_is_refused_and_huge_ones_are_clamped() {
    in_netns("zero_timeout_is_refused_and_huge_ones_are_clamped", || {
        let d = driver();
        d.ensure().unwrap();
        let err = d
            .add(&[
                (net("192.0.2.50/32"), HOUR),
                (net("192.0.2.51/32"), Duration::ZERO),
            ])
            .unwrap_err();
        assert!(matches!(err, NetfilterError::ZeroTimeout { .. }), "{err}");
        assert!(
            listed(&d).is_empty(),
            "nothing of a refused call is applied"
        );
        d.add(&[
            (
                net("192.0.2.52/32"),
                Duration::from_secs(1_000_000 * 86_400),
            ),
            (
                net("192.0.2.53/32"),
                6 * 7 * 86_400 * Duration::from_secs(1),
            ),
        ])
        .unwrap();
        let got = d.list().unwrap();
        assert!(got[0].1 > Duration::from_secs(213_000 * 86_400), "{got:?}");
        assert!(got[1].1 > Duration::from_secs(41 * 86_400), "{got:?}");
    });
}

#[test]
fn a_refused_batch_names_the_step_and_changes_nothing() {
    in_netns("a_refused_batch_names_the_step_and_changes_nothing", || {
        let d = driver();
        // No ensure: the set does not exist, so the kernel refuses the element batch.
        let err = d.add(&[(net("192.0.2.60/32"), HOUR)]).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("listed_v4") && text.contains("nothing was changed"),
            "{text}"
        );
        assert_eq!(run("nft", &["list", "ruleset"]).trim(), "");
    });
}

/// Stands for the host's own firewall: tarpit must never change it.
const HOST_TABLE: &str = "table inet hostfw {
  set trusted { type ipv4_addr; flags interval; elements = { 192.0.2.200, 203.0.113.0/24 } }
  chain input { type filter hook input priority filter; policy accept; tcp dport 22 accept; ip saddr @trusted counter accept; }
  chain pre { type nat hook prerouting priority dstnat; policy accept; tcp dport 8025 redirect to :25; }
}
table ip tarpit_neighbour {
  chain c { type filter hook forward priority 0; policy accept; counter; }
}
";

#[test]
fn another_table_is_untouched_by_every_operation() {
    in_netns("another_table_is_untouched_by_every_operation", || {
        let f = std::env::temp_dir().join(format!("hostfw-{}.nft", std::process::id()));
        std::fs::write(&f, HOST_TABLE).unwrap();
        run("nft", &["-f", f.to_str().unwrap()]);
        let _ = std::fs::remove_file(&f);
        let snapshot = || {
            let a = run("nft", &["list", "table", "inet", "hostfw"]);
            let b = run("nft", &["list", "table", "ip", "tarpit_neighbour"]);
            a + &b
        };
        let before = snapshot();
        let d = driver();
        d.ensure().unwrap();
        d.add(&[(net("192.0.2.70/32"), HOUR), (net("2001:db8::/64"), HOUR)])
            .unwrap();
        d.add(&[(net("192.0.2.70/32"), 2 * HOUR)]).unwrap();
        d.remove(&[net("192.0.2.70/32")]).unwrap();
        d.list().unwrap();
        d.flush().unwrap();
        d.repair(&[(net("192.0.2.71/32"), HOUR)]).unwrap();
        d.check().unwrap();
        d.teardown().unwrap();
        assert!(
            !nft_ok(&["list", "table", "inet", "tarpit"]),
            "teardown removes our table"
        );
        assert_eq!(snapshot(), before);
        d.teardown().unwrap();
    });
}

#[test]
fn flush_ruleset_is_repaired_within_five_seconds() {
    in_netns("flush_ruleset_is_repaired_within_five_seconds", || {
        let d = driver();
        d.ensure().unwrap();
        let live = vec![
            (net("192.0.2.80/32"), HOUR),
            (net("2001:db8:80::/64"), HOUR),
        ];
        d.add(&live).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let from_state = live.clone();
        let watcher = Watcher::spawn(d.clone(), Duration::from_secs(1), move || {
            seen.fetch_add(1, Ordering::Relaxed);
            from_state.clone()
        })
        .unwrap();
        thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            0,
            "an intact table is left alone"
        );

        run("nft", &["flush", "ruleset"]);
        let flushed = Instant::now();
        loop {
            // The watcher counts a repair just after its batch lands, so wait for both.
            if d.check().unwrap() == Health::Intact
                && listed(&d).len() == 2
                && watcher.repairs() >= 1
            {
                break;
            }
            assert!(
                flushed.elapsed() < Duration::from_secs(5),
                "not repaired within 5 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        eprintln!("repaired {:?} after nft flush ruleset", flushed.elapsed());
        assert!(watcher.repairs() >= 1);

        // Deleting only the rules is noticed too.
        run("nft", &["flush", "chain", "inet", "tarpit", "divert"]);
        assert!(matches!(d.check().unwrap(), Health::Damaged(_)));
        let start = Instant::now();
        while d.check().unwrap() != Health::Intact {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "rules not restored within 5 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        watcher.stop();
    });
}

/// Listeners that answer every connection with their name, until dropped.
struct Banner {
    stop: Arc<AtomicBool>,
}

impl Banner {
    fn serve(port: u16, name: &'static str) -> Self {
        // [::] with the namespace's default bindv6only=0 takes IPv4 connections too.
        let listener = TcpListener::bind(("::", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = writeln!(s, "{name} sees {}", peer.ip().to_canonical());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { stop }
    }
}

impl Drop for Banner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A named namespace for the client side, deleted when dropped.
struct ClientNs(String);

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn the_redirect_really_diverts_a_listed_client_to_the_stall_port() {
    in_netns(
        "the_redirect_really_diverts_a_listed_client_to_the_stall_port",
        || {
            let client = ClientNs(format!("tarpit-test-cli-{}", std::process::id()));
            run("ip", &["netns", "add", &client.0]);
            run(
                "ip",
                &[
                    "link", "add", "tps0", "type", "veth", "peer", "name", "tpc0", "netns",
                    &client.0,
                ],
            );
            let in_client = |args: &[&str]| {
                let mut all = vec!["-n", client.0.as_str()];
                all.extend_from_slice(args);
                run("ip", &all)
            };
            run("ip", &["addr", "add", "192.0.2.2/24", "dev", "tps0"]);
            run(
                "ip",
                &["addr", "add", "2001:db8::2/64", "dev", "tps0", "nodad"],
            );
            run("ip", &["link", "set", "tps0", "up"]);
            in_client(&["addr", "add", "192.0.2.1/24", "dev", "tpc0"]);
            in_client(&["addr", "add", "2001:db8::1/64", "dev", "tpc0", "nodad"]);
            in_client(&["link", "set", "tpc0", "up"]);
            in_client(&["link", "set", "lo", "up"]);
            let _mta = Banner::serve(25, "mta");
            let _stall = Banner::serve(2525, "stall");
            let probe_to = |server: &str| {
                let script = format!("exec 3<>/dev/tcp/{server}/25 && head -1 <&3");
                let out = Command::new("ip")
                    .args([
                        "netns", "exec", &client.0, "timeout", "5", "bash", "-c", &script,
                    ])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            };
            let probe = || probe_to("192.0.2.2");
            let d = driver();
            d.ensure().unwrap();
            assert_eq!(probe(), "mta sees 192.0.2.1");
            d.add(&[(net("192.0.2.1/32"), HOUR)]).unwrap();
            assert_eq!(
                probe(),
                "stall sees 192.0.2.1",
                "a listed client lands on the stall listener"
            );
            assert!(
                d.diverted().unwrap().packets >= 1,
                "the rule's counter saw it"
            );
            d.remove(&[net("192.0.2.1/32")]).unwrap();
            assert_eq!(
                probe(),
                "mta sees 192.0.2.1",
                "once removed it reaches port 25 again"
            );
            // A listed prefix that does not hold the client does not divert it; one that does, does.
            d.add(&[(net("192.0.2.128/25"), HOUR)]).unwrap();
            assert_eq!(probe(), "mta sees 192.0.2.1");
            d.add(&[(net("192.0.2.0/30"), HOUR)]).unwrap();
            assert_eq!(probe(), "stall sees 192.0.2.1");
            // IPv6: the client's /64 listed diverts it; its removal lets it through again.
            assert_eq!(probe_to("2001:db8::2"), "mta sees 2001:db8::1");
            d.add(&[(net("2001:db8::/64"), HOUR)]).unwrap();
            assert_eq!(probe_to("2001:db8::2"), "stall sees 2001:db8::1");
            d.remove(&[net("2001:db8::/64")]).unwrap();
            assert_eq!(probe_to("2001:db8::2"), "mta sees 2001:db8::1");
        },
    );
}

#[test]
fn tarpit_mode_is_refused_here_and_a_forced_batch_applies_nothing() {
    in_netns(
        "tarpit_mode_is_refused_here_and_a_forced_batch_applies_nothing",
        || {
            use tarpit::netfilter::tarpit_target::TargetProbe;
            use tarpit::netfilter::Action;
            let config = NetfilterConfig {
                action: Action::Tarpit,
                ..NetfilterConfig::default()
            };
            let loaded = std::fs::read_to_string("/proc/net/ip_tables_targets").unwrap_or_default();
            if loaded.lines().any(|l| l.trim() == "TARPIT") {
                eprintln!("skipped: tarpit_mode_is_refused_here... because this kernel has TARPIT");
                return;
            }
            let err = Driver::new(&config).unwrap_err();
            assert!(err.to_string().contains("xtables-addons-dkms"), "{err}");

            // Pretend the target exists: the kernel itself refuses the rule, and the batch that
            // would also have created the tables and sets leaves nothing behind.
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("targets"), "TARPIT\n").unwrap();
            let probe = TargetProbe {
                targets_file: dir.path().join("targets"),
                modules_dir: dir.path().into(),
            };
            let forced = Driver::with_probe(&config, &probe).unwrap();
            let err = forced.ensure().unwrap_err();
            eprintln!("the kernel refused the forced tarpit batch: {err}");
            assert!(
                err.to_string()
                    .contains("add rule to chain ip tarpit tarpit"),
                "{err}"
            );
            assert_eq!(
                run("nft", &["list", "ruleset"]).trim(),
                "",
                "never half-applied"
            );
        },
    );
}

#[test]
fn a_set_of_another_type_is_reported_not_replaced() {
    in_netns("a_set_of_another_type_is_reported_not_replaced", || {
        run("nft", &["add", "table", "inet", "tarpit"]);
        run(
            "nft",
            &[
                "add",
                "set",
                "inet",
                "tarpit",
                "listed_v4",
                "{ type ipv6_addr; flags timeout; }",
            ],
        );
        let before = run("nft", &["list", "ruleset"]);
        let err = driver().ensure().unwrap_err();
        assert!(matches!(err, NetfilterError::Incompatible { .. }), "{err}");
        assert!(
            err.to_string().contains("set inet tarpit listed_v4"),
            "{err}"
        );
        assert!(err.to_string().contains("--teardown"), "{err}");
        assert_eq!(run("nft", &["list", "ruleset"]), before);
    });
}
