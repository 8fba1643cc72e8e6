//! Round trips of every [`Store`] operation against a real SQLite file.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use time::macros::datetime;
use time::OffsetDateTime;

use super::SqliteStore;
use crate::state::model::EVIDENCE_MAX_LINES;
use crate::state::*;

const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

fn listing(text: &str, since: OffsetDateTime, length: time::Duration, offence: u32) -> NewListing {
    NewListing {
        net: net(text),
        since,
        until: since + length,
        offence,
        reason: format!("offence {offence} of {text}"),
        evidence: Evidence::from_lines([format!("line about {text}")]),
        enforced: true,
        origin: Origin::Policy,
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    (dir, store)
}

#[test]
fn recorded_listing_reads_back_field_for_field() {
    let (_dir, mut store) = open();
    let mut new = listing("2001:db8:1:2::/64", T0, minutes(60), 3);
    new.origin = Origin::Manual {
        by: "postmaster".into(),
    };
    new.enforced = false;
    new.since = T0 + time::Duration::microseconds(123_456);
    new.evidence = Evidence::from_lines(["a «quoted» line", "second\tline"]);
    let id = store.record(new.clone()).unwrap();

    let got = store
        .get(net("2001:db8:1:2::/64"), T0 + minutes(1))
        .unwrap()
        .unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.net, new.net);
    assert_eq!(got.since, new.since);
    assert_eq!(got.until, new.until);
    assert_eq!(got.offence, 3);
    assert_eq!(got.reason, new.reason);
    assert_eq!(got.evidence, new.evidence);
    assert!(!got.enforced);
    assert_eq!(got.origin, new.origin);
    assert_eq!(got.ended, None);
}

#[test]
fn a_net_is_stored_truncated_to_its_network() {
    let (_dir, mut store) = open();
    store
        .record(listing("198.51.100.77/24", T0, minutes(60), 1))
        .unwrap();
    let got = store.get(net("198.51.100.0/24"), T0).unwrap().unwrap();
    assert_eq!(got.net, net("198.51.100.0/24"));
    assert_eq!(
        store.get(net("198.51.100.9/24"), T0).unwrap().unwrap().id,
        got.id
    );
}

#[test]
fn active_and_expired_are_decided_by_the_time_asked() {
    let (_dir, mut store) = open();
    let short = store
        .record(listing("192.0.2.1/32", T0, minutes(10), 1))
        .unwrap();
    let long = store
        .record(listing("192.0.2.2/32", T0 + minutes(5), minutes(60), 1))
        .unwrap();

    let ids = |v: Vec<Listing>| v.into_iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(ids(store.active(T0 - minutes(1)).unwrap()), vec![]);
    assert_eq!(ids(store.active(T0).unwrap()), vec![short]);
    assert_eq!(
        ids(store.active(T0 + minutes(5)).unwrap()),
        vec![short, long]
    );
    // `until` itself is no longer active.
    assert_eq!(ids(store.active(T0 + minutes(10)).unwrap()), vec![long]);
    assert_eq!(
        ids(store.expired(T0 + minutes(10), 10).unwrap()),
        vec![short]
    );
    assert_eq!(ids(store.expired(T0 + minutes(9), 10).unwrap()), vec![]);
    assert_eq!(
        ids(store.expired(T0 + minutes(90), 10).unwrap()),
        vec![long, short]
    );
    assert_eq!(ids(store.expired(T0 + minutes(90), 1).unwrap()), vec![long]);
    assert!(store
        .get(net("192.0.2.1/32"), T0 + minutes(10))
        .unwrap()
        .is_none());
}

