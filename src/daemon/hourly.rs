//! The core's hourly bookkeeping for `tarpitctl stats --history`.
//!
//! Events and listings are counted per batch of lines by their log time ([`BatchHours`]) and go
//! into that batch's commit, together with the read positions: a crash loses none of them and a
//! line read again after a restart is not counted twice. The stall listener's figures have no log
//! position; [`StallHours`] turns its running totals into per-hour deltas, keeps them in memory
//! and hands them over for a commit once a minute, when the hour turns and at shutdown, so a
//! crash loses at most a minute of them. The once-a-minute commit is made even when nothing
//! happened: the zero record says the daemon was running that hour.
//!
//! Time is always passed in, so all of this runs the same in tests. Nothing here writes: the
//! core commits what these return.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::event::EventClass;
use crate::state::hourly::{hour_start, HourlyCounts, KEEP_HOURLY};

/// How often the stall figures (and the "daemon running" zero record) are committed.
pub const STALL_FLUSH_EVERY: Duration = Duration::from_secs(60);

/// The hour a log time is counted in: its own, but never later than `now`'s (a clock ahead of
/// ours, or a year guessed wrong, must not fill hours that have not begun), and `None` when it is
/// older than the figures are kept.
fn hour_of(time: OffsetDateTime, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if time < now - KEEP_HOURLY {
        return None;
    }
    Some(hour_start(time.min(now)))
}

/// The events and listings of one batch of lines, per hour.
#[derive(Debug, Default)]
pub struct BatchHours {
    hours: BTreeMap<OffsetDateTime, HourlyCounts>,
}

impl BatchHours {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn hour(&mut self, time: OffsetDateTime, now: OffsetDateTime) -> Option<&mut HourlyCounts> {
        let hour = hour_of(time, now)?;
        Some(
            self.hours
                .entry(hour)
                .or_insert_with(|| HourlyCounts::zero(hour)),
        )
    }

    /// Counts one rejection event logged at `time`.
    pub fn event(&mut self, time: OffsetDateTime, class: EventClass, now: OffsetDateTime) {
        if let Some(h) = self.hour(time, now) {
            let n = h
                .events_by_class
                .entry(class.as_str().to_owned())
                .or_default();
            *n = n.saturating_add(1);
        }
    }

    /// Counts one listing made at `time`.
    pub fn listing(&mut self, time: OffsetDateTime, now: OffsetDateTime) {
        if let Some(h) = self.hour(time, now) {
            h.listings = h.listings.saturating_add(1);
        }
    }

    /// The figures counted, oldest hour first.
    pub fn into_counts(self) -> Vec<HourlyCounts> {
        self.hours.into_values().collect()
    }
}

/// The stall listener's figures turned into per-hour deltas, and when to commit them.
#[derive(Debug, Default)]
pub struct StallHours {
    /// Seen but not yet handed over for a commit.
    pending: Option<HourlyCounts>,
    /// The listener's totals (connections, seconds held) at the last look.
    last: (u64, u64),
    /// When figures were last handed over.
    flushed: Option<OffsetDateTime>,
    /// The hour the state was last pruned in.
    pruned: Option<OffsetDateTime>,
}

impl StallHours {
    /// Nothing seen yet; the listener's totals start at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the listener's running totals at `now` (zero without a listener) and returns the
    /// figures to commit now, if it is time: the previous hour's as soon as the hour has turned,
    /// and the current hour's once every [`STALL_FLUSH_EVERY`] (first at the first look).
    pub fn observe(
        &mut self,
        now: OffsetDateTime,
        connections: u64,
        seconds: u64,
    ) -> Vec<HourlyCounts> {
        // Totals that went down belong to a listener started afresh: count from zero.
        let delta = |total: u64, last: u64| if total >= last { total - last } else { total };
        let new_connections = delta(connections, self.last.0);
        let new_seconds = delta(seconds, self.last.1);
        self.last = (connections, seconds);
        let hour = hour_start(now);
        let mut out = Vec::new();
        if let Some(p) = self.pending.take_if(|p| p.hour != hour) {
            out.push(p);
        }
        let pending = self.pending.get_or_insert_with(|| HourlyCounts::zero(hour));
        pending.stall_connections = pending.stall_connections.saturating_add(new_connections);
        pending.stall_seconds = pending.stall_seconds.saturating_add(new_seconds);
        let due = self
            .flushed
            .is_none_or(|at| now - at >= STALL_FLUSH_EVERY || now < at);
        if due || !out.is_empty() {
            out.extend(self.pending.take());
            self.flushed = Some(now);
        }
        out
    }

