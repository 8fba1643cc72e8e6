//! Commit throughput of the SQLite state store (WAL, `synchronous=FULL`: one WAL sync per
//! commit), on the file system of `TARPIT_BENCH_DIR` (default: the system's temporary folder).
//!
//! Four shapes of commit the daemon makes: one listing with its position (a lone offender),
//! 100 listings in one batch (a burst, or a replay after downtime), a position alone, and a
//! position with the batch's hourly figures (the steady stream of non-listing events, before
//! and with `stats --history`). Throughput is reported in listings (or batches) per
//! second; then the covering lookup over what the commits left (tens of thousands of
//! listings). Run: `cargo bench --bench state`.

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipnet::{IpNet, Ipv6Net};
use tarpit::state::*;
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

fn new_listing(n: u64) -> NewListing {
    let addr = Ipv6Addr::new(0x2001, 0xdb8, (n >> 16) as u16, n as u16, 0, 0, 0, 0);
    NewListing {
        net: IpNet::V6(Ipv6Net::new(addr, 64).expect("64 is a valid prefix length")),
        since: T0,
        until: T0 + time::Duration::hours(1),
        offence: 1,
        reason: "10 rejections in 12 min: 8× unknown-recipient, 2× relay-denied".into(),
        evidence: Evidence::from_lines((0..8).map(|k| {
            format!("Dec  1 10:0{k}:00 mx postfix/smtpd[4242]: NOQUEUE: reject: RCPT from unknown[2001:db8::{n:x}]: 550 5.1.1 <u{k}@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@example.net> to=<u{k}@example.org> proto=ESMTP helo=<x>")
        })),
        enforced: true,
        origin: Origin::Policy,
    }
}

fn position(offset: u64) -> Position {
    Position::File(FilePosition {
        dev: 0xfd01,
        ino: 131_074,
        offset,
        fingerprint: Fingerprint::new(
            b"Dec  1 00:00:01 mx postfix/master[1]: daemon started".to_vec(),
        )
        .expect("short fingerprint"),
    })
}

fn bench_commit(c: &mut Criterion) {
    let base = std::env::var_os("TARPIT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("temporary folder");
    let mut store = SqliteStore::open(dir.path().join("state.db")).expect("state opens");
    let source = SourceId("file:/var/log/mail.log".into());
    let mut next = 0u64;

    let mut group = c.benchmark_group("state_commit");
    for per_batch in [1u64, 100] {
        group.throughput(Throughput::Elements(per_batch));
        group.bench_function(format!("{per_batch}_listings_per_batch"), |b| {
            b.iter_batched(
                || {
                    let mut batch = Batch::new();
                    for _ in 0..per_batch {
                        batch.list(new_listing(next));
                        next += 1;
                    }
                    batch.position(source.clone(), position(next));
                    batch
                },
                |batch| black_box(store.commit(&batch).expect("commit")),
                BatchSize::SmallInput,
            )
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("position_only", |b| {
        b.iter(|| {
            next += 1;
            let mut batch = Batch::new();
            batch.position(source.clone(), position(next));
            black_box(store.commit(&batch).expect("commit"))
        })
    });
    group.bench_function("position_and_hourly", |b| {
        b.iter(|| {
            next += 1;
            let mut hour = HourlyCounts::zero(T0);
            hour.events_by_class.insert("unknown-recipient".into(), 3);
            hour.events_by_class.insert("relay-denied".into(), 1);
            let mut batch = Batch::new();
            batch
                .position(source.clone(), position(next))
                .add_hourly(hour);
            black_box(store.commit(&batch).expect("commit"))
        })
    });
    group.finish();

    let mut reads = c.benchmark_group("state_read");
    reads.throughput(Throughput::Elements(1));
    // A hit near the start of the address range and a miss past its end: the lookup must not
    // depend on where the address falls among the listings.
    for (name, text) in [
        ("covering_hit", "2001:db8:0:7::25"),
        ("covering_miss", "2001:db8:ffff:ffff::25"),
    ] {
        let addr = text.parse().expect("address");
        reads.bench_function(name, |b| {
            b.iter(|| black_box(store.covering(addr, T0).expect("read")))
        });
    }
    reads.finish();
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
