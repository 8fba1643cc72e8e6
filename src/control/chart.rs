//! The chart of `tarpitctl stats --history`: rejection events, new listings and held
//! connections per UTC hour, one row of sparkline cells per day so that the attack waves (and
//! the hour of day they come at) can be seen at a glance.
//!
//! One cell is one hour, never an aggregate: 24 cells a row fit any terminal. Each series has
//! one linear scale for all its days, from 0 to its busiest hour, which is printed with it. An
//! hour with no figures (the daemon was not running) is drawn `·`, an hour of zero is blank: the
//! two never look alike. `--ascii` (or a locale that is not UTF-8) draws with ASCII only. Owns
//! only presentation; the figures come as the protocol's [`History`].

use std::collections::BTreeMap;
use std::io::{self, Write};

use time::macros::format_description;
use time::{Duration, OffsetDateTime};

use super::format::coarse;
use super::protocol::{History, HourFigures};

/// The glyphs a chart is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyphs {
    /// From the smallest non-zero level to the series' maximum.
    levels: [char; 8],
    /// An hour of zero.
    zero: char,
    /// An hour with no figures.
    missing: char,
}

impl Glyphs {
    /// Unicode block elements (`▁▂▃▄▅▆▇█`), `·` for no figures.
    pub const UNICODE: Glyphs = Glyphs {
        levels: ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'],
        zero: ' ',
        missing: '·',
    };
    /// ASCII only (`.:-=+*#@`), `?` for no figures.
    pub const ASCII: Glyphs = Glyphs {
        levels: ['.', ':', '-', '=', '+', '*', '#', '@'],
        zero: ' ',
        missing: '?',
    };

    /// The glyphs for a terminal: ASCII when asked for or when the locale is not UTF-8.
    /// `var` reads an environment variable (`std::env::var`).
    pub fn for_terminal(ascii: bool, var: impl Fn(&str) -> Option<String>) -> Glyphs {
        if ascii || !locale_is_utf8(var) {
            Glyphs::ASCII
        } else {
            Glyphs::UNICODE
        }
    }

    /// The cell of `value` on a scale from 0 to `max`: the smallest non-zero value still gets
    /// the lowest level, and only the maximum gets the top one when `max` is at least 8.
    fn cell(&self, value: Option<u64>, max: u64) -> char {
        match value {
            None => self.missing,
            Some(0) => self.zero,
            Some(v) => {
                let max = max.max(v);
                let level = (u128::from(v) * 8).div_ceil(u128::from(max)).clamp(1, 8);
                self.levels[level as usize - 1]
            }
        }
    }
}

/// True when the locale's character set is UTF-8: the first of `LC_ALL`, `LC_CTYPE`, `LANG`
/// that is set and not empty decides, as for the C library.
pub fn locale_is_utf8(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// One series of the chart.
struct Series {
    title: &'static str,
    value: fn(&HourFigures) -> u64,
}

const SERIES: [Series; 3] = [
    Series {
        title: "rejection events",
        value: |h| h.events,
    },
    Series {
        title: "new listings",
        value: |h| h.listings,
    },
    Series {
        title: "connections held",
        value: |h| h.held_connections,
    },
];

/// Where the cells start: after `"  Fri 12-04  "`.
const LABEL_WIDTH: usize = 13;

/// Writes the chart of `history`.
pub fn history(out: &mut dyn Write, history: &History, glyphs: Glyphs) -> io::Result<()> {
    let by_hour: BTreeMap<OffsetDateTime, &HourFigures> =
        history.hours.iter().map(|h| (h.start, h)).collect();
    let days = days(history);
    let last_hour = crate::state::hourly::hour_start(history.now);
    writeln!(
        out,
        "per UTC hour, {} to {}: one cell an hour, linear from 0 to the busiest hour;",
        date(history.from),
        date(history.now),
    )?;
    writeln!(
        out,
        "blank: none, {}: no figures (tarpitd was not running)",
        glyphs.missing
    )?;
    for series in &SERIES {
        let values: Vec<u64> = by_hour.values().map(|h| (series.value)(h)).collect();
        let max = values.iter().copied().max().unwrap_or(0);
        let total = values.iter().fold(0u64, |sum, v| sum.saturating_add(*v));
        writeln!(out)?;
        if max == 0 {
            writeln!(out, "{}: none", series.title)?;
        } else {
            writeln!(
                out,
                "{}: {total} in all, at most {max} in an hour ({} = {max})",
                series.title, glyphs.levels[7]
            )?;
        }
        writeln!(out, "{:LABEL_WIDTH$}00    06    12    18", "")?;
        for start in &days {
            let mut row = format!("  {}  ", day_label(*start));
            for hour in 0..24 {
                let at = *start + Duration::hours(hour);
                if at > last_hour {
                    break;
                }
                let value = by_hour.get(&at).map(|h| (series.value)(h));
                row.push(glyphs.cell(value, max));
            }
            writeln!(out, "{}", row.trim_end())?;
        }
    }
    let seconds = history
        .hours
        .iter()
        .fold(0u64, |sum, h| sum.saturating_add(h.held_seconds));
    writeln!(out)?;
    if seconds < 60 {
        writeln!(out, "spammer time held: {seconds} s in all")
    } else {
        writeln!(
            out,
            "spammer time held: {} ({seconds} s) in all",
            coarse(seconds)
        )
    }
}

/// The start (midnight UTC) of every day the chart shows, from `history.from` to the day of
/// `history.now`.
fn days(history: &History) -> Vec<OffsetDateTime> {
    let mut out = Vec::new();
    let mut day = history
        .from
        .to_offset(time::UtcOffset::UTC)
        .replace_time(time::Time::MIDNIGHT);
    while day <= history.now && out.len() < 32 {
        out.push(day);
        day += Duration::days(1);
    }
    out
}

/// `2026-12-04`.
fn date(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| utc.to_string())
}

