//! `tarpitctl` end to end against a mock daemon: output, `--json`, exit statuses, `--config`.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use serde_json::Value;
use tarpit::control::server::ServerLimits;

use support::{own_group, start, Running};

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .args(args)
        .output()
        .unwrap()
}

fn on(server: &Running, args: &[&str]) -> Output {
    let socket = server.socket.to_str().unwrap();
    let mut all = vec!["--socket", socket];
    all.extend_from_slice(args);
    ctl(&all)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn add_list_show_del_round_trip_with_json_and_exit_statuses() {
    let server = start(&own_group(), ServerLimits::default());
    let add = on(
        &server,
        &["add", "192.0.2.7", "--for", "12h", "--reason", "spam run"],
    );
    assert_eq!(code(&add), 0, "{}", stderr(&add));
    assert!(
        stdout(&add).contains("listed 192.0.2.7 until 2026-12-04 22:00Z (12h)"),
        "{}",
        stdout(&add)
    );

    let list = on(&server, &["list", "--json"]);
    assert_eq!(code(&list), 0);
    let v = json(&list);
    assert_eq!(v[0]["address"], "192.0.2.7");
    assert_eq!(v[0]["since"], "2026-12-04T10:00:00Z");
    assert_eq!(v[0]["until"], "2026-12-04T22:00:00Z");
    assert_eq!(v[0]["remaining_secs"], 43_200);
    assert_eq!(v[0]["offences"], 1);
    assert_eq!(v[0]["reason"], "spam run");
    assert_eq!(v[0]["enforced"], true);
    assert_eq!(v[0]["source"], "manual");

    let table = on(&server, &["list"]);
    assert!(stdout(&table).starts_with("ADDRESS"), "{}", stdout(&table));
    assert!(stdout(&table).contains("192.0.2.7"));

    let show = on(&server, &["show", "192.0.2.7", "--json"]);
    assert_eq!(code(&show), 0);
    let v = json(&show);
    assert_eq!(v["listing"]["address"], "192.0.2.7");
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    assert_eq!(v["allowlist"]["allowed"], false);

    let del = on(&server, &["unlist", "192.0.2.7"]);
    assert_eq!(code(&del), 0, "{}", stderr(&del));
    assert!(stdout(&del).contains("unlisted 192.0.2.7"));
    let again = on(&server, &["del", "192.0.2.7"]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("not listed"), "{}", stderr(&again));

    let show = on(&server, &["show", "192.0.2.7"]);
    assert_eq!(code(&show), 1, "show of an unlisted host exits 1");
    assert!(
        stdout(&show).contains("listed:     no"),
        "{}",
        stdout(&show)
    );
    assert_eq!(
        json(&on(&server, &["list", "--json"])),
        Value::Array(vec![])
    );
}

#[test]
fn show_finds_the_listed_slash_64_for_a_host_inside_it() {
    let server = start(&own_group(), ServerLimits::default());
    assert_eq!(
        code(&on(&server, &["add", "2001:db8:1:2::/64", "--for", "3d"])),
        0
    );
    let v = json(&on(&server, &["show", "2001:db8:1:2::25", "--json"]));
    assert_eq!(v["address"], "2001:db8:1:2::25");
    assert_eq!(v["listing"]["address"], "2001:db8:1:2::/64");
}

#[test]
fn del_forget_clears_the_history_so_the_next_listing_is_a_first_offence() {
    let server = start(&own_group(), ServerLimits::default());
    on(&server, &["add", "198.51.100.9"]);
    on(&server, &["del", "198.51.100.9"]);
    on(&server, &["add", "198.51.100.9"]);
    assert_eq!(json(&on(&server, &["list", "--json"]))[0]["offences"], 2);
    assert_eq!(code(&on(&server, &["del", "198.51.100.9", "--forget"])), 0);
    on(&server, &["add", "198.51.100.9"]);
    assert_eq!(json(&on(&server, &["list", "--json"]))[0]["offences"], 1);
}

#[test]
fn an_allowlisted_address_is_refused_with_4_unless_forced() {
    let server = start(&own_group(), ServerLimits::default());
    let refused = on(&server, &["add", "10.1.2.3"]);
    assert_eq!(code(&refused), 4);
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let forced = on(&server, &["add", "10.1.2.3", "--force"]);
    assert_eq!(code(&forced), 0);
    assert!(stdout(&forced).contains("allowlist overridden"));
}

#[test]
fn json_output_is_stable_across_runs_and_names_every_documented_field() {
    let server = start(&own_group(), ServerLimits::default());
    let added = json(&on(
        &server,
        &["add", "203.0.113.5", "--for", "2w", "--json"],
    ));
    assert_eq!(added["listing"]["address"], "203.0.113.5");
    assert_eq!(added["replaced"], false);
    let reloaded = json(&on(&server, &["reload", "--json"]));
    assert_eq!(reloaded["changes"][0], "policy.threshold: 10 -> 12");
    for args in [
        &["list", "--json"][..],
        &["show", "203.0.113.5", "--json"],
        &["stats", "--json"],
        &["status", "--json"],
    ] {
        let a = on(&server, args);
        let b = on(&server, args);
        assert_eq!(code(&a), 0, "{args:?}: {}", stderr(&a));
        assert_eq!(a.stdout, b.stdout, "{args:?}");
        json(&a);
    }
    let listing = json(&on(&server, &["list", "--json"]))[0].clone();
    let mut keys: Vec<&str> = listing
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "address",
            "enforced",
            "evidence",
            "offences",
            "reason",
            "remaining_secs",
            "since",
            "source",
            "until"
        ]
    );
    let stats = json(&on(&server, &["stats", "--json"]));
    assert_eq!(stats["listings_by_class"]["manual"], 1);
    assert_eq!(
        stats["listings_by_duration"][3]["count"], 1,
        "2w falls in the 1w..4w bucket"
    );
    assert_eq!(stats["stall"]["seconds_wasted"], 3600);
    let status = json(&on(&server, &["status", "--json"]));
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["table_present"], true);
    assert_eq!(status["sources"][0]["position"]["offset"], 1234);
}

