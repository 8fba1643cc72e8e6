//! Turns a [`Stamp`] as written in the log into an instant.
//!
//! Two things a log line does not say are supplied here: the time zone of stamps that carry no
//! offset (syslog and Exim write local time), and the year of RFC 3164 stamps. The year is the
//! reference time's year, or the one before when that would put the line more than a day after
//! the reference: a December line read in January is from last year, however the file spans the
//! turn of the year. The reference is "now" for a live log and the file's modification time for a
//! replayed one, so an old log replays with its own years.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use time::{OffsetDateTime, UtcOffset};

use super::header::Stamp;

/// Resolves log stamps in one time zone against one reference instant (a fixed one for a
/// replayed file, or the moving "now" for a followed log).
#[derive(Debug)]
pub struct Clock {
    tz: TimeZone,
    reference: Timestamp,
    reference_year: i16,
    /// The reference is the current time at each resolution (a daemon runs for months: a
    /// reference fixed at its start would put January's lines in the wrong year).
    live: bool,
    /// The UTC offset of the last local hour resolved, packed as `hour key << 20 | offset + 2^19`
    /// (0 = empty): consecutive lines are nearly always in the same hour, and the zone lookup is
    /// the dearest part of resolving a stamp. Only hours without a zone transition are kept.
    last_hour: AtomicU64,
}

impl Clone for Clock {
    fn clone(&self) -> Self {
        Clock {
            live: self.live,
            ..Clock::new(self.tz.clone(), self.reference)
        }
    }
}

const OFFSET_BIAS: i64 = 1 << 19;

impl Clock {
    /// A clock for stamps written in `tz`, read at `reference`.
    pub fn new(tz: TimeZone, reference: Timestamp) -> Self {
        let reference_year = reference.to_zoned_datetime(tz.clone()).year();
        Clock {
            tz,
            reference,
            reference_year,
            live: false,
            last_hour: AtomicU64::new(0),
        }
    }

    /// The system's time zone (honouring `TZ`), read now.
    pub fn system_now() -> Self {
        Clock::new(TimeZone::system(), Timestamp::now())
    }

    /// The system's time zone, with the current time as the reference at every line: for logs
    /// followed as they are written.
    pub fn live() -> Self {
        Clock {
            live: true,
            ..Clock::system_now()
        }
    }

    /// The reference instant and its year.
    fn reference_now(&self) -> (Timestamp, i16) {
        if self.live {
            let now = Timestamp::now();
            (now, now.to_zoned_datetime(self.tz.clone()).year())
        } else {
            (self.reference, self.reference_year)
        }
    }

