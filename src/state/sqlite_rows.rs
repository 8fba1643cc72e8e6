//! How the state's records map to SQLite rows: the statements that write a batch's changes and
//! positions inside the caller's transaction, and the decoding of rows back into records.
//!
//! Times are unix microseconds; addresses are big-endian byte blobs so that one family's blobs
//! compare like the addresses. This file never opens, commits or rolls back: the transaction
//! belongs to [`super::sqlite::SqliteStore`].

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::{params, Row, Transaction};
use time::OffsetDateTime;

use super::hourly::{hour_start, HourlyCounts};
use super::model::{
    EndCause, Ended, Evidence, FilePosition, Fingerprint, HistoryOnUnlist, Listing, ListingId,
    NewListing, Offender, Origin, Position, SourceId, Unlisting,
};

/// The columns every listing query selects, in the order [`listing_from_row`] reads them.
pub(super) const LISTING_COLUMNS: &str =
    "id, net, since, until, offence, reason, evidence, enforced, \
                               origin, created_by, ended_at, end_cause, ended_by";

/// A failure in the SQLite store, before the location and operation are attached.
#[derive(Debug)]
pub(super) enum Fail {
    /// SQLite refused.
    Sql(rusqlite::Error),
    /// A stored value does not decode; says which and why.
    Corrupt(String),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

/// Records one listing: ends an active listing of the same net as superseded, inserts, and sets
/// the offender's history from it.
pub(super) fn insert_listing(
    tx: &Transaction<'_>,
    listing: &NewListing,
) -> Result<ListingId, Fail> {
    let net = listing.net.trunc();
    let net_text = net.to_string();
    let since = to_micros(listing.since);
    let until = to_micros(listing.until);
    tx.prepare_cached(
        "UPDATE listings SET ended_at = ?2, end_cause = 'superseded', ends = ?2
         WHERE net = ?1 AND since <= ?2 AND ends > ?2",
    )?
    .execute(params![net_text, since])?;
    let (family, lo) = addr_key(net.network());
    let (_, hi) = addr_key(net.broadcast());
    let evidence = serde_json::to_string(&listing.evidence)
        .map_err(|e| Fail::Corrupt(format!("evidence of {net} does not encode: {e}")))?;
    let (origin, created_by) = match &listing.origin {
        Origin::Policy => ("policy", None),
        Origin::Manual { by } => ("manual", Some(by.as_str())),
    };
    tx.prepare_cached(
        "INSERT INTO listings (net, family, lo, hi, prefix_len, since, until, ends, offence,
                               reason, evidence, enforced, origin, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        net_text,
        family,
        lo,
        hi,
        net.prefix_len(),
        since,
        until,
        listing.offence,
        listing.reason,
        evidence,
        listing.enforced,
        origin,
        created_by,
    ])?;
    let id = ListingId(tx.last_insert_rowid());
    tx.prepare_cached(
        "INSERT INTO offenders (net, offences, last_offence, last_listing_end)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (net) DO UPDATE SET offences = excluded.offences,
             last_offence = excluded.last_offence, last_listing_end = excluded.last_listing_end",
    )?
    .execute(params![net_text, listing.offence, since, until])?;
    Ok(id)
}