#[test]
fn human_status_and_stats_print() {
    let server = start(&own_group(), ServerLimits::default());
    let status = on(&server, &["status"]);
    assert_eq!(code(&status), 0);
    assert!(
        stdout(&status).contains("mode:       enforce"),
        "{}",
        stdout(&status)
    );
    assert!(stdout(&status).contains("/var/log/mail.log"));
    let stats = on(&server, &["stats"]);
    assert_eq!(code(&stats), 0);
    assert!(
        stdout(&stats).contains("diverted packets:     11"),
        "{}",
        stdout(&stats)
    );
}

#[test]
fn stats_history_asks_for_the_days_given_and_draws_or_prints_json() {
    let server = start(&own_group(), ServerLimits::default());
    let out = on(&server, &["stats", "--history", "--days", "2", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let h = json(&out);
    assert_eq!(h["from"], "2026-12-03T00:00:00Z", "{h}");
    assert_eq!(h["hours"][0]["events"], 7);
    assert_eq!(h["hours"][0]["held_connections"], 9);
    // The mock's figures are at 10:00 on the second day; the hours before have none.
    let out = on(&server, &["stats", "--history", "--days", "2", "--ascii"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.contains("  Fri 12-04  ??????????@\n"), "{text}");
    assert!(text.is_ascii(), "{text}");
    // The locale decides without --ascii.
    let out = Command::new(env!("CARGO_BIN_EXE_tarpitctl"))
        .args(["--socket", server.socket.to_str().unwrap()])
        .args(["stats", "--history"])
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("  Fri 12-04  ··········█\n"),
        "{}",
        stdout(&out)
    );
    for bad in [
        &["stats", "--history", "--days", "9"][..],
        &["stats", "--days", "3"],
    ] {
        assert_eq!(code(&on(&server, bad)), 2, "{bad:?}");
    }
}

#[test]
fn flush_needs_yes_and_then_unlists_everybody() {
    let server = start(&own_group(), ServerLimits::default());
    on(&server, &["add", "192.0.2.1"]);
    on(&server, &["add", "192.0.2.2"]);
    let no = on(&server, &["flush"]);
    assert_eq!(code(&no), 2);
    assert!(stderr(&no).contains("--yes"));
    assert_eq!(
        json(&on(&server, &["list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let yes = on(&server, &["flush", "--yes"]);
    assert_eq!(code(&yes), 0);
    assert!(stdout(&yes).contains("unlisted 2 listing(s)"));
    let again = on(&server, &["flush", "--yes", "--json"]);
    assert_eq!(code(&again), 0, "flushing nobody is still a success");
    assert_eq!(json(&again)["removed"], 0);
}

#[test]
fn reload_reports_acceptance_and_a_rejected_config_exits_1() {
    let server = start(&own_group(), ServerLimits::default());
    let ok = on(&server, &["reload"]);
    assert_eq!(code(&ok), 0);
    assert!(stdout(&ok).contains("accepted"));
    server.handler.reject_reload.store(true, Ordering::SeqCst);
    let bad = on(&server, &["reload"]);
    assert_eq!(code(&bad), 1);
    assert!(
        stderr(&bad).contains("old configuration stays"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn bad_addresses_and_durations_exit_2_saying_what_was_expected() {
    for (args, expected) in [
        (
            &["add", "mail.example.org"][..],
            "expected an IPv4 or IPv6 address",
        ),
        (&["show", "192.0.2.300"], "expected an IPv4 or IPv6 address"),
        (
            &["add", "192.0.2.1", "--for", "10"],
            "expected a number with a unit",
        ),
        (&["del"], "ADDRESS"),
        (&["frobnicate"], "unrecognized subcommand"),
    ] {
        let o = ctl(args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn when_the_daemon_is_down_reads_say_unreachable_and_changes_refuse_with_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let socket = socket.to_str().unwrap();
    // No state database either (the host's own must not matter to this test).
    let config = write_config(
        dir.path(),
        &format!("state: {{ path: {}/none.db }}\n", dir.path().display()),
    );
    let list = ctl(&["--config", &config, "--socket", socket, "list"]);
    assert_eq!(code(&list), 3);
    assert!(
        stderr(&list).contains("daemon unreachable"),
        "{}",
        stderr(&list)
    );
    assert!(stdout(&list).is_empty());
    for args in [
        &["add", "192.0.2.1"][..],
        &["del", "192.0.2.1"],
        &["flush", "--yes"],
        &["reload"],
        &["status"],
    ] {
        let mut all = vec!["--socket", socket];
        all.extend_from_slice(args);
        let o = ctl(&all);
        assert_eq!(code(&o), 3, "{args:?}");
        assert!(
            stderr(&o).contains("is tarpitd running?"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("tarpit.yaml");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn config_and_socket_reach_the_same_daemon_and_socket_wins() {
    let server = start(&own_group(), ServerLimits::default());
    on(&server, &["add", "192.0.2.44", "--for", "90m"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "mode: enforce\npolicy: {{ threshold: 10 }}\ncontrol:\n  socket: {}\n  group: adm\nstate: {{ path: /nonexistent/state.db }}\n",
            server.socket.display()
        ),
    );
    for args in [&["list", "--json"][..], &["show", "192.0.2.44", "--json"]] {
        let by_socket = on(&server, args);
        let mut with_config = vec!["--config", config.as_str()];
        with_config.extend_from_slice(args);
        let by_config = ctl(&with_config);
        assert_eq!(code(&by_config), 0, "{}", stderr(&by_config));
        assert_eq!(by_config.stdout, by_socket.stdout, "{args:?}");
    }
    let mut add = vec!["--config", config.as_str()];
    add.extend_from_slice(&["add", "192.0.2.45"]);
    assert_eq!(code(&ctl(&add)), 0);
    assert_eq!(code(&on(&server, &["del", "192.0.2.45"])), 0);
    // --socket overrides the file's control.socket.
    let elsewhere = write_config(
        dir.path(),
        "control: { socket: /nonexistent/c.sock }\nstate: { path: /nonexistent/state.db }\n",
    );
    let o = ctl(&[
        "--config",
        &elsewhere,
        "--socket",
        server.socket.to_str().unwrap(),
        "list",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ctl(&["--config", &elsewhere, "list"]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("/nonexistent/c.sock"), "{}", stderr(&o));
}

#[test]
fn a_missing_or_broken_config_file_is_a_usage_error() {
    let o = ctl(&["--config", "/nonexistent/tarpit.yaml", "list"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("/nonexistent/tarpit.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(dir.path(), "control:\n  sokcet: /tmp/x\n");
    let o = ctl(&["--config", &bad, "list"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("sokcet"), "{}", stderr(&o));
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(
        dir.path(),
        "mode: dry-run\nsources:\n  - file: /var/log/mail.log\ncontrol: { group: adm }\nnetfilter: { table: tarpit, action: stall, ports: [25] }\n",
    );
    let o = ctl(&["check-config", &good]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ok (sets mode, sources, control, netfilter;"),
        "{}",
        stdout(&o)
    );
    let bad = write_config(
        dir.path(),
        "mode: dry-run\nnetfilter:\n  ports: [25]\n  stall_port: 25\n",
    );
    let o = ctl(&["check-config", &bad]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("stall_port"), "{}", stderr(&o));
    // Every section is checked, not just the ones tarpitctl itself reads.
    let bad = write_config(dir.path(), "policy:\n  window: 1h\n  threshold: -3\n");
    let o = ctl(&["check-config", &bad]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("policy.threshold") && stderr(&o).contains("line 3"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ctl(&["completions", shell]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("tarpitctl"));
        assert!(stdout(&o).contains("check-config"), "{shell}");
    }
    assert_eq!(code(&ctl(&["completions", "tcsh"])), 2);
}
