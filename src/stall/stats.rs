//! Accounting: how many connections are held now, how many ever, how much sender time was wasted,
//! per client address. Fed by the listener's loop, read by anyone holding a [`StallStats`] (later
//! `tarpitctl stats`).
//!
//! Owns the counters only; it never touches a socket. Time held is kept as "sum of closed
//! durations + sum of start times of live connections", so a snapshot costs O(addresses), never
//! O(connections), and the loop never walks its connections to keep the counters current.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

/// Most client addresses remembered; past this the longest-idle addresses without a held
/// connection are forgotten, so a scan from many addresses cannot grow the table without bound.
pub const MAX_TRACKED_IPS: usize = 65_536;

/// Shared handle to the listener's counters. Cheap to clone; a snapshot takes a short lock.
#[derive(Debug, Clone)]
pub struct StallStats {
    inner: Arc<Mutex<Totals>>,
}

#[derive(Debug)]
struct Totals {
    epoch: Instant,
    current: u64,
    total: u64,
    refused_full: u64,
    refused_per_ip: u64,
    bytes_sent: u64,
    direct: u64,
    closed_held_ms: u64,
    live_start_ms_sum: u64,
    per_ip: HashMap<IpAddr, IpTotals>,
}

#[derive(Debug, Default, Clone, Copy)]
struct IpTotals {
    current: u32,
    total: u64,
    refused: u64,
    closed_held_ms: u64,
    live_start_ms_sum: u64,
    last_seen_ms: u64,
}

/// Why a new connection was closed at once instead of held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are held already.
    Full,
    /// `max_per_ip` are held from this address already.
    PerIp,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Connections held now.
    pub current: u64,
    /// Connections held since start.
    pub total: u64,
    /// Connections closed at once because `max_connections` were held.
    pub refused_full: u64,
    /// Connections closed at once because `max_per_ip` were held from that address.
    pub refused_per_ip: u64,
    /// Bytes trickled to clients.
    pub bytes_sent: u64,
    /// Held connections (since start) that came straight to the stall port rather than through the
    /// nft redirect: someone found the port itself.
    pub direct: u64,
    /// Seconds clients have been held, live connections included: sender time wasted.
    pub seconds_held: u64,
    /// Per client address, most seconds held first.
    pub per_ip: Vec<IpSnapshot>,
}

/// One client address's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpSnapshot {
    /// The client address.
    pub ip: IpAddr,
    /// Connections held now.
    pub current: u32,
    /// Connections held since start (or since the address was last forgotten).
    pub total: u64,
    /// Connections refused by `max_per_ip` or `max_connections`.
    pub refused: u64,
    /// Seconds held, live connections included.
    pub seconds_held: u64,
}

impl Default for StallStats {
    fn default() -> Self {
        Self::new()
    }
}