/// Ends the active listing of exactly the unlisting's net and keeps or forgets its history.
pub(super) fn end_listing(
    tx: &Transaction<'_>,
    unlisting: &Unlisting,
) -> Result<Option<Listing>, Fail> {
    let net_text = unlisting.net.trunc().to_string();
    let at = to_micros(unlisting.at);
    let found = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {LISTING_COLUMNS} FROM listings
             WHERE net = ?1 AND since <= ?2 AND ends > ?2 ORDER BY id DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query(params![net_text, at])?;
        match rows.next()? {
            Some(row) => Some(listing_from_row(row)?),
            None => None,
        }
    };
    let ended = match found {
        Some(mut listing) => {
            tx.prepare_cached(
                "UPDATE listings SET ended_at = ?2, end_cause = 'unlisted', ended_by = ?3, ends = ?2
                 WHERE id = ?1",
            )?
            .execute(params![listing.id.0, at, unlisting.by])?;
            listing.ended = Some(Ended {
                at: from_micros(at)?,
                cause: EndCause::Unlisted {
                    by: unlisting.by.clone(),
                },
            });
            Some(listing)
        }
        None => None,
    };
    match unlisting.history {
        HistoryOnUnlist::Forget => {
            tx.prepare_cached("DELETE FROM offenders WHERE net = ?1")?
                .execute([&net_text])?;
        }
        HistoryOnUnlist::Keep if ended.is_some() => {
            tx.prepare_cached(
                "UPDATE offenders SET last_listing_end = ?2 WHERE net = ?1 AND last_listing_end > ?2",
            )?
            .execute(params![net_text, at])?;
        }
        HistoryOnUnlist::Keep => {}
    }
    Ok(ended)
}

/// Adds one hour's figures to its records, creating them when missing (a zero delta creates the
/// hour's record and so marks it as covered).
pub(super) fn add_hourly(tx: &Transaction<'_>, counts: &HourlyCounts) -> Result<(), Fail> {
    let hour = to_micros(hour_start(counts.hour));
    tx.prepare_cached(
        "INSERT INTO hourly (hour, listings, stall_connections, stall_seconds)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (hour) DO UPDATE SET listings = listings + excluded.listings,
             stall_connections = stall_connections + excluded.stall_connections,
             stall_seconds = stall_seconds + excluded.stall_seconds",
    )?
    .execute(params![
        hour,
        count(counts.listings),
        count(counts.stall_connections),
        count(counts.stall_seconds)
    ])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO hourly_events (hour, class, events) VALUES (?1, ?2, ?3)
         ON CONFLICT (hour, class) DO UPDATE SET events = events + excluded.events",
    )?;
    for (class, n) in &counts.events_by_class {
        stmt.execute(params![hour, class, count(*n)])?;
    }
    Ok(())
}

/// A count as SQLite keeps it (signed 64-bit), capped rather than wrapped.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back, refusing a negative one.
pub(super) fn count_from(n: i64, what: &str) -> Result<u64, Fail> {
    u64::try_from(n).map_err(|_| Fail::Corrupt(format!("{what} is {n}")))
}

pub(super) fn save_position(
    tx: &Transaction<'_>,
    source: &SourceId,
    position: &Position,
) -> Result<(), Fail> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO positions (source, kind, dev, ino, offset, fingerprint, cursor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (source) DO UPDATE SET kind = excluded.kind, dev = excluded.dev,
             ino = excluded.ino, offset = excluded.offset, fingerprint = excluded.fingerprint,
             cursor = excluded.cursor",
    )?;
    match position {
        // SQLite integers are signed 64-bit; device, inode and offset are kept bit for bit.
        Position::File(file) => stmt.execute(params![
            source.0,
            "file",
            file.dev as i64,
            file.ino as i64,
            file.offset as i64,
            file.fingerprint.as_bytes(),
            Option::<String>::None,
        ])?,
        Position::Journal { cursor } => stmt.execute(params![
            source.0,
            "journal",
            Option::<i64>::None,
            Option::<i64>::None,
            Option::<i64>::None,
            Option::<Vec<u8>>::None,
            cursor,
        ])?,
    };
    Ok(())
}