    /// Everything seen and not yet handed over (at shutdown).
    pub fn flush(&mut self) -> Option<HourlyCounts> {
        self.pending.take()
    }

    /// Seen and not yet committed: to add to what the store holds when answering `history`.
    pub fn pending(&self) -> Option<&HourlyCounts> {
        self.pending.as_ref()
    }

    /// True once per hour (the first time it is asked in an hour): time to prune.
    pub fn prune_due(&mut self, now: OffsetDateTime) -> bool {
        let hour = hour_start(now);
        if self.pruned == Some(hour) {
            return false;
        }
        self.pruned = Some(hour);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 10:30 UTC);

    #[test]
    fn events_and_listings_count_in_the_hour_of_their_log_time() {
        let mut b = BatchHours::new();
        b.event(
            datetime!(2026-12-04 09:59:59 UTC),
            EventClass::RelayDenied,
            NOW,
        );
        b.event(
            datetime!(2026-12-04 10:00 UTC),
            EventClass::RelayDenied,
            NOW,
        );
        b.event(datetime!(2026-12-04 10:10 UTC), EventClass::RblListed, NOW);
        b.listing(datetime!(2026-12-04 10:10 UTC), NOW);
        // Ahead of our clock: counted now. Older than kept: not counted at all.
        b.event(
            datetime!(2026-12-05 03:00 UTC),
            EventClass::RelayDenied,
            NOW,
        );
        b.event(
            datetime!(2026-11-20 10:00 UTC),
            EventClass::RelayDenied,
            NOW,
        );
        let counts = b.into_counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].hour, datetime!(2026-12-04 09:00 UTC));
        assert_eq!(counts[0].events(), 1);
        assert_eq!(counts[0].listings, 0);
        assert_eq!(counts[1].hour, datetime!(2026-12-04 10:00 UTC));
        assert_eq!(counts[1].events_by_class["relay-denied"], 2);
        assert_eq!(counts[1].events_by_class["rbl-listed"], 1);
        assert_eq!(counts[1].listings, 1);
    }

    #[test]
    fn stall_totals_become_hourly_deltas_committed_every_minute_and_at_the_hour() {
        let mut s = StallHours::new();
        let t = datetime!(2026-12-04 10:58 UTC);
        // The first look commits at once: a zero record marks the hour as covered.
        let first = s.observe(t, 0, 0);
        assert_eq!(first, vec![HourlyCounts::zero(t)]);
        // Within the minute: kept in memory, visible as pending.
        assert!(s.observe(t + Duration::from_secs(10), 2, 30).is_empty());
        assert!(s.observe(t + Duration::from_secs(20), 3, 50).is_empty());
        assert_eq!(
            s.pending().map(|p| (p.stall_connections, p.stall_seconds)),
            Some((3, 50))
        );
        // A minute after the last commit: handed over.
        let minute = s.observe(t + Duration::from_secs(60), 3, 70);
        assert_eq!(minute.len(), 1);
        assert_eq!(
            (minute[0].stall_connections, minute[0].stall_seconds),
            (3, 70)
        );
        assert!(s.pending().is_none());
        // The hour turns: the old hour's figures go at once, and the new hour is opened.
        assert!(s.observe(t + Duration::from_secs(90), 4, 80).is_empty());
        let turned = s.observe(t + Duration::from_secs(125), 5, 100);
        assert_eq!(turned.len(), 2);
        assert_eq!(turned[0].hour, datetime!(2026-12-04 10:00 UTC));
        assert_eq!(
            (turned[0].stall_connections, turned[0].stall_seconds),
            (1, 10)
        );
        assert_eq!(turned[1].hour, datetime!(2026-12-04 11:00 UTC));
        assert_eq!(
            (turned[1].stall_connections, turned[1].stall_seconds),
            (1, 20)
        );
        // Shutdown hands over what is left.
        assert!(s.observe(t + Duration::from_secs(130), 6, 101).is_empty());
        let last = s.flush().unwrap();
        assert_eq!((last.stall_connections, last.stall_seconds), (1, 1));
        assert!(s.flush().is_none());
    }

    #[test]
    fn a_listener_started_afresh_counts_from_zero() {
        let mut s = StallHours::new();
        s.observe(NOW, 10, 100);
        let after = s.observe(NOW + Duration::from_secs(60), 2, 5);
        assert_eq!((after[0].stall_connections, after[0].stall_seconds), (2, 5));
    }

    #[test]
    fn pruning_is_due_once_an_hour() {
        let mut s = StallHours::new();
        assert!(s.prune_due(NOW));
        assert!(!s.prune_due(NOW + Duration::from_secs(600)));
        assert!(s.prune_due(NOW + Duration::from_secs(1800)));
    }
}
