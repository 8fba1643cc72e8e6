//! Policy engine throughput and memory.
//!
//! - `policy/events`: 1,000,000 prepared events (from 50,000 IPv4 hosts and 10,000 IPv6 /64s,
//!   with recipients, some bounces, a few listings) through one engine, one thread.
//! - Memory: before the timing, 1,000,000 distinct offenders are fed to a fresh engine and the
//!   process's resident memory growth (from /proc/self/statm) is printed.
//!
//! Run: `cargo bench --bench policy`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarpit::event::{Event, EventClass, Mta};
use tarpit::policy::config::PolicySection;
use tarpit::policy::engine::Engine;
use time::OffsetDateTime;

fn event(i: u64, ip: IpAddr, t: i64) -> Event {
    let class = EventClass::ALL[(i % EventClass::ALL.len() as u64) as usize];
    Event {
        time: OffsetDateTime::from_unix_timestamp(t).unwrap(),
        ip,
        class,
        mta: Mta::Postfix,
        service: "smtpd".into(),
        sender: Some(if i.is_multiple_of(17) { String::new() } else { "x@example.com".into() }),
        recipient: Some(format!("user{}@example.org", i % 1000)),
        helo: None,
        code: Some(550),
        rule: "bench".into(),
        line: format!("Dec  4 12:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[{ip}]: 550 5.1.1 <user{}@example.org>: Recipient address rejected: User unknown in local recipient table; from=<x@example.com> to=<user@example.org> proto=ESMTP helo=<spam>", i % 1000),
    }
}

fn ip_of(i: u64) -> IpAddr {
    if i.is_multiple_of(5) {
        let n = i % 10_000;
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            (n >> 8) as u16,
            n as u16,
            0,
            0,
            0,
            (i % 7) as u16 + 1,
        ))
    } else {
        // Spread over 198.18.0.0/15 (benchmarking range, RFC 2544) and beyond: not private.
        IpAddr::V4(Ipv4Addr::from(0xc612_0000u32 + (i % 50_000) as u32))
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory_of_a_million_offenders() {
    let section = PolicySection::default();
    // Events are built one at a time so only the engine's memory grows.
    let before = rss_bytes();
    let mut engine = Engine::new(&section, Vec::new());
    let t0 = 1_764_849_600i64;
    for i in 0..1_000_000u64 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000u32 + i as u32));
        engine.observe_event(&event(i, ip, t0 + (i / 1000) as i64));
    }
    let after = rss_bytes();
    eprintln!(
        "policy memory: {} tracked offenders, resident growth {:.1} MiB ({:.0} bytes each; evidence ring included, capped at 16 MiB)",
        engine.tracked(),
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / engine.tracked() as f64
    );
    black_box(engine);
}

fn bench_policy(c: &mut Criterion) {
    memory_of_a_million_offenders();
    let t0 = 1_764_849_600i64;
    let events: Vec<Event> = (0..1_000_000u64)
        .map(|i| event(i, ip_of(i), t0 + (i / 300) as i64))
        .collect();
    let section = PolicySection::default();
    let mut group = c.benchmark_group("policy");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("events", |b| {
        b.iter(|| {
            let mut engine = Engine::new(&section, Vec::new());
            let mut listed = 0usize;
            for e in &events {
                listed += engine.observe_event(black_box(e)).len();
            }
            listed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
