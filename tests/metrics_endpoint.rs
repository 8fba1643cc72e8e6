//! The metrics endpoint over real TCP on loopback, with a stand-in collector: what it answers to
//! good and bad requests, and that hostile clients (silent, garbage, an endless header, too many
//! at once) never hold up a scrape from someone else. The daemon's real figures are checked in
//! `tests/daemon_namespace.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarpit::event::EventClass;
use tarpit::metrics::snapshot::ActiveListings;
use tarpit::metrics::{Collect, Limits, MetricsHandle, MetricsServer, Snapshot};

/// Counts its collections; each shows the count as `relay-denied` events. `delay` makes it slow.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicU64>,
    delay: Duration,
}

impl Collect for Counting {
    async fn collect(&self) -> Result<Snapshot, String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        Ok(Snapshot {
            started: time::OffsetDateTime::UNIX_EPOCH,
            events_by_class: vec![(EventClass::RelayDenied, n)],
            active: ActiveListings::default(),
            listings_total: 0,
            diverted_packets: Some(0),
            stall: None,
            sources: Vec::new(),
        })
    }
}

fn limits() -> Limits {
    Limits {
        read_timeout: Duration::from_millis(1500),
        write_timeout: Duration::from_secs(2),
        collect_timeout: Duration::from_millis(500),
        reuse: Duration::ZERO,
        ..Limits::default()
    }
}

fn start(collector: Counting, limits: Limits) -> MetricsHandle {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    server.spawn(collector, limits).unwrap()
}

/// Sends `request` and reads the whole answer (the server closes after one).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn get_metrics_is_served_and_everything_else_is_refused_by_status() {
    let h = start(Counting::default(), limits());
    let addr = h.local_addr();
    let ok = get(addr, "/metrics");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{ok}"
    );
    assert!(
        ok.contains("tarpit_events_total{class=\"relay-denied\"} 1\n"),
        "{ok}"
    );
    let body = ok.split_once("\r\n\r\n").unwrap().1;
    assert!(
        ok.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{ok}"
    );

    let om = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    );
    assert!(
        om.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("tarpit_events_total{class=\"relay-denied\"} 2\n"),
        "{om}"
    );

    let head = exchange(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(get(addr, "/").starts_with("HTTP/1.1 404 "));
    assert!(get(addr, "/metrics/x").starts_with("HTTP/1.1 404 "));
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"),
        "{post}"
    );
    h.stop();
}

#[test]
fn silent_garbage_and_huge_clients_do_not_hold_up_a_scrape() {
    let h = start(Counting::default(), limits());
    let addr = h.local_addr();
    // Connected and silent; half a request line; an endless header sent from a thread.
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(b"GET /metr").unwrap();
    let huge = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sent = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Fill: ").is_ok();
        let filler = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            sent = sent && s.write_all(&filler).is_ok();
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    std::thread::sleep(Duration::from_millis(100));

    let took = Instant::now();
    let ok = get(addr, "/metrics");
    let took = took.elapsed();
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(
        took < Duration::from_millis(1000),
        "a good scrape waited {took:?} behind the hostile clients"
    );
    let garbage = exchange(
        addr,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    );
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

    // The endless header is cut off at the limit: a 431, or a reset if the kernel drops the
    // answer because the client was still sending; never a hang.
    let answer = huge.join().unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer}"
    );

    // The silent and the partial client are told off once the read deadline has passed.
    for s in [&mut silent, &mut partial] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    h.stop();
}

#[test]
fn past_the_connection_cap_new_clients_get_503_at_once_and_later_ones_are_served() {
    let h = start(
        Counting::default(),
        Limits {
            max_connections: 2,
            read_timeout: Duration::from_millis(700),
            ..limits()
        },
    );
    let addr = h.local_addr();
    let _a = TcpStream::connect(addr).unwrap();
    let _b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let took = Instant::now();
    let busy = get(addr, "/metrics");
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
    assert!(took.elapsed() < Duration::from_millis(500));
    // The two idle ones time out and free their places.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200 "));
    h.stop();
}

#[test]
fn a_slow_daemon_gives_503_and_scrapes_close_together_share_one_collection() {
    let slow = Counting {
        delay: Duration::from_secs(2),
        ..Counting::default()
    };
    let h = start(slow, limits());
    let answer = get(h.local_addr(), "/metrics");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("did not answer in time"), "{answer}");
    h.stop();

    let counting = Counting::default();
    let calls = counting.calls.clone();
    let h = start(
        counting,
        Limits {
            reuse: Duration::from_secs(30),
            ..limits()
        },
    );
    for _ in 0..5 {
        assert!(get(h.local_addr(), "/metrics").contains("relay-denied\"} 1\n"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one collection for five scrapes"
    );
    h.stop();
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let first = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let err = MetricsServer::bind(first.local_addr())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&first.local_addr().to_string()) && err.contains("metrics.listen"),
        "{err}"
    );
}
