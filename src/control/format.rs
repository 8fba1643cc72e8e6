//! Human output of `tarpitctl`: tables and key/value blocks for each reply.
//!
//! Owns only presentation; `--json` output is the protocol's types printed as they are, so
//! nothing here is an interface scripts may rely on.

use std::io::{self, Write};

use time::macros::format_description;
use time::OffsetDateTime;

use super::protocol::{
    Added, DurationBucket, HostReport, Listing, ListingSource, Removed, SourcePosition, Stats,
    Status,
};

/// `2026-12-04 10:00Z`: minutes are enough to read a listing by.
pub fn when(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

/// A coarse duration: the two largest units (`3d 4h`, `11h 59m`, `5m 3s`, `40s`).
pub fn coarse(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut left = secs;
    for (size, name) in UNITS {
        if left >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", left / size));
            left %= size;
        } else if !parts.is_empty() {
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

fn source_name(s: ListingSource) -> &'static str {
    match s {
        ListingSource::Policy => "policy",
        ListingSource::Manual => "manual",
    }
}

/// Writes rows as left-aligned columns separated by two spaces; the last column is not padded.
fn table(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(c).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<pad$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `tarpitctl list`.
pub fn listings(out: &mut dyn Write, listings: &[Listing]) -> io::Result<()> {
    if listings.is_empty() {
        return writeln!(out, "nobody is listed");
    }
    let mut rows = vec![[
        "ADDRESS",
        "SINCE",
        "UNTIL",
        "REMAINING",
        "OFFENCE",
        "SOURCE",
        "ENFORCED",
        "REASON",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect::<Vec<_>>()];
    for l in listings {
        rows.push(vec![
            l.address.to_string(),
            when(l.since),
            when(l.until),
            if l.remaining_secs == 0 {
                "expired".to_owned()
            } else {
                coarse(l.remaining_secs)
            },
            l.offences.to_string(),
            source_name(l.source).to_owned(),
            if l.enforced { "yes" } else { "no" }.to_owned(),
            l.reason.clone(),
        ]);
    }
    table(out, &rows)
}

fn listing_block(out: &mut dyn Write, l: &Listing) -> io::Result<()> {
    writeln!(out, "listed:     {}", l.address)?;
    writeln!(out, "since:      {}", when(l.since))?;
    writeln!(
        out,
        "until:      {} ({})",
        when(l.until),
        if l.remaining_secs == 0 {
            "expired".to_owned()
        } else {
            format!("{} left", coarse(l.remaining_secs))
        }
    )?;
    writeln!(out, "offence:    {}", l.offences)?;
    writeln!(out, "source:     {}", source_name(l.source))?;
    writeln!(out, "enforced:   {}", if l.enforced { "yes" } else { "no" })?;
    writeln!(out, "reason:     {}", l.reason)?;
    if l.evidence.is_empty() {
        writeln!(out, "evidence:   (none)")?;
    } else {
        writeln!(out, "evidence:")?;
        for line in &l.evidence {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

/// `tarpitctl show`.
pub fn host(out: &mut dyn Write, r: &HostReport) -> io::Result<()> {
    writeln!(out, "address:    {}", r.address)?;
    match &r.listing {
        Some(l) => listing_block(out, l)?,
        None => writeln!(out, "listed:     no")?,
    }
    match (&r.allowlist.allowed, &r.allowlist.reason) {
        (true, Some(why)) => writeln!(out, "allowlist:  yes ({why})")?,
        (true, None) => writeln!(out, "allowlist:  yes")?,
        (false, Some(why)) => writeln!(out, "allowlist:  no ({why})")?,
        (false, None) => writeln!(out, "allowlist:  no")?,
    }
    if r.history.is_empty() {
        return writeln!(out, "history:    no offences");
    }
    writeln!(out, "history:")?;
    let rows: Vec<Vec<String>> = r
        .history
        .iter()
        .map(|o| {
            vec![
                format!("  {}", when(o.at)),
                coarse(o.duration_secs),
                source_name(o.source).to_owned(),
                o.reason.clone(),
            ]
        })
        .collect();
    table(out, &rows)
}

/// `tarpitctl add`.
pub fn added(out: &mut dyn Write, a: &Added) -> io::Result<()> {
    let l = &a.listing;
    writeln!(
        out,
        "{} {} until {} ({}){}",
        if a.replaced { "relisted" } else { "listed" },
        l.address,
        when(l.until),
        coarse(l.remaining_secs),
        if a.forced {
            ", allowlist overridden with --force"
        } else {
            ""
        }
    )
}

/// `tarpitctl del`.
pub fn removed(out: &mut dyn Write, r: &Removed) -> io::Result<()> {
    for a in &r.removed {
        writeln!(out, "unlisted {a}")?;
    }
    if r.forgotten {
        writeln!(out, "offence history forgotten")?;
    }
    Ok(())
}

fn bucket_label(b: &DurationBucket, prev: Option<u64>) -> String {
    match (prev, b.up_to_secs) {
        (None, Some(u)) => format!("up to {}", coarse(u)),
        (Some(p), Some(u)) => format!("{} to {}", coarse(p), coarse(u)),
        (Some(p), None) => format!("over {}", coarse(p)),
        (None, None) => "any".to_owned(),
    }
}

/// `tarpitctl stats`.
pub fn stats(out: &mut dyn Write, s: &Stats) -> io::Result<()> {
    writeln!(out, "listings by class:")?;
    if s.listings_by_class.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<Vec<String>> = s
        .listings_by_class
        .iter()
        .map(|(k, v)| vec![format!("  {k}"), v.to_string()])
        .collect();
    table(out, &rows)?;
    writeln!(out, "listings by duration:")?;
    let mut prev = None;
    let mut rows = Vec::new();
    for b in &s.listings_by_duration {
        rows.push(vec![
            format!("  {}", bucket_label(b, prev)),
            b.count.to_string(),
        ]);
        prev = b.up_to_secs;
    }
    table(out, &rows)?;
    writeln!(out, "events by class:")?;
    if s.events_by_class.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<Vec<String>> = s
        .events_by_class
        .iter()
        .map(|(k, v)| vec![format!("  {k}"), v.to_string()])
        .collect();
    table(out, &rows)?;
    writeln!(out, "diverted packets:     {}", s.diverted_packets)?;
    writeln!(out, "stall held now:       {}", s.stall.held_now)?;
    writeln!(out, "stall held in total:  {}", s.stall.total)?;
    writeln!(
        out,
        "spammer time wasted:  {} ({}s)",
        coarse(s.stall.seconds_wasted),
        s.stall.seconds_wasted
    )
}

/// `tarpitctl status`.
pub fn status(out: &mut dyn Write, s: &Status) -> io::Result<()> {
    writeln!(
        out,
        "daemon:     up (tarpitd {}, pid {}, since {})",
        s.version,
        s.pid,
        when(s.started)
    )?;
    writeln!(out, "mode:       {}", s.mode)?;
    writeln!(out, "config:     {}", s.config)?;
    writeln!(
        out,
        "table:      {} ({})",
        s.table,
        if s.table_present {
            "present"
        } else {
            "MISSING"
        }
    )?;
    writeln!(
        out,
        "listed:     {} (in the kernel: {}), tracked: {}, held: {}",
        s.counts.listed, s.counts.enforced, s.counts.tracked, s.counts.held
    )?;
    writeln!(out, "sources:")?;
    if s.sources.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let rows: Vec<Vec<String>> = s
        .sources
        .iter()
        .map(|src| {
            vec![
                format!("  {}", src.name),
                match &src.position {
                    Some(SourcePosition::File { offset, inode }) => {
                        format!("offset {offset} (inode {inode})")
                    }
                    Some(SourcePosition::Journal { cursor }) => format!("cursor {cursor}"),
                    None => "not read yet".to_owned(),
                },
                format!("{} lines, {} events", src.lines, src.events),
                src.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(out, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_durations_keep_the_two_largest_units() {
        assert_eq!(coarse(0), "0s");
        assert_eq!(coarse(40), "40s");
        assert_eq!(coarse(303), "5m 3s");
        assert_eq!(coarse(43_140), "11h 59m");
        assert_eq!(coarse(3 * 86_400 + 4 * 3_600 + 5), "3d 4h");
        assert_eq!(coarse(86_400), "1d");
        assert_eq!(coarse(86_400 + 30), "1d");
    }

    #[test]
    fn table_columns_line_up() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["A".to_owned(), "B".to_owned()],
            vec!["long".to_owned(), "x".to_owned()],
        ];
        table(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A     B\nlong  x\n");
    }
}
