//! How fast a followed log file is read, and how soon an appended line arrives.
//!
//! Prints figures rather than running criterion, because latency wants percentiles:
//! - throughput: a 1,000,000-line file (about 120 bytes a line) read from its start through
//!   [`FileSource`], lines/s and MB/s;
//! - latency: 1,000 lines appended one at a time, each once the previous one arrived, from the
//!   `write` to its arrival through the channel: p50, p99 and max, woken by inotify and, for
//!   comparison, by polling alone (100 appends there).
//!
//! Run with `cargo bench --bench follow`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use tarpit::source::follow::{FileSource, FollowOptions};

const LINES: usize = 1_000_000;
const PINGS: usize = 1_000;

fn line(n: usize) -> String {
    format!(
        "Dec  4 10:00:00 mx postfix/smtpd[4242]: NOQUEUE: reject: RCPT from unknown[192.0.2.{}]: 550 5.1.1 <u{n}@example.org>: unknown\n",
        n % 250
    )
}

async fn throughput(dir: &Path) {
    let path = dir.join("big.log");
    let mut w = BufWriter::new(File::create(&path).expect("create the log"));
    let mut bytes = 0;
    for n in 0..LINES {
        let l = line(n);
        bytes += l.len();
        w.write_all(l.as_bytes()).expect("write the log");
    }
    w.flush().expect("write the log");
    drop(w);
    let start = Instant::now();
    let mut source = FileSource::spawn(&path, None, FollowOptions::default()).expect("follow");
    let mut got = 0;
    while got < LINES {
        got += source
            .next_batch()
            .await
            .expect("the follower stopped")
            .len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {LINES} lines ({:.0} MB) in {secs:.3} s = {:.2} M lines/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        LINES as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
}

async fn latency(dir: &Path, poll_only: bool) {
    let path = dir.join(if poll_only { "poll.log" } else { "inotify.log" });
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("create the log");
    let options = FollowOptions {
        poll_only,
        ..FollowOptions::default()
    };
    let mut source = FileSource::spawn(&path, None, options).expect("follow");
    // Each polled append waits about one interval: fewer of them say as much.
    let pings = if poll_only { PINGS / 10 } else { PINGS };
    let mut waits = Vec::with_capacity(pings);
    for n in 0..pings {
        let sent = Instant::now();
        file.write_all(line(n).as_bytes()).expect("append");
        source.next_line().await.expect("the follower stopped");
        waits.push(sent.elapsed());
    }
    waits.sort();
    let at = |q: f64| waits[((waits.len() as f64 * q) as usize).min(waits.len() - 1)];
    println!(
        "latency ({}): p50 {:?}, p99 {:?}, max {:?} over {pings} appends",
        if poll_only {
            "polling every 500 ms"
        } else {
            "inotify"
        },
        at(0.5),
        at(0.99),
        waits[waits.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too, so keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        throughput(dir.path()).await;
        latency(dir.path(), false).await;
        latency(dir.path(), true).await;
    });
}
