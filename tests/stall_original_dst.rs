//! The stall listener tells redirected connections from direct ones by `SO_ORIGINAL_DST`
//! (IPv4, also on the dual-stack socket) and `IP6T_SO_ORIGINAL_DST` (IPv6).
//!
//! Runs in a private network namespace it creates (needs root); an nft `redirect` there sends
//! connections for port 25 to the listener, as tarpitd's ruleset does. Never touches the host's
//! own network or ruleset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tarpit::stall::{Shutdown, Stall, StallConfig};

/// Moves the calling thread into a new network namespace with loopback up. `Err` says why this
/// environment cannot (not root, or namespaces forbidden): the test then skips.
fn enter_private_netns() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".to_owned());
    }
    // SAFETY: unshare affects only the calling thread, which this test owns.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(
        matches!(up, Ok(s) if s.success()),
        "ip link set lo up failed: {up:?}"
    );
    Ok(())
}

fn load_redirect(port: u16) -> Result<(), String> {
    let rules = format!(
        "table inet tarpit_test {{\n  chain out {{\n    type nat hook output priority -100; policy accept;\n    tcp dport 25 redirect to :{port}\n  }}\n}}\n"
    );
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    nft.stdin
        .take()
        .ok_or("no stdin")?
        .write_all(rules.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = nft.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("nft -f failed: {status}"))
    }
}

fn first_byte(addr: SocketAddr) -> u8 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    b[0]
}

#[test]
fn redirected_connections_are_told_apart_from_direct_ones() {
    let worker = std::thread::spawn(|| -> Result<(), String> {
        enter_private_netns()?;
        let config = StallConfig {
            listen: vec!["[::]:0".to_owned()],
            ..StallConfig::default()
        };
        let stall = Stall::bind(&config).map_err(|e| e.to_string())?;
        let port = stall.local_addrs()[0].port();
        // As root in a namespace of our own, nft must work: a failure here is a real failure.
        if let Err(e) = load_redirect(port) {
            panic!("{e}");
        }
        let stats = stall.stats();
        let shutdown = Shutdown::new().map_err(|e| e.to_string())?;
        let stop = shutdown.clone();
        let runner = std::thread::spawn(move || stall.run(&stop));

        assert_eq!(first_byte("127.0.0.1:25".parse().unwrap()), b'2');
        assert_eq!(first_byte("[::1]:25".parse().unwrap()), b'2');
        assert_eq!(
            first_byte(SocketAddr::new("127.0.0.1".parse().unwrap(), port)),
            b'2'
        );
        assert_eq!(
            first_byte(SocketAddr::new("::1".parse().unwrap(), port)),
            b'2'
        );

        let start = Instant::now();
        while stats.snapshot().total < 4 && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let snap = stats.snapshot();
        assert_eq!(snap.total, 4, "{snap:?}");
        assert_eq!(
            snap.direct, 2,
            "redirected connections counted as direct: {snap:?}"
        );
        shutdown.trigger().map_err(|e| e.to_string())?;
        runner
            .join()
            .map_err(|_| "listener thread panicked".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(())
    });
    match worker.join() {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => eprintln!("skipped: original-destination test because {reason}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