#[test]
fn covering_finds_the_listing_that_contains_a_plain_address() {
    let (_dir, mut store) = open();
    let v6 = store
        .record(listing("2001:db8:1:2::/64", T0, minutes(60), 1))
        .unwrap();
    let v6_48 = store
        .record(listing("2001:db8:1::/48", T0, minutes(60), 1))
        .unwrap();
    let v4 = store
        .record(listing("198.51.100.0/24", T0, minutes(60), 1))
        .unwrap();
    let host = store
        .record(listing("198.51.100.7/32", T0, minutes(60), 1))
        .unwrap();
    let at = T0 + minutes(1);

    let ids = |a: &str| {
        store
            .covering(addr(a), at)
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids("2001:db8:1:2::25"),
        vec![v6, v6_48],
        "most specific first"
    );
    assert_eq!(ids("2001:db8:1:2:ffff:ffff:ffff:ffff"), vec![v6, v6_48]);
    assert_eq!(ids("2001:db8:1:3::1"), vec![v6_48]);
    assert_eq!(ids("2001:db8:2::1"), vec![]);
    assert_eq!(ids("198.51.100.7"), vec![host, v4]);
    assert_eq!(ids("198.51.100.255"), vec![v4]);
    assert_eq!(ids("198.51.101.0"), vec![]);
    // An IPv4 address never matches an IPv6 prefix whose bytes happen to compare alike.
    assert_eq!(ids("32.1.13.184"), vec![]);
    assert!(store
        .covering(addr("198.51.100.7"), T0 + minutes(61))
        .unwrap()
        .is_empty());
}

#[test]
fn recording_sets_the_offenders_history() {
    let (_dir, mut store) = open();
    assert_eq!(store.history(net("203.0.113.5/32")).unwrap(), None);
    store
        .record(listing("203.0.113.5/32", T0, minutes(60), 1))
        .unwrap();
    store
        .record(listing(
            "203.0.113.5/32",
            T0 + minutes(120),
            minutes(240),
            2,
        ))
        .unwrap();
    let history = store.history(net("203.0.113.5/32")).unwrap().unwrap();
    assert_eq!(
        history,
        Offender {
            net: net("203.0.113.5/32"),
            offences: 2,
            last_offence: T0 + minutes(120),
            last_listing_end: T0 + minutes(360),
        }
    );
}