/// `Fri 12-04`: the weekday shows the weekly rhythm, the date which week.
fn day_label(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!("[weekday repr:short] [month]-[day]"))
        .unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn hour(start: OffsetDateTime, events: u64, listings: u64, held: u64) -> HourFigures {
        HourFigures {
            start,
            listings,
            events,
            events_by_class: BTreeMap::new(),
            held_connections: held,
            held_seconds: held * 60,
        }
    }

    fn render(h: &History, glyphs: Glyphs) -> String {
        let mut out = Vec::new();
        history(&mut out, h, glyphs).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cells_scale_linearly_to_the_maximum_and_keep_zero_and_missing_apart() {
        let g = Glyphs::UNICODE;
        let cells: String = [None, Some(0), Some(1), Some(50), Some(99), Some(100)]
            .iter()
            .map(|v| g.cell(*v, 100))
            .collect();
        assert_eq!(cells, "· ▁▄██");
        // 99 of 100 is the top level too: ceil(8 × 99 / 100) = 8.
        assert_eq!(g.cell(Some(87), 100), '▇');
        // A small maximum: 1 of 3 is a third of the height.
        assert_eq!(g.cell(Some(1), 3), '▃');
        assert_eq!(Glyphs::ASCII.cell(Some(100), 100), '@');
        assert_eq!(Glyphs::ASCII.cell(None, 100), '?');
    }

    #[test]
    fn a_small_history_draws_exactly_these_lines() {
        // Two days; now is 05:30 on the second, so its row stops at 05:00.
        let d1 = datetime!(2026-12-03 00:00 UTC);
        let d2 = datetime!(2026-12-04 00:00 UTC);
        let h = History {
            from: d1,
            now: datetime!(2026-12-04 05:30 UTC),
            hours: vec![
                hour(d1 + Duration::hours(20), 0, 0, 0),
                hour(d1 + Duration::hours(21), 4, 0, 1),
                hour(d1 + Duration::hours(22), 8, 1, 0),
                hour(d1 + Duration::hours(23), 2, 0, 0),
                hour(d2, 0, 0, 0),
                hour(d2 + Duration::hours(1), 1, 0, 0),
                // 02:00 and 03:00 missing: the daemon was down.
                hour(d2 + Duration::hours(4), 0, 0, 0),
                hour(d2 + Duration::hours(5), 8, 1, 2),
            ],
        };
        let expected = "\
per UTC hour, 2026-12-03 to 2026-12-04: one cell an hour, linear from 0 to the busiest hour;
blank: none, ·: no figures (tarpitd was not running)

rejection events: 23 in all, at most 8 in an hour (█ = 8)
             00    06    12    18
  Thu 12-03  ···················· ▄█▂
  Fri 12-04   ▁·· █

new listings: 2 in all, at most 1 in an hour (█ = 1)
             00    06    12    18
  Thu 12-03  ····················  █
  Fri 12-04    ·· █

connections held: 3 in all, at most 2 in an hour (█ = 2)
             00    06    12    18
  Thu 12-03  ···················· ▄
  Fri 12-04    ·· █

spammer time held: 3m (180 s) in all
";
        // Rows are trimmed at the end, so the blank (zero) cells after the last
        // non-blank one do not show; the ones between do.
        let got = render(&h, Glyphs::UNICODE);
        assert_eq!(got, expected, "got:\n{got}");
    }

    #[test]
    fn nothing_recorded_draws_only_missing_cells_and_says_none() {
        let h = History {
            from: datetime!(2026-12-04 00:00 UTC),
            now: datetime!(2026-12-04 02:10 UTC),
            hours: vec![],
        };
        let got = render(&h, Glyphs::ASCII);
        assert!(got.contains("rejection events: none\n"), "{got}");
        assert!(got.contains("  Fri 12-04  ???\n"), "{got}");
        assert!(got.is_ascii());
    }

    #[test]
    fn the_locale_decides_unicode_or_ascii() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(locale_is_utf8(env(&[("LANG", "en_GB.UTF-8")])));
        assert!(locale_is_utf8(env(&[("LC_ALL", "C.utf8"), ("LANG", "C")])));
        assert!(!locale_is_utf8(env(&[
            ("LC_ALL", "C"),
            ("LANG", "en_GB.UTF-8")
        ])));
        assert!(locale_is_utf8(env(&[
            ("LC_ALL", ""),
            ("LANG", "de_CH.UTF-8")
        ])));
        assert!(!locale_is_utf8(env(&[])));
        assert_eq!(
            Glyphs::for_terminal(true, env(&[("LANG", "en_GB.UTF-8")])),
            Glyphs::ASCII
        );
        assert_eq!(
            Glyphs::for_terminal(false, env(&[("LANG", "en_GB.UTF-8")])),
            Glyphs::UNICODE
        );
    }
}
