//! Listings as set elements: prefixes to interval keys and back, timeouts in the kernel's
//! range, and the merging that keeps one batch free of overlapping prefixes.
//!
//! Pure functions only: this file never talks to the kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::raw::RawElem;

/// The longest element timeout tarpit sends: 213,503 days. The kernel keeps timeouts as
/// nanoseconds in a `u64` and refuses anything from `u64::MAX` ns (213,503.98 days) up with
/// `ERANGE`; 213,503 whole days was verified to be accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(213_503 * 86_400);

/// A timeout in milliseconds for the kernel, clamped to [`MAX_TIMEOUT`] (with a warning);
/// `None` for a zero timeout, which the kernel would read as "never expires".
pub(crate) fn timeout_ms(net: &IpNet, timeout: Duration) -> Option<u64> {
    if timeout.is_zero() {
        return None;
    }
    if timeout > MAX_TIMEOUT {
        tracing::warn!(%net, ?timeout, max = ?MAX_TIMEOUT, "timeout above the kernel's limit, clamped");
    }
    let clamped = timeout.min(MAX_TIMEOUT);
    // Round up so that a sub-millisecond timeout still expires rather than becoming 0.
    Some(u64::try_from(clamped.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// The interval keys of a prefix: its first address, and the first address after it
/// (`None` when the prefix reaches the top of the address space).
pub(crate) fn interval_keys(net: &IpNet) -> (Vec<u8>, Option<Vec<u8>>) {
    match net {
        IpNet::V4(n) => {
            let start = u32::from(n.network());
            let end = u32::from(n.broadcast()).checked_add(1);
            (
                start.to_be_bytes().to_vec(),
                end.map(|e| e.to_be_bytes().to_vec()),
            )
        }
        IpNet::V6(n) => {
            let start = u128::from(n.network());
            let end = u128::from(n.broadcast()).checked_add(1);
            (
                start.to_be_bytes().to_vec(),
                end.map(|e| e.to_be_bytes().to_vec()),
            )
        }
    }
}

/// The key of a host address.
pub(crate) fn key_of(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Dumped host elements as /32 or /128 prefixes with their remaining time.
pub(crate) fn hosts(elems: Vec<RawElem>) -> Vec<(IpNet, Duration)> {
    elems
        .into_iter()
        .filter_map(|e| {
            let addr = key_addr(&e.key)?;
            Some((IpNet::from(addr), remaining(&e)))
        })
        .collect()
}

fn remaining(e: &RawElem) -> Duration {
    e.expires_ms.map_or(Duration::MAX, Duration::from_millis)
}

/// An address from a 4- or 16-byte key.
pub(crate) fn key_addr(key: &[u8]) -> Option<IpAddr> {
    match key.len() {
        4 => <[u8; 4]>::try_from(key)
            .ok()
            .map(|k| IpAddr::V4(Ipv4Addr::from(k))),
        16 => <[u8; 16]>::try_from(key)
            .ok()
            .map(|k| IpAddr::V6(Ipv6Addr::from(k))),
        _ => None,
    }
}

/// The prefixes exactly covering `[start, end)` (`end == None`: to the top of the space).
/// A range of another family than `start`'s yields nothing.
pub(crate) fn range_to_nets(start: IpAddr, end: Option<IpAddr>) -> Vec<IpNet> {
    match (start, end) {
        (IpAddr::V4(s), None) => cover_v4(u32::from(s).into(), 1u64 << 32),
        (IpAddr::V4(s), Some(IpAddr::V4(e))) => cover_v4(u32::from(s).into(), u32::from(e).into()),
        (IpAddr::V6(s), None) => cover_v6(u128::from(s), None),
        (IpAddr::V6(s), Some(IpAddr::V6(e))) => cover_v6(u128::from(s), Some(u128::from(e))),
        _ => Vec::new(),
    }
}

fn cover_v4(mut start: u64, end: u64) -> Vec<IpNet> {
    let mut out = Vec::new();
    while start < end {
        let align = if start == 0 {
            32
        } else {
            start.trailing_zeros().min(32)
        };
        let fit = 63 - (end - start).leading_zeros();
        let bits = align.min(fit);
        // `bits <= 32` and `start < 2^32`, so both conversions are exact.
        let addr = Ipv4Addr::from(start as u32);
        if let Ok(net) = Ipv4Net::new(addr, (32 - bits) as u8) {
            out.push(IpNet::V4(net));
        }
        start += 1u64 << bits;
    }
    out
}

fn cover_v6(mut start: u128, end: Option<u128>) -> Vec<IpNet> {
    if start == 0 && end.is_none() {
        return vec![IpNet::V6(Ipv6Net::default())];
    }
    let mut out = Vec::new();
    loop {
        // Never 2^128 here: that is only the whole space, handled above.
        let remaining = match end {
            Some(e) if start >= e => break,
            Some(e) => e - start,
            None => u128::MAX - start + 1,
        };
        let align = if start == 0 {
            127
        } else {
            start.trailing_zeros()
        };
        let bits = align.min(127 - remaining.leading_zeros());
        if let Ok(net) = Ipv6Net::new(Ipv6Addr::from(start), (128 - bits) as u8) {
            out.push(IpNet::V6(net));
        }
        match start.checked_add(1u128 << bits) {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

/// A listing the batch leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The prefix that was not added.
    pub net: IpNet,
    /// The listed or requested prefix that already covers it.
    pub covered_by: IpNet,
}

/// Normalizes one request: host bits cleared, duplicates merged (the longest timeout wins),
/// and every prefix inside another requested prefix skipped, because an interval set
/// refuses overlapping intervals. Adjacent prefixes are kept: the kernel accepts them.
/// Hosts live in a set of their own, so a host inside a requested prefix is kept.
pub(crate) fn normalize(items: &[(IpNet, Duration)]) -> (Vec<(IpNet, Duration)>, Vec<Skipped>) {
    let mut sorted: Vec<(IpNet, Duration)> = items.iter().map(|(n, d)| (n.trunc(), *d)).collect();
    // Sort by family, then start address, then widest first, so a covering prefix comes
    // before everything inside it.
    sorted.sort_by(|(a, _), (b, _)| {
        (a.network(), a.prefix_len()).cmp(&(b.network(), b.prefix_len()))
    });
    let mut kept: Vec<(IpNet, Duration)> = Vec::with_capacity(sorted.len());
    let mut skipped = Vec::new();
    let mut widest: Option<IpNet> = None; // the last prefix kept
    for (net, timeout) in sorted {
        let is_host = net.prefix_len() == net.max_prefix_len();
        match kept.last_mut() {
            Some((last, last_timeout)) if *last == net => {
                *last_timeout = (*last_timeout).max(timeout);
                continue;
            }
            _ => {}
        }
        if !is_host {
            if let Some(w) = widest.filter(|w| w.contains(&net)) {
                skipped.push(Skipped { net, covered_by: w });
                continue;
            }
            widest = Some(net);
        }
        kept.push((net, timeout));
    }
    (kept, skipped)
}

/// Pairs dumped interval elements (start elements carry the timeout, end elements mark the
/// first address after) into prefixes with their remaining time. Ranges that are not one
/// prefix (added by hand) come back as the prefixes that cover them exactly. An element
/// without expiry (added by hand without a timeout) is reported with `Duration::MAX`.
pub(crate) fn pair_intervals(mut elems: Vec<RawElem>) -> Vec<(IpNet, Duration)> {
    // Ascending by key; at equal keys the end of one range sorts before the start of the
    // adjacent next one.
    elems.sort_by(|a, b| a.key.cmp(&b.key).then(b.interval_end.cmp(&a.interval_end)));
    let mut out = Vec::new();
    let mut i = 0;
    while i < elems.len() {
        let e = &elems[i];
        i += 1;
        if e.interval_end {
            continue; // an end without a start, e.g. the 0.0.0.0 marker nft adds
        }
        let Some(start) = key_addr(&e.key) else {
            continue;
        };
        let end = match elems.get(i) {
            Some(next) if next.interval_end => {
                i += 1;
                key_addr(&next.key)
            }
            _ => None,
        };
        let remaining = e.expires_ms.map_or(Duration::MAX, Duration::from_millis);
        out.extend(
            range_to_nets(start, end)
                .into_iter()
                .map(|n| (n, remaining)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::raw::RawElem;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn host_and_prefix_keys_end_one_past_the_prefix() {
        assert_eq!(
            interval_keys(&net("192.0.2.5/32")),
            (vec![192, 0, 2, 5], Some(vec![192, 0, 2, 6]))
        );
        assert_eq!(
            interval_keys(&net("198.51.100.0/24")),
            (vec![198, 51, 100, 0], Some(vec![198, 51, 101, 0]))
        );
        let (start, end) = interval_keys(&net("2001:db8:1:2::/64"));
        assert_eq!(key_addr(&start), Some("2001:db8:1:2::".parse().unwrap()));
        assert_eq!(
            key_addr(&end.unwrap()),
            Some("2001:db8:1:3::".parse().unwrap())
        );
        assert_eq!(interval_keys(&net("255.255.255.255/32")).1, None);
    }

    #[test]
    fn ranges_become_exact_prefixes() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            range_to_nets(a("192.0.2.5"), Some(a("192.0.2.6"))),
            vec![net("192.0.2.5/32")]
        );
        assert_eq!(
            range_to_nets(a("192.0.2.1"), Some(a("192.0.2.4"))),
            vec![net("192.0.2.1/32"), net("192.0.2.2/31")]
        );
        assert_eq!(
            range_to_nets(a("2001:db8::"), Some(a("2001:db8:0:1::"))),
            vec![net("2001:db8::/64")]
        );
        assert_eq!(
            range_to_nets(a("255.255.255.0"), None),
            vec![net("255.255.255.0/24")]
        );
        assert_eq!(range_to_nets(a("::"), None), vec![net("::/0")]);
    }

    #[test]
    fn normalize_merges_duplicates_and_skips_covered_prefixes_but_keeps_hosts() {
        let (kept, skipped) = normalize(&[
            (net("192.0.2.77/32"), Duration::from_secs(60)),
            (net("192.0.2.64/26"), Duration::from_secs(60)),
            (net("192.0.2.9/24"), Duration::from_secs(10)),
            (net("198.51.100.1/32"), Duration::from_secs(5)),
            (net("198.51.100.1/32"), Duration::from_secs(50)),
            (net("198.51.100.2/32"), Duration::from_secs(7)),
        ]);
        assert_eq!(
            kept,
            vec![
                (net("192.0.2.0/24"), Duration::from_secs(10)),
                (net("192.0.2.77/32"), Duration::from_secs(60)),
                (net("198.51.100.1/32"), Duration::from_secs(50)),
                (net("198.51.100.2/32"), Duration::from_secs(7)),
            ]
        );
        assert_eq!(
            skipped,
            vec![Skipped {
                net: net("192.0.2.64/26"),
                covered_by: net("192.0.2.0/24")
            }]
        );
    }

    #[test]
    fn timeouts_are_clamped_rounded_up_and_zero_refused() {
        let n = net("192.0.2.1/32");
        assert_eq!(timeout_ms(&n, Duration::ZERO), None);
        assert_eq!(timeout_ms(&n, Duration::from_micros(1)), Some(1));
        assert_eq!(timeout_ms(&n, Duration::from_secs(3)), Some(3000));
        assert_eq!(
            timeout_ms(&n, Duration::from_secs(u64::MAX)),
            Some(213_503 * 86_400 * 1000)
        );
        assert!(MAX_TIMEOUT.as_nanos() < u128::from(u64::MAX));
    }

    #[test]
    fn dumped_intervals_pair_up_in_any_order() {
        let el = |k: [u8; 4], end: bool, ms: Option<u64>| RawElem {
            key: k.to_vec(),
            interval_end: end,
            expires_ms: ms,
        };
        let got = pair_intervals(vec![
            el([198, 51, 101, 0], true, None),
            el([192, 0, 2, 6], true, None),
            el([0, 0, 0, 0], true, None),
            el([198, 51, 100, 128], false, Some(2000)),
            el([192, 0, 2, 5], false, Some(1000)),
            el([198, 51, 100, 128], true, None),
            el([198, 51, 100, 0], false, None),
        ]);
        assert_eq!(
            got,
            vec![
                (net("192.0.2.5/32"), Duration::from_secs(1)),
                (net("198.51.100.0/25"), Duration::MAX),
                (net("198.51.100.128/25"), Duration::from_secs(2)),
            ]
        );
    }
}