#[test]
fn a_new_listing_of_an_active_net_supersedes_it() {
    let (_dir, mut store) = open();
    let first = store
        .record(listing("203.0.113.5/32", T0, minutes(60), 1))
        .unwrap();
    let second = store
        .record(listing("203.0.113.5/32", T0 + minutes(30), minutes(240), 2))
        .unwrap();
    let active = store.active(T0 + minutes(31)).unwrap();
    assert_eq!(
        active.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![second]
    );
    let all = store.listings_of(net("203.0.113.5/32"), 10).unwrap();
    assert_eq!(
        all.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(
        all[1].ended,
        Some(Ended {
            at: T0 + minutes(30),
            cause: EndCause::Superseded
        })
    );
    assert_eq!(all[1].ends(), T0 + minutes(30));
}

#[test]
fn unlisting_keeps_or_forgets_history() {
    let (_dir, mut store) = open();
    store
        .record(listing("192.0.2.10/32", T0, minutes(60), 2))
        .unwrap();
    store
        .record(listing("192.0.2.11/32", T0, minutes(60), 4))
        .unwrap();
    let at = T0 + minutes(15);

    let ended = store
        .unlist(net("192.0.2.10/32"), at, "alice", HistoryOnUnlist::Keep)
        .unwrap()
        .unwrap();
    assert_eq!(
        ended.ended,
        Some(Ended {
            at,
            cause: EndCause::Unlisted { by: "alice".into() }
        })
    );
    let kept = store.history(net("192.0.2.10/32")).unwrap().unwrap();
    assert_eq!(kept.offences, 2);
    assert_eq!(kept.last_listing_end, at);

    store
        .unlist(net("192.0.2.11/32"), at, "bob", HistoryOnUnlist::Forget)
        .unwrap()
        .unwrap();
    assert_eq!(store.history(net("192.0.2.11/32")).unwrap(), None);

    assert!(store.active(at).unwrap().is_empty());
    let expired = store.expired(at, 10).unwrap();
    assert_eq!(expired.len(), 2);
    assert!(expired.iter().all(|l| l.ends() == at));
    // Nothing active left to remove.
    assert_eq!(
        store
            .unlist(net("192.0.2.10/32"), at, "alice", HistoryOnUnlist::Keep)
            .unwrap(),
        None
    );
}

#[test]
fn positions_round_trip_and_the_last_one_wins() {
    let (_dir, mut store) = open();
    let file = SourceId("file:/var/log/mail.log".into());
    let journal = SourceId("journald:postfix@-.service".into());
    let first = Position::File(FilePosition {
        dev: 0xfd01,
        ino: u64::MAX - 3,
        offset: 1 << 40,
        fingerprint: Fingerprint::new(b"Dec  1 10:00:00 mx postfix/smtpd[1]: connect".to_vec())
            .unwrap(),
    });
    store.save_position(file.clone(), first.clone()).unwrap();
    assert_eq!(store.position(&file).unwrap(), Some(first));

    let cursor = Position::Journal {
        cursor:
            "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8bb4f8f;m=5f0b8;t=4c6e6d3;x=3e1"
                .into(),
    };
    let later = Position::File(FilePosition {
        dev: 0xfd01,
        ino: 42,
        offset: 7,
        fingerprint: Fingerprint::default(),
    });
    let mut batch = Batch::new();
    batch
        .position(journal.clone(), cursor.clone())
        .position(file.clone(), later.clone());
    store.commit(&batch).unwrap();
    assert_eq!(
        store.positions().unwrap(),
        vec![(file.clone(), later), (journal.clone(), cursor)]
    );
    assert_eq!(
        store.position(&SourceId("file:/nope".into())).unwrap(),
        None
    );
}

#[test]
fn one_batch_commits_listings_unlistings_and_positions_in_order() {
    let (_dir, mut store) = open();
    let mut batch = Batch::new();
    batch
        .list(listing("192.0.2.20/32", T0, minutes(60), 1))
        .unlist(Unlisting {
            net: net("192.0.2.20/32"),
            at: T0 + minutes(1),
            by: "tarpitctl".into(),
            history: HistoryOnUnlist::Keep,
        })
        .list(listing("192.0.2.21/32", T0, minutes(60), 1))
        .position(
            SourceId("journald:x".into()),
            Position::Journal {
                cursor: "c1".into(),
            },
        );
    let committed = store.commit(&batch).unwrap();
    assert_eq!(committed.outcomes.len(), 3);
    let Outcome::Listed(first) = committed.outcomes[0] else {
        panic!("{committed:?}")
    };
    assert!(
        matches!(&committed.outcomes[1], Outcome::Unlisted(Some(l)) if l.id == first),
        "{committed:?}"
    );
    assert!(matches!(committed.outcomes[2], Outcome::Listed(id) if id > first));
    let counts = store.counts(T0 + minutes(2)).unwrap();
    assert_eq!(
        counts,
        Counts {
            active: 1,
            enforced: 1,
            expired: 1,
            offenders: 2,
            sources: 1
        }
    );
}

#[test]
fn a_batch_that_fails_midway_leaves_nothing() {
    let (_dir, mut store) = open();
    store
        .record(listing("192.0.2.30/32", T0, minutes(60), 1))
        .unwrap();
    let source = SourceId("file:/var/log/mail.log".into());
    store
        .save_position(
            source.clone(),
            Position::Journal {
                cursor: "before".into(),
            },
        )
        .unwrap();
    // A trigger makes the batch's last statement fail after every other one has run.
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON positions WHEN NEW.source = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        .unwrap();
    let mut batch = Batch::new();
    batch
        .list(listing("192.0.2.31/32", T0, minutes(60), 1))
        .list(listing("192.0.2.30/32", T0 + minutes(1), minutes(240), 2))
        .unlist(Unlisting {
            net: net("192.0.2.31/32"),
            at: T0 + minutes(2),
            by: "x".into(),
            history: HistoryOnUnlist::Forget,
        })
        .position(
            source.clone(),
            Position::Journal {
                cursor: "after".into(),
            },
        )
        .position(
            SourceId("poison".into()),
            Position::Journal { cursor: "p".into() },
        );
    let before = (
        store.active(T0 + minutes(3)).unwrap(),
        store.history(net("192.0.2.30/32")).unwrap(),
        store.counts(T0 + minutes(3)).unwrap(),
    );
    let err = store.commit(&batch).unwrap_err();
    assert_eq!(err.op(), Op::Commit);
    assert!(err.to_string().contains("state.db"), "{err}");
    assert!(err.to_string().contains("poisoned"), "{err}");
    let after = (
        store.active(T0 + minutes(3)).unwrap(),
        store.history(net("192.0.2.30/32")).unwrap(),
        store.counts(T0 + minutes(3)).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(
        store.position(&source).unwrap(),
        Some(Position::Journal {
            cursor: "before".into()
        })
    );
    assert!(store.history(net("192.0.2.31/32")).unwrap().is_none());
    // The connection stays usable after the rollback.
    store
        .record(listing("192.0.2.32/32", T0, minutes(60), 1))
        .unwrap();
}

#[test]
fn prune_deletes_old_expired_listings_and_forgotten_history_only() {
    let (_dir, mut store) = open();
    store
        .record(listing("192.0.2.40/32", T0, minutes(60), 1))
        .unwrap();
    store
        .record(listing("192.0.2.41/32", T0, minutes(60 * 24 * 10), 1))
        .unwrap();
    store
        .record(listing(
            "192.0.2.42/32",
            T0 + minutes(60 * 24),
            minutes(60),
            1,
        ))
        .unwrap();
    let now = T0 + minutes(60 * 24 * 3);
    let rules = PruneRules {
        keep_expired: Duration::from_secs(36 * 3600),
        forget_after: Duration::from_secs(48 * 3600),
        keep_hourly: KEEP_HOURLY,
    };
    let pruned = store.prune(now, rules).unwrap();
    // .40 ended 71 h before now: listing and history go. .42 ended 47 h before: listing goes,
    // history stays. .41 is still active: both stay.
    assert_eq!(
        pruned,
        Pruned {
            listings: 2,
            offenders: 1,
            hours: 0
        }
    );
    assert_eq!(store.history(net("192.0.2.40/32")).unwrap(), None);
    assert!(store.history(net("192.0.2.42/32")).unwrap().is_some());
    assert!(store.history(net("192.0.2.41/32")).unwrap().is_some());
    assert_eq!(store.active(now).unwrap().len(), 1);
    assert_eq!(store.expired(now, 10).unwrap().len(), 0);
    assert_eq!(store.prune(now, rules).unwrap(), Pruned::default());
}

fn hour(start: OffsetDateTime, listings: u64, classes: &[(&str, u64)]) -> HourlyCounts {
    let mut h = HourlyCounts::zero(start);
    h.listings = listings;
    for (class, n) in classes {
        h.events_by_class.insert((*class).to_owned(), *n);
    }
    h
}

#[test]
fn hourly_figures_add_up_per_hour_and_read_back_in_order() {
    let (_dir, mut store) = open();
    let mut first = hour(T0 + minutes(5), 1, &[("relay-denied", 2)]);
    first.stall_connections = 3;
    first.stall_seconds = 600;
    let mut batch = Batch::new();
    batch.add_hourly(first);
    batch.add_hourly(hour(T0 + minutes(130), 0, &[("rbl-listed", 1)]));
    store.commit(&batch).unwrap();
    // Later deltas for the first hour add to it, class by class.
    let mut more = hour(
        T0 + minutes(59),
        2,
        &[("relay-denied", 5), ("rbl-listed", 7)],
    );
    more.stall_seconds = 60;
    store.add_hourly(&more).unwrap();
    // A zero delta creates a record: the hour is covered, with nothing in it.
    store
        .add_hourly(&HourlyCounts::zero(T0 + minutes(61)))
        .unwrap();

    let got = store.hourly(T0).unwrap();
    let starts: Vec<OffsetDateTime> = got.iter().map(|h| h.hour).collect();
    assert_eq!(starts, vec![T0, T0 + minutes(60), T0 + minutes(120)]);
    assert_eq!(got[0].listings, 3);
    assert_eq!(got[0].events(), 14);
    assert_eq!(got[0].events_by_class["relay-denied"], 7);
    assert_eq!(got[0].events_by_class["rbl-listed"], 7);
    assert_eq!((got[0].stall_connections, got[0].stall_seconds), (3, 660));
    assert_eq!(got[1], HourlyCounts::zero(T0 + minutes(60)));
    assert_eq!(got[2].events(), 1);
    // `since` is inclusive of the hour that starts at it and leaves out earlier ones.
    assert_eq!(store.hourly(T0 + minutes(60)).unwrap().len(), 2);
    assert_eq!(store.hourly(T0 + minutes(61)).unwrap().len(), 1);
}

#[test]
fn hourly_figures_commit_with_the_rest_of_their_batch_or_not_at_all() {
    let (_dir, mut store) = open();
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON hourly_events WHEN NEW.class = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        .unwrap();
    let source = SourceId("file:/var/log/mail.log".into());
    let mut batch = Batch::new();
    batch
        .list(listing("192.0.2.33/32", T0, minutes(60), 1))
        .position(
            source.clone(),
            Position::Journal {
                cursor: "after".into(),
            },
        )
        .add_hourly(hour(T0, 1, &[("relay-denied", 2)]))
        .add_hourly(hour(T0 + minutes(60), 0, &[("poison", 1)]));
    assert!(store.commit(&batch).is_err());
    assert!(store.hourly(T0).unwrap().is_empty());
    assert_eq!(store.position(&source).unwrap(), None);
    assert!(store.active(T0).unwrap().is_empty());
}

#[test]
fn prune_deletes_hourly_figures_older_than_the_keep_and_keeps_the_rest() {
    let (_dir, mut store) = open();
    let now = T0 + minutes(60 * 24 * 9);
    let mut batch = Batch::new();
    for day in 0..=9 {
        batch.add_hourly(hour(T0 + minutes(60 * 24 * day), 1, &[("relay-denied", 1)]));
    }
    store.commit(&batch).unwrap();
    let rules = PruneRules {
        keep_expired: Duration::from_secs(36 * 3600),
        forget_after: Duration::from_secs(48 * 3600),
        keep_hourly: KEEP_HOURLY,
    };
    // Hours starting 9 days before `now` go; the one starting exactly 8 days before stays.
    assert_eq!(store.prune(now, rules).unwrap().hours, 1);
    let left = store.hourly(T0 - minutes(60)).unwrap();
    assert_eq!(left.len(), 9);
    assert_eq!(left[0].hour, T0 + minutes(60 * 24));
    assert!(left.iter().all(|h| h.events() == 1));
    assert_eq!(store.prune(now, rules).unwrap(), Pruned::default());
}

#[test]
fn a_database_of_schema_1_gains_the_hourly_tables_and_keeps_its_listings() {
    let (_dir, path) = database_with_one_listing();
    {
        // Take it back to what schema 1 had.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE hourly; DROP TABLE hourly_events;
             DELETE FROM schema_migrations WHERE version > 1;",
        )
        .unwrap();
    }
    assert!(SqliteStore::open_read_only(&path)
        .unwrap_err()
        .to_string()
        .contains("start tarpitd once to upgrade it"));
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.active(T0 + minutes(1)).unwrap().len(), 1);
    store.add_hourly(&hour(T0, 1, &[])).unwrap();
    assert_eq!(store.hourly(T0).unwrap().len(), 1);
}

