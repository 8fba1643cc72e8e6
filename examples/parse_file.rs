//! Parses a log file held in memory a number of times and prints lines/s and MB/s (one thread).
//! Usage: cargo run --release --example parse_file -- FILE [ROUNDS] [--deliveries]
//! Without `--deliveries` only rejection events are parsed, as `tarpitctl replay --events` does.

use std::time::Instant;

use tarpit::parse::clock::Clock;
use tarpit::parse::{MtaChoice, Outcome, Parser};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: parse_file FILE [ROUNDS]");
    let rounds: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let deliveries = args.next().as_deref() == Some("--deliveries");
    let data = std::fs::read(&path).expect("readable file");
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2026-12-04T12:00:00Z".parse().unwrap(),
    );
    let parser = Parser::builtin(MtaChoice::Auto, clock)
        .unwrap()
        .with_deliveries(deliveries);
    let mut best = f64::MAX;
    let mut events = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        events = lines
            .iter()
            .filter(|l| matches!(parser.parse(l), Outcome::Event(_)))
            .count();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{path}{}: lines={} events={events} best of {rounds}: {:.3} s, {:.2} M lines/s, {:.0} MB/s",
        if deliveries { " (with deliveries)" } else { "" },
        lines.len(),
        best,
        lines.len() as f64 / best / 1e6,
        data.len() as f64 / best / 1e6
    );
}