pub(super) fn listing_from_row(row: &Row<'_>) -> Result<Listing, Fail> {
    let id: i64 = row.get(0)?;
    let net_text: String = row.get(1)?;
    let net: IpNet = net_text
        .parse()
        .map_err(|_| Fail::Corrupt(format!("listing {id} has net {net_text:?}")))?;
    let offence: i64 = row.get(4)?;
    let evidence_text: String = row.get(6)?;
    let evidence: Evidence = serde_json::from_str(&evidence_text).map_err(|e| {
        Fail::Corrupt(format!(
            "listing {id} has evidence that does not decode: {e}"
        ))
    })?;
    let origin_text: String = row.get(8)?;
    let created_by: Option<String> = row.get(9)?;
    let origin = match origin_text.as_str() {
        "policy" => Origin::Policy,
        "manual" => Origin::Manual {
            by: created_by.unwrap_or_default(),
        },
        other => return Err(Fail::Corrupt(format!("listing {id} has origin {other:?}"))),
    };
    let ended_at: Option<i64> = row.get(10)?;
    let cause: Option<String> = row.get(11)?;
    let ended_by: Option<String> = row.get(12)?;
    let ended = match (ended_at, cause.as_deref()) {
        (None, None) => None,
        (Some(at), Some("unlisted")) => Some(Ended {
            at: from_micros(at)?,
            cause: EndCause::Unlisted {
                by: ended_by.unwrap_or_default(),
            },
        }),
        (Some(at), Some("superseded")) => Some(Ended {
            at: from_micros(at)?,
            cause: EndCause::Superseded,
        }),
        (at, cause) => {
            return Err(Fail::Corrupt(format!(
                "listing {id} has end {at:?} with cause {cause:?}"
            )))
        }
    };
    Ok(Listing {
        id: ListingId(id),
        net,
        since: from_micros(row.get(2)?)?,
        until: from_micros(row.get(3)?)?,
        offence: u32::try_from(offence)
            .map_err(|_| Fail::Corrupt(format!("listing {id} has offence {offence}")))?,
        reason: row.get(5)?,
        evidence,
        enforced: row.get(7)?,
        origin,
        ended,
    })
}

pub(super) fn offender(net: IpNet, offences: i64, last: i64, end: i64) -> Result<Offender, Fail> {
    Ok(Offender {
        net,
        offences: u32::try_from(offences)
            .map_err(|_| Fail::Corrupt(format!("offence count {offences} of {net}")))?,
        last_offence: from_micros(last)?,
        last_listing_end: from_micros(end)?,
    })
}

pub(super) fn position_from_row(row: &Row<'_>) -> Result<(SourceId, Position), Fail> {
    let source: String = row.get(0)?;
    let kind: String = row.get(1)?;
    let position = match kind.as_str() {
        "file" => {
            let dev: Option<i64> = row.get(2)?;
            let ino: Option<i64> = row.get(3)?;
            let offset: Option<i64> = row.get(4)?;
            let fingerprint: Option<Vec<u8>> = row.get(5)?;
            match (dev, ino, offset, fingerprint) {
                (Some(dev), Some(ino), Some(offset), Some(fp)) => Position::File(FilePosition {
                    dev: dev as u64,
                    ino: ino as u64,
                    offset: offset as u64,
                    fingerprint: Fingerprint::new(fp)
                        .map_err(|e| Fail::Corrupt(format!("position of {source:?}: {e}")))?,
                }),
                _ => {
                    return Err(Fail::Corrupt(format!(
                        "file position of {source:?} lacks a field"
                    )))
                }
            }
        }
        "journal" => match row.get::<_, Option<String>>(6)? {
            Some(cursor) => Position::Journal { cursor },
            None => {
                return Err(Fail::Corrupt(format!(
                    "journal position of {source:?} lacks its cursor"
                )))
            }
        },
        other => {
            return Err(Fail::Corrupt(format!(
                "position of {source:?} has kind {other:?}"
            )))
        }
    };
    Ok((SourceId(source), position))
}

/// Unix microseconds: the precision the state keeps. Every `OffsetDateTime` fits.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    let micros = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

pub(super) fn from_micros(micros: i64) -> Result<OffsetDateTime, Fail> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| Fail::Corrupt(format!("time {micros} µs is out of range")))
}

pub(super) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn clamp(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The family and big-endian bytes of an address: blobs of one family compare like addresses.
pub(super) fn addr_key(addr: IpAddr) -> (i64, Vec<u8>) {
    match addr {
        IpAddr::V4(v4) => (4, v4.octets().to_vec()),
        IpAddr::V6(v6) => (6, v6.octets().to_vec()),
    }
}