#[test]
fn evidence_keeps_the_last_lines_cut_to_size() {
    let lines: Vec<String> = (0..EVIDENCE_MAX_LINES + 5)
        .map(|i| format!("line {i}"))
        .collect();
    let evidence = Evidence::from_lines(lines.clone());
    assert_eq!(evidence.lines(), &lines[5..]);
    let long = "é".repeat(model::EVIDENCE_MAX_LINE_BYTES);
    let cut = Evidence::from_lines([long]);
    assert!(cut.lines()[0].len() <= model::EVIDENCE_MAX_LINE_BYTES);
    assert!(cut.lines()[0].len() >= model::EVIDENCE_MAX_LINE_BYTES - 1);
}

#[test]
fn fingerprint_over_the_cap_is_refused() {
    assert!(Fingerprint::new(vec![0; model::FINGERPRINT_MAX_BYTES]).is_ok());
    let err = Fingerprint::new(vec![0; model::FINGERPRINT_MAX_BYTES + 1]).unwrap_err();
    assert_eq!(err.len, model::FINGERPRINT_MAX_BYTES + 1);
}

#[test]
fn reopening_keeps_everything_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let id = {
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .record(listing("192.0.2.50/32", T0, minutes(60), 1))
            .unwrap()
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get(net("192.0.2.50/32"), T0).unwrap().unwrap().id, id);
    let versions: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, super::SCHEMA_VERSION);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn a_newer_schema_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .conn
            .execute("INSERT INTO schema_migrations VALUES (99, 0)", [])
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    let err = SqliteStore::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
}

