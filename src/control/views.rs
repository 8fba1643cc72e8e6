//! The state store's records as the control protocol shows them: one conversion, used by the
//! daemon's answers and by `tarpitctl`'s read-only fallback alike.

use time::OffsetDateTime;

use crate::control::address::Address;
use crate::control::protocol::{
    History, HistoryDays, HourFigures, Listing, ListingSource, Offence,
};
use crate::state::hourly::{hour_start, HourlyCounts};
use crate::state::model::{self, Origin};

/// A stored listing as seen at `now` (`enforced` only while it runs and was put into the set).
pub fn listing(l: &model::Listing, now: OffsetDateTime) -> Listing {
    let left = (l.until - now).whole_seconds().max(0).unsigned_abs();
    let running = l.ended.is_none() && left > 0;
    Listing {
        address: Address::from(l.net),
        since: l.since,
        until: l.until,
        remaining_secs: if running { left } else { 0 },
        offences: l.offence,
        reason: l.reason.clone(),
        evidence: l.evidence.lines().to_vec(),
        enforced: l.enforced && running,
        source: source(&l.origin),
    }
}

/// Who listed it.
pub fn source(origin: &Origin) -> ListingSource {
    match origin {
        Origin::Policy => ListingSource::Policy,
        Origin::Manual { .. } => ListingSource::Manual,
    }
}

/// A host's listings as its offence history, oldest first.
pub fn history(listings: &[model::Listing]) -> Vec<Offence> {
    let mut h: Vec<Offence> = listings
        .iter()
        .map(|l| Offence {
            at: l.since,
            duration_secs: (l.until - l.since).whole_seconds().max(0).unsigned_abs(),
            reason: l.reason.clone(),
            source: source(&l.origin),
        })
        .collect();
    h.sort_by_key(|o| o.at);
    h
}

/// The first hour `history` covers for `days` at `now`: midnight UTC, `days - 1` days before
/// the day `now` falls in.
pub fn history_from(days: HistoryDays, now: OffsetDateTime) -> OffsetDateTime {
    let midnight = now
        .to_offset(time::UtcOffset::UTC)
        .replace_time(time::Time::MIDNIGHT);
    midnight - time::Duration::days(i64::from(days.get()) - 1)
}

/// The stored hourly figures as the reply to `history`: the hours from `from` up to the one
/// `now` falls in, oldest first.
pub fn hourly_history(
    hours: &[HourlyCounts],
    from: OffsetDateTime,
    now: OffsetDateTime,
) -> History {
    let last = hour_start(now);
    History {
        from,
        now,
        hours: hours
            .iter()
            .filter(|h| h.hour >= from && h.hour <= last)
            .map(|h| HourFigures {
                start: h.hour,
                listings: h.listings,
                events: h.events(),
                events_by_class: h.events_by_class.clone(),
                held_connections: h.stall_connections,
                held_seconds: h.stall_seconds,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn history_starts_at_midnight_utc_of_the_first_day() {
        let now = datetime!(2026-12-04 18:30 +02:00);
        let days = |n: u8| HistoryDays::try_from(n).unwrap();
        assert_eq!(history_from(days(1), now), datetime!(2026-12-04 00:00 UTC));
        assert_eq!(history_from(days(7), now), datetime!(2026-11-28 00:00 UTC));
    }

    #[test]
    fn hourly_history_keeps_the_window_and_totals_the_events() {
        let now = datetime!(2026-12-04 10:30 UTC);
        let mut inside = HourlyCounts::zero(datetime!(2026-12-04 10:00 UTC));
        inside.events_by_class.insert("relay-denied".into(), 2);
        inside.events_by_class.insert("rbl-listed".into(), 3);
        inside.stall_seconds = 9;
        let before = HourlyCounts::zero(datetime!(2026-12-03 23:00 UTC));
        let ahead = HourlyCounts::zero(datetime!(2026-12-04 11:00 UTC));
        let h = hourly_history(
            &[before, inside, ahead],
            datetime!(2026-12-04 00:00 UTC),
            now,
        );
        assert_eq!(h.hours.len(), 1);
        assert_eq!(h.hours[0].events, 5);
        assert_eq!(h.hours[0].held_seconds, 9);
        assert_eq!(h.now, now);
    }
}
