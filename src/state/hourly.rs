//! Hourly figures: what happened in each UTC hour, kept for a week or so so that `tarpitctl
//! stats --history` can draw the attack waves.
//!
//! [`HourlyCounts`] is both what the daemon adds (a delta, committed in a [`super::Batch`]) and
//! what a read returns (the sums for one hour). An hour has a record only when the daemon
//! recorded something for it — at least a zero record every minute while it runs — so an hour
//! without a record means "not known" (the daemon was down), never "nothing happened".
//! Nothing here talks to a disk.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

/// How long the hourly figures are kept: eight days, one more than the chart shows by default.
pub const KEEP_HOURLY: Duration = Duration::from_secs(8 * 86_400);

/// The start of the UTC hour that `t` falls in.
pub fn hour_start(t: OffsetDateTime) -> OffsetDateTime {
    let secs = t.unix_timestamp();
    let start = secs - secs.rem_euclid(3_600);
    // Every hour start of a representable time is representable itself.
    OffsetDateTime::from_unix_timestamp(start).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The figures of one UTC hour, or what to add to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyCounts {
    /// The start of the hour (UTC, whole hours: see [`hour_start`]).
    pub hour: OffsetDateTime,
    /// Listings made in it (by the policy or by hand).
    pub listings: u64,
    /// Rejection events in it, by class name (`EventClass::as_str`); absent classes had none.
    pub events_by_class: BTreeMap<String, u64>,
    /// Connections the stall listener accepted and held in it.
    pub stall_connections: u64,
    /// Seconds the stall listener held connections in it: spammer time wasted.
    pub stall_seconds: u64,
}

impl HourlyCounts {
    /// All zero, for the hour `t` falls in: committing it marks the hour as covered.
    pub fn zero(t: OffsetDateTime) -> Self {
        HourlyCounts {
            hour: hour_start(t),
            listings: 0,
            events_by_class: BTreeMap::new(),
            stall_connections: 0,
            stall_seconds: 0,
        }
    }

    /// Rejection events of every class.
    pub fn events(&self) -> u64 {
        self.events_by_class
            .values()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Adds `other`'s figures to these (whatever hour `other` is for).
    pub fn add(&mut self, other: &HourlyCounts) {
        self.listings = self.listings.saturating_add(other.listings);
        for (class, n) in &other.events_by_class {
            let sum = self.events_by_class.entry(class.clone()).or_default();
            *sum = sum.saturating_add(*n);
        }
        self.stall_connections = self
            .stall_connections
            .saturating_add(other.stall_connections);
        self.stall_seconds = self.stall_seconds.saturating_add(other.stall_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn hour_start_truncates_to_the_utc_hour() {
        assert_eq!(
            hour_start(datetime!(2026-12-04 10:59:59.9 UTC)),
            datetime!(2026-12-04 10:00 UTC)
        );
        assert_eq!(
            hour_start(datetime!(2026-12-04 10:00 UTC)),
            datetime!(2026-12-04 10:00 UTC)
        );
        // An offset of half an hour still lands on the UTC hour.
        assert_eq!(
            hour_start(datetime!(2026-12-04 10:15 +05:30)),
            datetime!(2026-12-04 04:00 UTC)
        );
    }

    #[test]
    fn adding_sums_every_figure_and_class() {
        let mut a = HourlyCounts::zero(datetime!(2026-12-04 10:20 UTC));
        a.events_by_class.insert("relay-denied".into(), 2);
        let mut b = HourlyCounts::zero(datetime!(2026-12-04 10:40 UTC));
        b.listings = 1;
        b.events_by_class.insert("relay-denied".into(), 3);
        b.events_by_class.insert("rbl-listed".into(), 1);
        b.stall_connections = 4;
        b.stall_seconds = 50;
        a.add(&b);
        assert_eq!(a.events(), 6);
        assert_eq!(a.events_by_class["relay-denied"], 5);
        assert_eq!(
            (a.listings, a.stall_connections, a.stall_seconds),
            (1, 4, 50)
        );
    }
}