#[test]
fn read_only_open_reads_and_refuses_writes() {
    let (dir, path) = database_with_one_listing();
    let mut reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.active(T0).unwrap().len(), 1);
    let err = reader
        .record(listing("192.0.2.61/32", T0, minutes(60), 1))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ReadOnly { op: Op::Commit, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("read-only"), "{err}");

    let missing = SqliteStore::open_read_only(dir.path().join("none.db")).unwrap_err();
    assert!(matches!(missing, StoreError::Missing { .. }), "{missing}");
    assert!(missing.to_string().contains("none.db"), "{missing}");
}

#[test]
fn a_missing_folder_is_a_clear_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path().join("no/such/dir/state.db")).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.op(), Op::Open);
    assert!(
        text.contains("no/such/dir/state.db") && text.contains("folder"),
        "{text}"
    );
}

#[test]
fn immutable_uri_escapes_what_a_uri_gives_meaning_to() {
    let uri = super::immutable_uri(std::path::Path::new("/var/lib/t%p?x#y/state é.db"));
    assert_eq!(
        uri,
        "file:/var/lib/t%25p%3Fx%23y/state %C3%A9.db?immutable=1"
    );
}

#[test]
fn read_only_open_without_a_creatable_shm_reads_the_closed_database() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("odd ?#% name");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("state.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .record(listing("192.0.2.70/32", T0, minutes(60), 1))
            .unwrap();
    }
    // The immutable fallback, reached directly: the same reads through it.
    let conn = rusqlite::Connection::open_with_flags(
        super::immutable_uri(&path),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let store = SqliteStore { conn, path };
    assert_eq!(store.active(T0).unwrap().len(), 1);
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_a_retryable_busy_error() {
    let (dir, mut store) = open();
    store.set_busy_timeout(Duration::from_millis(50)).unwrap();
    let other = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .record(listing("192.0.2.80/32", T0, minutes(60), 1))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Busy { op: Op::Commit, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    other.execute_batch("ROLLBACK").unwrap();
    store
        .record(listing("192.0.2.80/32", T0, minutes(60), 1))
        .unwrap();
    assert_eq!(store.active(T0).unwrap().len(), 1);
}

#[test]
fn the_last_position_of_a_source_in_a_batch_wins() {
    let (_dir, mut store) = open();
    let source = SourceId("journald:postfix".into());
    let mut batch = Batch::new();
    batch
        .position(
            source.clone(),
            Position::Journal {
                cursor: "one".into(),
            },
        )
        .position(
            source.clone(),
            Position::Journal {
                cursor: "two".into(),
            },
        );
    store.commit(&batch).unwrap();
    assert_eq!(
        store.positions().unwrap(),
        vec![(
            source,
            Position::Journal {
                cursor: "two".into()
            }
        )]
    );
}

#[test]
fn every_offender_is_listed_for_loading_at_start() {
    let (_dir, mut store) = open();
    store
        .record(listing("192.0.2.90/32", T0, minutes(60), 1))
        .unwrap();
    store
        .record(listing("2001:db8:5::/48", T0, minutes(60), 3))
        .unwrap();
    let all = store.offenders().unwrap();
    let nets: Vec<IpNet> = all.iter().map(|o| o.net).collect();
    assert_eq!(nets, vec![net("192.0.2.90/32"), net("2001:db8:5::/48")]);
    assert_eq!(all[1].offences, 3);
    assert_eq!(all[1].last_listing_end, T0 + minutes(60));
}

#[test]
fn the_store_works_behind_a_trait_object() {
    let (dir, store) = open();
    let mut boxed: Box<dyn Store> = Box::new(store);
    boxed
        .record(listing("198.51.100.1/32", T0, minutes(60), 1))
        .unwrap();
    assert_eq!(boxed.covering(addr("198.51.100.1"), T0).unwrap().len(), 1);
    assert!(boxed
        .location()
        .starts_with(&dir.path().display().to_string()));
}

mod covering_properties {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An address inside the documentation ranges: 192.0.2.0/24, 198.51.100.0/24,
    /// 203.0.113.0/24 or 2001:db8::/32.
    fn doc_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0usize..3, any::<u8>()).prop_map(|(range, host)| {
                let [a, b, c] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]][range];
                IpAddr::V4(Ipv4Addr::new(a, b, c, host))
            }),
            // Few distinct high bits so that prefixes and probes overlap often.
            (0u16..4, 0u16..4, any::<u64>()).prop_map(|(x, y, low)| {
                let bits = (0x2001_0db8u128 << 96)
                    | (u128::from(x) << 80)
                    | (u128::from(y) << 64)
                    | u128::from(low % 4);
                IpAddr::V6(Ipv6Addr::from(bits))
            }),
        ]
    }

    fn doc_net() -> impl Strategy<Value = IpNet> {
        (doc_addr(), 0u8..=100).prop_map(|(addr, len)| {
            let len = match addr {
                IpAddr::V4(_) => 24 + len % 9,
                IpAddr::V6(_) => 32 + len % 97,
            };
            IpNet::new(addr, len).unwrap().trunc()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// `covering` returns exactly the active listings that contain the address, most
        /// specific first, whatever mix of prefixes is listed.
        #[test]
        fn covering_equals_a_brute_force_scan(
            nets in proptest::collection::vec(doc_net(), 1..25),
            probes in proptest::collection::vec(doc_addr(), 1..20),
        ) {
            let (_dir, mut store) = open();
            let mut batch = Batch::new();
            for n in &nets {
                batch.list(NewListing { net: *n, ..listing("192.0.2.1/32", T0, minutes(60), 1) });
            }
            store.commit(&batch).unwrap();
            let active = store.active(T0).unwrap();
            for probe in probes.iter().copied().chain(nets.iter().map(|n| n.network())) {
                let mut expected: Vec<(u8, ListingId)> = active
                    .iter()
                    .filter(|l| l.covers(probe))
                    .map(|l| (l.net.prefix_len(), l.id))
                    .collect();
                expected.sort_by(|a, b| b.cmp(a));
                let got: Vec<(u8, ListingId)> = store
                    .covering(probe, T0)
                    .unwrap()
                    .iter()
                    .map(|l| (l.net.prefix_len(), l.id))
                    .collect();
                prop_assert_eq!(got, expected, "probe {}", probe);
            }
        }
    }
}

#[test]
fn a_new_database_and_its_last_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tarpit");
    let path = folder.join("state.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store
        .record(listing("192.0.2.99/32", T0, minutes(60), 1))
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o750);
    assert_eq!(mode(&path), 0o640);
    assert_eq!(mode(&super::sidecar(&path, "-wal")), 0o640);
    assert_eq!(mode(&super::sidecar(&path, "-shm")), 0o640);
}

/// A fresh state database holding one listing, closed again.
fn database_with_one_listing() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store
        .record(listing("192.0.2.60/32", T0, minutes(60), 1))
        .unwrap();
    (dir, path)
}
