//! Parse throughput on a generated 1,000,000-line realistic log (Postfix and Exim), one thread.
//!
//! The logs come from `scripts/gen_maillog.py` (about 10% rejections); set `TARPIT_BENCH_DIR` to
//! a folder holding `postfix-1M.log` and `exim-1M.log`, or let the bench write them to a temporary
//! folder first. `scripts/bench-parse.sh` runs this and fail2ban-regex on the same file.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarpit::parse::clock::Clock;
use tarpit::parse::{MtaChoice, Outcome, Parser};

fn log_file(dir: &Path, mta: &str) -> PathBuf {
    let path = dir.join(format!("{mta}-1M.log"));
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_maillog.py");
        let status = Command::new("python3")
            .arg(script)
            .args(["--mta", mta, "--lines", "1000000", "--seed", "42"])
            .arg(&path)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "gen_maillog.py failed");
    }
    path
}

fn bench_parse(c: &mut Criterion) {
    let dir = std::env::var_os("TARPIT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tarpit-bench"));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let clock = Clock::new(
        jiff::tz::TimeZone::UTC,
        "2026-12-04T12:00:00Z".parse().unwrap(),
    );
    let mut group = c.benchmark_group("parse-1M-lines");
    group.sample_size(10);
    for (mta, choice) in [("postfix", MtaChoice::Postfix), ("exim", MtaChoice::Exim)] {
        let data = std::fs::read(log_file(&dir, mta)).expect("log readable");
        let lines: Vec<&[u8]> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let parser = Parser::builtin(choice, clock.clone()).unwrap();
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("{mta}/bytes"), |b| {
            b.iter(|| {
                let mut events = 0usize;
                for line in &lines {
                    if let Outcome::Event(_) = parser.parse(black_box(line)) {
                        events += 1;
                    }
                }
                events
            })
        });
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("{mta}/lines"), |b| {
            b.iter(|| {
                lines
                    .iter()
                    .filter(|l| matches!(parser.parse(black_box(l)), Outcome::Event(_)))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