    /// The reference instant: used as the time of lines that carry none.
    pub fn reference(&self) -> OffsetDateTime {
        let (reference, _) = self.reference_now();
        let offset = self.tz.to_offset(reference).seconds();
        to_offset_datetime(reference, offset).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The instant `stamp` names, or `None` when it names no real date (e.g. 31 February).
    pub fn resolve(&self, stamp: &Stamp) -> Option<OffsetDateTime> {
        match stamp.year {
            Some(year) => self.resolve_in_year(stamp, year),
            None => {
                let (reference, year) = self.reference_now();
                let this_year = self.resolve_in_year(stamp, year);
                let limit = reference.checked_add(SignedDuration::from_hours(24)).ok()?;
                match this_year {
                    Some(t) if t.unix_timestamp() <= limit.as_second() => Some(t),
                    // Later than the reference (or 29 February of a common year): last year.
                    _ => self.resolve_in_year(stamp, year - 1),
                }
            }
        }
    }

    fn resolve_in_year(&self, stamp: &Stamp, year: i16) -> Option<OffsetDateTime> {
        let civil = DateTime::new(
            year,
            stamp.month,
            stamp.day,
            stamp.hour,
            stamp.minute,
            stamp.second.min(59),
            stamp.nanos,
        )
        .ok()?;
        match stamp.offset {
            Some(seconds) => {
                let offset = jiff::tz::Offset::from_seconds(seconds).ok()?;
                let ts = offset.to_timestamp(civil).ok()?;
                to_offset_datetime(ts, seconds)
            }
            None => {
                let (ts, offset) = self.local(civil)?;
                to_offset_datetime(ts, offset)
            }
        }
    }
}

impl Clock {
    /// The instant and offset of local time `civil` (an ambiguous or skipped time is resolved
    /// as `compatible` disambiguation does).
    fn local(&self, civil: DateTime) -> Option<(Timestamp, i32)> {
        let key = (i64::from(civil.year()) * 10_000
            + i64::from(civil.month()) * 100
            + i64::from(civil.day()))
            * 24
            + i64::from(civil.hour());
        let cached = self.last_hour.load(Ordering::Relaxed);
        if cached != 0 && (cached >> 20) as i64 == key {
            let offset = ((cached & ((1 << 20) - 1)) as i64 - OFFSET_BIAS) as i32;
            let ts = jiff::tz::Offset::from_seconds(offset)
                .ok()?
                .to_timestamp(civil)
                .ok()?;
            return Some((ts, offset));
        }
        let zoned = self
            .tz
            .to_ambiguous_zoned_datetime(civil)
            .compatible()
            .ok()?;
        let offset = zoned.offset().seconds();
        // Cache the hour only when all of it exists once, at this one offset.
        let exact = |c: DateTime| -> bool {
            self.tz
                .to_ambiguous_zoned_datetime(c)
                .unambiguous()
                .is_ok_and(|z| z.offset().seconds() == offset)
        };
        let start = civil
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?;
        let end = civil.with().minute(59).second(59).build().ok()?;
        if key > 0 && exact(start) && exact(end) {
            let packed = ((key as u64) << 20) | (i64::from(offset) + OFFSET_BIAS) as u64;
            self.last_hour.store(packed, Ordering::Relaxed);
        }
        Some((zoned.timestamp(), offset))
    }
}

fn to_offset_datetime(ts: Timestamp, offset_seconds: i32) -> Option<OffsetDateTime> {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(ts.as_nanosecond()).ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_seconds).ok()?;
    Some(utc.to_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    fn clock(tz: &str, reference: &str) -> Clock {
        let tz = TimeZone::get(tz).unwrap();
        Clock::new(tz, reference.parse().unwrap())
    }

    fn bsd(month: i8, day: i8) -> Stamp {
        Stamp {
            year: None,
            month,
            day,
            hour: 10,
            minute: 0,
            second: 0,
            nanos: 0,
            offset: None,
        }
    }

    fn text(t: OffsetDateTime) -> String {
        t.format(&Rfc3339).unwrap()
    }

    #[test]
    fn yearless_stamp_takes_the_reference_year() {
        let c = clock("UTC", "2026-12-04T12:00:00Z");
        assert_eq!(
            text(c.resolve(&bsd(12, 4)).unwrap()),
            "2026-12-04T10:00:00Z"
        );
    }

    #[test]
    fn december_read_in_january_is_last_year() {
        let c = clock("UTC", "2027-01-02T12:00:00Z");
        assert_eq!(
            text(c.resolve(&bsd(12, 31)).unwrap()),
            "2026-12-31T10:00:00Z"
        );
        assert_eq!(text(c.resolve(&bsd(1, 1)).unwrap()), "2027-01-01T10:00:00Z");
    }

    #[test]
    fn a_day_of_clock_skew_stays_in_the_reference_year() {
        let c = clock("UTC", "2026-12-04T12:00:00Z");
        assert_eq!(
            text(c.resolve(&bsd(12, 5)).unwrap()),
            "2026-12-05T10:00:00Z"
        );
        assert_eq!(
            text(c.resolve(&bsd(12, 6)).unwrap()),
            "2025-12-06T10:00:00Z"
        );
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        let c = clock("Europe/Zurich", "2026-12-04T12:00:00Z");
        assert_eq!(
            text(c.resolve(&bsd(7, 1)).unwrap()),
            "2026-07-01T10:00:00+02:00"
        );
        assert_eq!(
            text(c.resolve(&bsd(12, 1)).unwrap()),
            "2026-12-01T10:00:00+01:00"
        );
    }

    #[test]
    fn written_offset_wins_over_the_zone() {
        let c = clock("Europe/Zurich", "2026-12-04T12:00:00Z");
        let s = Stamp {
            year: Some(2026),
            offset: Some(-5 * 3600),
            ..bsd(12, 4)
        };
        assert_eq!(text(c.resolve(&s).unwrap()), "2026-12-04T10:00:00-05:00");
    }

    #[test]
    fn the_hour_cache_does_not_cross_a_transition() {
        let c = clock("Europe/Zurich", "2026-12-04T12:00:00Z");
        let at = |h, m| Stamp {
            hour: h,
            minute: m,
            ..bsd(3, 29)
        };
        // 29 March 2026: 02:00 local does not exist; 01:59 is +01:00 and 03:00 is +02:00.
        assert_eq!(
            text(c.resolve(&at(1, 30)).unwrap()),
            "2026-03-29T01:30:00+01:00"
        );
        assert_eq!(
            text(c.resolve(&at(1, 59)).unwrap()),
            "2026-03-29T01:59:00+01:00"
        );
        assert_eq!(
            text(c.resolve(&at(3, 0)).unwrap()),
            "2026-03-29T03:00:00+02:00"
        );
        // A time in the skipped hour is read as the same wall-clock time an hour on.
        assert_eq!(
            text(c.resolve(&at(2, 30)).unwrap()),
            "2026-03-29T03:30:00+02:00"
        );
        assert_eq!(
            text(c.resolve(&at(2, 45)).unwrap()),
            "2026-03-29T03:45:00+02:00"
        );
        // 25 October 2026: 02:00-03:00 happens twice; the first (summer) offset is taken.
        let back = |h, m| Stamp {
            hour: h,
            minute: m,
            ..bsd(10, 25)
        };
        assert_eq!(
            text(c.resolve(&back(2, 30)).unwrap()),
            "2026-10-25T02:30:00+02:00"
        );
        assert_eq!(
            text(c.resolve(&back(3, 30)).unwrap()),
            "2026-10-25T03:30:00+01:00"
        );
        assert_eq!(
            text(c.resolve(&back(3, 10)).unwrap()),
            "2026-10-25T03:10:00+01:00"
        );
    }

    #[test]
    fn a_live_clock_takes_its_reference_at_each_line() {
        let c = Clock::live();
        let now = OffsetDateTime::now_utc().to_offset(c.reference().offset());
        let stamp = Stamp {
            year: None,
            month: u8::from(now.month()) as i8,
            day: now.day() as i8,
            hour: now.hour() as i8,
            minute: now.minute() as i8,
            second: now.second() as i8,
            nanos: 0,
            offset: None,
        };
        let t = c.resolve(&stamp).unwrap();
        assert_eq!(t.year(), now.year());
        assert!((t - now).whole_seconds().abs() <= 2);
    }

    #[test]
    fn impossible_dates_resolve_to_nothing() {
        let c = clock("UTC", "2026-12-04T12:00:00Z");
        assert!(c.resolve(&bsd(2, 31)).is_none());
    }
}