impl StallStats {
    /// Empty counters whose clock starts now.
    pub fn new() -> Self {
        StallStats {
            inner: Arc::new(Mutex::new(Totals {
                epoch: Instant::now(),
                current: 0,
                total: 0,
                refused_full: 0,
                refused_per_ip: 0,
                bytes_sent: 0,
                direct: 0,
                closed_held_ms: 0,
                live_start_ms_sum: 0,
                per_ip: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Totals> {
        // The counters stay consistent even if a holder panicked: every update is a few adds.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Milliseconds since these counters started: the clock `admit` and `closed` take.
    pub(crate) fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.lock().epoch).as_millis() as u64
    }

    /// Counts a new connection from `ip` at `now_ms`, or says why it must be refused.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        now_ms: u64,
        max_connections: usize,
        max_per_ip: usize,
    ) -> Result<(), Refusal> {
        let mut t = self.lock();
        if t.current >= max_connections as u64 {
            t.refused_full += 1;
            if let Some(entry) = t.per_ip.get_mut(&ip) {
                entry.refused += 1;
            }
            return Err(Refusal::Full);
        }
        if !t.per_ip.contains_key(&ip) && t.per_ip.len() >= MAX_TRACKED_IPS {
            forget_idle(&mut t.per_ip);
        }
        let entry = t.per_ip.entry(ip).or_default();
        entry.last_seen_ms = now_ms;
        if entry.current as usize >= max_per_ip {
            entry.refused += 1;
            t.refused_per_ip += 1;
            return Err(Refusal::PerIp);
        }
        entry.current += 1;
        entry.total += 1;
        entry.live_start_ms_sum += now_ms;
        t.current += 1;
        t.total += 1;
        t.live_start_ms_sum += now_ms;
        Ok(())
    }

    /// Counts the end of a connection from `ip` admitted at `started_ms`.
    pub(crate) fn closed(&self, ip: IpAddr, started_ms: u64, now_ms: u64) {
        let held = now_ms.saturating_sub(started_ms);
        let mut t = self.lock();
        t.current = t.current.saturating_sub(1);
        t.live_start_ms_sum = t.live_start_ms_sum.saturating_sub(started_ms);
        t.closed_held_ms += held;
        if let Some(entry) = t.per_ip.get_mut(&ip) {
            entry.current = entry.current.saturating_sub(1);
            entry.live_start_ms_sum = entry.live_start_ms_sum.saturating_sub(started_ms);
            entry.closed_held_ms += held;
            entry.last_seen_ms = now_ms;
        }
    }

    /// Counts a held connection that was not redirected.
    pub(crate) fn direct(&self) {
        self.lock().direct += 1;
    }

    /// Adds trickled bytes.
    pub(crate) fn sent(&self, bytes: u64) {
        self.lock().bytes_sent += bytes;
    }

    /// The counters now, with every client address (most seconds held first).
    pub fn snapshot(&self) -> StatsSnapshot {
        self.read(true)
    }

    /// The totals now, without the per-address list: what periodic readers need, at a cost
    /// that does not grow with the number of addresses.
    pub fn totals(&self) -> StatsSnapshot {
        self.read(false)
    }

    fn read(&self, with_addresses: bool) -> StatsSnapshot {
        let mut per_ip = Vec::new();
        let snapshot = {
            let t = self.lock();
            let now_ms = Instant::now()
                .saturating_duration_since(t.epoch)
                .as_millis() as u64;
            let held_ms =
                |closed: u64, live: u64, sum: u64| closed + (live * now_ms).saturating_sub(sum);
            if with_addresses {
                per_ip = t
                    .per_ip
                    .iter()
                    .map(|(ip, e)| IpSnapshot {
                        ip: *ip,
                        current: e.current,
                        total: e.total,
                        refused: e.refused,
                        seconds_held: held_ms(
                            e.closed_held_ms,
                            e.current as u64,
                            e.live_start_ms_sum,
                        ) / 1000,
                    })
                    .collect();
            }
            StatsSnapshot {
                current: t.current,
                total: t.total,
                refused_full: t.refused_full,
                refused_per_ip: t.refused_per_ip,
                bytes_sent: t.bytes_sent,
                direct: t.direct,
                seconds_held: held_ms(t.closed_held_ms, t.current, t.live_start_ms_sum) / 1000,
                per_ip: Vec::new(),
            }
        };
        // Sorted after the lock is released, so the listener is not kept waiting.
        per_ip.sort_by(|a, b| b.seconds_held.cmp(&a.seconds_held).then(a.ip.cmp(&b.ip)));
        StatsSnapshot { per_ip, ..snapshot }
    }
}

/// Forgets the longest-idle addresses that hold no connection, down to three quarters of
/// [`MAX_TRACKED_IPS`].
fn forget_idle(per_ip: &mut HashMap<IpAddr, IpTotals>) {
    let mut idle: Vec<(u64, IpAddr)> = per_ip
        .iter()
        .filter(|(_, e)| e.current == 0)
        .map(|(ip, e)| (e.last_seen_ms, *ip))
        .collect();
    idle.sort_unstable();
    let excess = per_ip.len().saturating_sub(MAX_TRACKED_IPS * 3 / 4);
    for (_, ip) in idle.into_iter().take(excess) {
        per_ip.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn counts_live_and_closed_time_per_address() {
        let stats = StallStats::new();
        stats.admit(ip(1), 0, 10, 10).unwrap();
        stats.admit(ip(1), 1_000, 10, 10).unwrap();
        stats.admit(ip(2), 2_000, 10, 10).unwrap();
        stats.closed(ip(1), 0, 5_000);
        stats.sent(3);
        let snap = stats.snapshot();
        assert_eq!(snap.current, 2);
        assert_eq!(snap.total, 3);
        assert_eq!(snap.bytes_sent, 3);
        // The clock of `snapshot` is real time (near 0 ms here); live connections started "in the
        // future" add nothing, the closed one adds its 5 s.
        assert_eq!(snap.seconds_held, 5);
        let one = snap.per_ip.iter().find(|e| e.ip == ip(1)).unwrap();
        assert_eq!((one.current, one.total, one.seconds_held), (1, 2, 5));
        let totals = stats.totals();
        assert!(totals.per_ip.is_empty());
        assert_eq!(
            StatsSnapshot {
                per_ip: snap.per_ip.clone(),
                ..totals
            },
            snap,
            "the totals are the snapshot's without the addresses"
        );
    }

    #[test]
    fn refuses_over_either_bound_and_counts_why() {
        let stats = StallStats::new();
        assert_eq!(stats.admit(ip(1), 0, 3, 2), Ok(()));
        assert_eq!(stats.admit(ip(1), 0, 3, 2), Ok(()));
        assert_eq!(stats.admit(ip(1), 0, 3, 2), Err(Refusal::PerIp));
        assert_eq!(stats.admit(ip(2), 0, 3, 2), Ok(()));
        assert_eq!(stats.admit(ip(3), 0, 3, 2), Err(Refusal::Full));
        stats.closed(ip(1), 0, 10);
        assert_eq!(stats.admit(ip(1), 0, 3, 2), Ok(()));
        let snap = stats.snapshot();
        assert_eq!(
            (snap.current, snap.refused_per_ip, snap.refused_full),
            (3, 1, 1)
        );
    }

    #[test]
    fn live_connections_count_towards_time_held() {
        let stats = StallStats::new();
        stats.admit(ip(1), 0, 10, 10).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let snap = stats.snapshot();
        assert!(snap.seconds_held >= 1, "{snap:?}");
    }

    #[test]
    fn idle_addresses_are_forgotten_when_the_table_is_full() {
        let stats = StallStats::new();
        for n in 0..MAX_TRACKED_IPS as u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            stats.admit(a, n as u64, usize::MAX, 1).unwrap();
            if n > 0 {
                stats.closed(a, n as u64, n as u64 + 1);
            }
        }
        stats.admit(ip(9), 1 << 40, usize::MAX, 1).unwrap();
        let snap = stats.snapshot();
        assert!(snap.per_ip.len() <= MAX_TRACKED_IPS * 3 / 4 + 1);
        // The one address still holding a connection is kept.
        assert!(snap
            .per_ip
            .iter()
            .any(|e| e.ip == IpAddr::V4(Ipv4Addr::from(0x0a00_0000))));
        assert!(snap.per_ip.iter().any(|e| e.ip == ip(9)));
    }
}
