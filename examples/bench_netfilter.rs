//! Benchmark of the netfilter driver against the `nft` CLI, run by
//! `scripts/bench-netfilter.sh` inside a private network namespace (it refuses to run in the
//! host's namespace). Prints wall-clock figures and ratios:
//!
//! 1. `add()` of 100,000 IPv4 listings with individual timeouts vs `nft -f` loading the same
//!    elements into the same kind of set;
//! 2. cost per listing: `add()` of 1,000 listings vs one `nft add element` process each;
//! 3. `list()` of 100,000 listings with their remaining time;
//! 4. one `add()` of 1,000,000 listings: time and peak memory.
//!
//! Set contents only, no traffic: IPv4 keys come from 198.18.0.0/15 (RFC 2544, reserved for
//! benchmarks), IPv6 keys from 2001:db8::/32 (documentation).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tarpit::netfilter::{Driver, NetfilterConfig};

const RUNS: usize = 3;

fn main() -> Result<()> {
    // A namespace fresh from `unshare -n` has only the loopback interface.
    let devs =
        std::fs::read_to_string("/proc/self/net/dev").context("reading /proc/self/net/dev")?;
    let others: Vec<&str> = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .filter(|name| *name != "lo")
        .collect();
    if !others.is_empty() {
        bail!("refusing to run in a namespace with interfaces {others:?}: use scripts/bench-netfilter.sh (unshare -n)");
    }
    let args: Vec<String> = std::env::args().collect();
    let big: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let d = Driver::new(&NetfilterConfig::default())?;

    // 1. 100,000 IPv4 listings, each with its own timeout.
    let v4 = v4_listings(100_000);
    let file = nft_file(&v4);
    let path = std::env::temp_dir().join(format!("bench-netfilter-{}.nft", std::process::id()));
    std::fs::write(&path, &file)?;
    let mut nft_times = Vec::new();
    let mut add_times = Vec::new();
    for _ in 0..RUNS {
        d.teardown()?;
        nft_times.push(time(|| nft(&["-f", path.to_str().unwrap_or_default()]))?);
        d.teardown()?;
        d.ensure()?;
        add_times.push(time(|| d.add(&v4).map(drop).map_err(Into::into))?);
    }
    let _ = std::fs::remove_file(&path);
    let (nft_m, add_m) = (median(&mut nft_times), median(&mut add_times));
    println!(
        "add() 100,000 IPv4 with timeouts: median {add_m:.3} s of {RUNS} (runs {add_times:.3?})"
    );
    println!("nft -f same 100,000 elements, same set type: median {nft_m:.3} s of {RUNS} (runs {nft_times:.3?})");
    println!(
        "  ratio add()/nft -f = {:.2} (target <= 0.7)",
        add_m / nft_m
    );

    // 3. list() of those 100,000.
    let mut list_times = Vec::new();
    for _ in 0..RUNS {
        let mut n = 0;
        list_times.push(time(|| {
            n = d.list()?.len();
            Ok(())
        })?);
        if n != v4.len() {
            bail!("list() returned {n} listings, expected {}", v4.len());
        }
    }
    println!(
        "list() of 100,000 with remaining time: median {:.3} s (target <= 0.5)",
        median(&mut list_times)
    );

    // 2. Per listing: one add() of 1,000 vs 1,000 nft processes.
    let thousand = v4_listings(1000);
    d.flush()?;
    let batch = time(|| d.add(&thousand).map(drop).map_err(Into::into))?;
    d.flush()?;
    let procs = time(|| {
        for (net, timeout) in &thousand {
            let elem = format!("{{ {} timeout {}s }}", net.addr(), timeout.as_secs());
            nft(&["add", "element", "inet", "tarpit", "listed_v4", &elem])?;
        }
        Ok(())
    })?;
    let (per_batch, per_proc) = (batch / 1000.0, procs / 1000.0);
    println!(
        "per listing: add() of 1,000 = {:.2} us each; nft process per element = {:.2} ms each; ratio {:.0}x (target >= 1000x)",
        per_batch * 1e6,
        per_proc * 1e3,
        per_proc / per_batch
    );

    // The daemon may also list one host per call: one batch (and socket) per listing.
    d.flush()?;
    let singles = time(|| {
        for item in &thousand {
            d.add(std::slice::from_ref(item))?;
        }
        Ok(())
    })?;
    println!(
        "per listing, one add() call each (1,000 calls): {:.1} us each; ratio {:.0}x vs nft processes",
        singles / 1000.0 * 1e6,
        per_proc / (singles / 1000.0)
    );

    // 4. One batch of `big` IPv6 hosts (IPv4 benchmark space is too small for a million).
    d.teardown()?;
    d.ensure()?;
    let v6 = v6_listings(big);
    let rss_before = vm_kib("VmRSS:");
    let add_big = time(|| d.add(&v6).map(drop).map_err(Into::into))?;
    let peak = vm_kib("VmHWM:");
    let mut n = 0;
    let list_big = time(|| {
        n = d.list()?.len();
        Ok(())
    })?;
    println!(
        "one add() of {big} IPv6 listings: {add_big:.2} s, listed {n}; list() {list_big:.2} s; \
         process RSS before {} MiB, peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    d.teardown()?;
    Ok(())
}

fn v4_listings(n: usize) -> Vec<(IpNet, Duration)> {
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::from(0xC612_0000u32 + i as u32); // 198.18.0.0/15
            let net = IpNet::V4(Ipv4Net::from(addr));
            (net, Duration::from_secs(3600 + (i as u64 % 3600)))
        })
        .collect()
}

fn v6_listings(n: usize) -> Vec<(IpNet, Duration)> {
    (0..n)
        .map(|i| {
            let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | i as u128); // hosts
            let net = IpNet::V6(Ipv6Net::from(addr));
            (net, Duration::from_secs(3600 + (i as u64 % 3600)))
        })
        .collect()
}

/// The nft script that creates the same table and set as the driver and loads `items`.
fn nft_file(items: &[(IpNet, Duration)]) -> String {
    let mut s = String::from(
        "add table inet tarpit\nadd set inet tarpit listed_v4 { type ipv4_addr; flags timeout; }\n\
         add element inet tarpit listed_v4 { ",
    );
    for (i, (net, t)) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{} timeout {}s", net.addr(), t.as_secs());
    }
    s.push_str(" }\n");
    s
}

fn nft(args: &[&str]) -> Result<()> {
    let out = Command::new("nft")
        .args(args)
        .output()
        .context("running nft")?;
    if !out.status.success() {
        bail!(
            "nft {:?}: {}",
            args.first(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn time(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
