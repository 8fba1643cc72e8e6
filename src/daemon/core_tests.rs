//! The core's hourly figures: lines through the real parser and policy, into a real store.

use std::sync::{Arc, Mutex};

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::parse::clock::Clock;
use crate::parse::MtaChoice;
use crate::source::position::{JournalCursor, Position};
use crate::state::{HourlyCounts, SqliteStore};

const NOW: OffsetDateTime = datetime!(2026-12-04 12:30 UTC);

fn core(dir: &tempfile::TempDir) -> Core {
    let config = Config::default();
    let rules = crate::control::replay::load_rules(&[]).unwrap();
    let reference: jiff::Timestamp = "2026-12-04T12:30:00Z".parse().unwrap();
    let parser = Parser::new(
        rules.0,
        rules.1,
        MtaChoice::Auto,
        Clock::new(jiff::tz::TimeZone::UTC, reference),
    );
    Core {
        engine: Engine::new(&config.policy_section(), Vec::new()),
        config,
        config_path: None,
        store: Box::new(SqliteStore::open(dir.path().join("state.db")).unwrap()),
        driver: None,
        sources: vec![SourceState {
            id: SourceId("journald:postfix".into()),
            mta: MtaChoice::Auto,
            parser,
            lines: 0,
            events: 0,
            position: None,
            error: None,
            newest: None,
        }],
        live: Arc::new(Mutex::new(Vec::new())),
        events_by_class: Default::default(),
        started: NOW,
        own: Vec::new(),
        stall: None,
        store_failures: 0,
        hourly: StallHours::new(),
        listed: 0,
        in_force: Vec::new(),
    }
}

fn relay(time: &str, ip: &str, n: u32) -> String {
    format!(
        "Dec  4 {time} mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <u{n}@example.net>: Relay access denied; from=<s@example.com> to=<u{n}@example.net> proto=ESMTP helo=<spam.example.com>"
    )
}

fn lines(texts: &[String]) -> Vec<Line> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Line {
            bytes: t.clone().into_bytes(),
            position: Position::Journal(JournalCursor(format!("c{i}"))),
        })
        .collect()
}

#[test]
fn events_and_listings_land_in_the_hour_of_their_log_time_with_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(&dir);
    let batch = lines(&[
        relay("10:15:00", "203.0.113.9", 1),
        relay("11:05:00", "198.51.100.7", 2),
        relay("11:06:00", "198.51.100.7", 3),
        "Dec  4 11:20:00 mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[192.0.2.5]: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table; from=<s@example.com> to=<nobody@example.org> proto=ESMTP helo=<x>".to_owned(),
    ]);
    core.process(vec![(0, batch)], NOW);

    let hours = core.store.hourly(datetime!(2026-12-04 00:00 UTC)).unwrap();
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(hours[0].hour, datetime!(2026-12-04 10:00 UTC));
    assert_eq!(hours[0].events_by_class["relay-denied"], 1);
    assert_eq!(hours[0].listings, 0);
    assert_eq!(hours[1].hour, datetime!(2026-12-04 11:00 UTC));
    assert_eq!(hours[1].events_by_class["relay-denied"], 2);
    assert_eq!(hours[1].events_by_class["unknown-recipient"], 1);
    assert_eq!(hours[1].events(), 3);
    assert_eq!(
        hours[1].listings, 1,
        "198.51.100.7 crossed the threshold at 11:06"
    );
    // In the same commit as the read position.
    assert_eq!(
        core.store
            .position(&SourceId("journald:postfix".into()))
            .unwrap(),
        Some(crate::state::Position::Journal {
            cursor: "c3".into()
        })
    );

    // A second batch adds to the same hours.
    core.process(
        vec![(0, lines(&[relay("11:59:59", "203.0.113.10", 4)]))],
        NOW,
    );
    let hours = core.store.hourly(datetime!(2026-12-04 00:00 UTC)).unwrap();
    assert_eq!(hours[1].events_by_class["relay-denied"], 3);
}

#[test]
fn a_tick_marks_the_running_hour_and_stopping_commits_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(&dir);
    let stall = crate::stall::StallStats::new();
    core.stall = Some(stall.clone());
    core.tick(NOW);
    let hours = core.store.hourly(datetime!(2026-12-04 00:00 UTC)).unwrap();
    assert_eq!(hours, vec![HourlyCounts::zero(NOW)]);
    // A connection held for 5 s; ten seconds later nothing is due yet.
    let ip = "203.0.113.7".parse().unwrap();
    stall.admit(ip, 0, 10, 10).unwrap();
    stall.closed(ip, 0, 5_000);
    core.tick(NOW + std::time::Duration::from_secs(10));
    assert_eq!(
        core.store.hourly(datetime!(2026-12-04 00:00 UTC)).unwrap(),
        vec![HourlyCounts::zero(NOW)]
    );
    // Stopping commits what is pending.
    core.stop(NOW + std::time::Duration::from_secs(20));
    let hours = core.store.hourly(datetime!(2026-12-04 00:00 UTC)).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!((hours[0].stall_connections, hours[0].stall_seconds), (1, 5));
}

#[test]
fn old_hourly_figures_are_pruned_at_the_first_tick_of_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(&dir);
    let old =
        HourlyCounts::zero(NOW - crate::state::KEEP_HOURLY - std::time::Duration::from_secs(3600));
    core.store.add_hourly(&old).unwrap();
    core.store
        .add_hourly(&HourlyCounts::zero(
            NOW - std::time::Duration::from_secs(86_400),
        ))
        .unwrap();
    core.tick(NOW);
    let hours = core.store.hourly(old.hour).unwrap();
    let starts: Vec<OffsetDateTime> = hours.iter().map(|h| h.hour).collect();
    assert_eq!(
        starts,
        vec![
            datetime!(2026-12-03 12:00 UTC),
            datetime!(2026-12-04 12:00 UTC)
        ]
    );
}

#[test]
fn listings_and_history_older_than_forget_after_are_pruned_and_recent_ones_kept() {
    use crate::state::{Evidence, NewListing, Origin};
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(&dir);
    let forget = core.config.ban.forget_after.get();
    let day = std::time::Duration::from_secs(86_400);
    let listed = |net: &str, ended: OffsetDateTime| NewListing {
        net: net.parse().unwrap(),
        since: ended - std::time::Duration::from_secs(3600),
        until: ended,
        offence: 1,
        reason: "test".into(),
        evidence: Evidence::from_lines(["a line"]),
        enforced: true,
        origin: Origin::Policy,
    };
    core.store
        .record(listed("192.0.2.1/32", NOW - forget - day))
        .unwrap();
    core.store
        .record(listed("192.0.2.2/32", NOW - day))
        .unwrap();
    core.tick(NOW);
    let left: Vec<String> = core
        .store
        .expired(NOW, 100)
        .unwrap()
        .iter()
        .map(|l| l.net.to_string())
        .collect();
    assert_eq!(left, vec!["192.0.2.2/32".to_owned()]);
    assert!(core
        .store
        .history("192.0.2.1/32".parse().unwrap())
        .unwrap()
        .is_none());
    assert!(core
        .store
        .history("192.0.2.2/32".parse().unwrap())
        .unwrap()
        .is_some());
}
