//! The embedded default [`Store`]: one SQLite file (default `/var/lib/tarpit/state.db`).
//!
//! The database runs in WAL mode, so `tarpitctl` reads while `tarpitd` writes, with
//! `synchronous=FULL`: the write-ahead log is synced on every commit, so a listing reported
//! committed survives a crash of the process *and* a power cut. (`NORMAL` would only survive the
//! former, and a lost manual `tarpitctl add` cannot be re-derived from the logs.) A sync costs
//! milliseconds on ordinary disks, so callers commit batches (e.g. every 100 ms of events), not
//! single events. Every write is one `BEGIN IMMEDIATE` transaction: a failure at any point — full
//! disk, read-only file, a kill — rolls the whole batch back and leaves every earlier commit
//! intact.
//!
//! This file owns the SQL and the row encoding; it never decides what to list.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::types::Value;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction,
    TransactionBehavior,
};
use time::OffsetDateTime;

use super::error::{Op, StoreError};
use super::model::{
    EndCause, Ended, Evidence, FilePosition, Fingerprint, HistoryOnUnlist, Listing, ListingId,
    NewListing, Offender, Origin, Position, SourceId, Unlisting,
};
use super::sqlite_schema::{self, SCHEMA_VERSION};
use super::store::{Batch, Change, Committed, Counts, Outcome, PruneRules, Pruned, Store};

/// How long a writer or reader waits for another process's lock before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The size, in bytes, the write-ahead log is cut back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// The columns every listing query selects, in the order [`listing_from_row`] reads them.
const LISTING_COLUMNS: &str = "id, net, since, until, offence, reason, evidence, enforced, \
                               origin, created_by, ended_at, end_cause, ended_by";

/// The state in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

/// A failure inside this file, before the location and operation are attached.
#[derive(Debug)]
enum Fail {
    Sql(rusqlite::Error),
    Corrupt(String),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

const READ_ONLY_HINT: &str =
    "make the file and its folder writable by the user tarpitd runs as (tarpitctl can still read it)";

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` for reading and writing: WAL mode,
    /// `synchronous=FULL`, the default busy timeout, the schema brought up to date.
    ///
    /// A database this process cannot write (permissions, read-only file system) is refused with
    /// [`StoreError::ReadOnly`] rather than opened half-usable; one from a newer tarpit with
    /// [`StoreError::SchemaTooNew`].
    ///
    /// A new database is created with mode 0640 (its `-wal` and `-shm` files follow it): the
    /// evidence holds mail addresses, so only its owner and group (e.g. `adm`, like the mail
    /// logs) may read it. A missing last folder (`/var/lib/tarpit`) is created with mode 0750.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path).map_err(|e| StoreError::Backend {
            location: path.display().to_string(),
            op: Op::Open,
            source: Box::new(e),
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| fail(&path, Op::Open, Fail::Sql(e)))?;
        let mut store = SqliteStore { conn, path };
        store.configure_for_writing()?;
        let found =
            sqlite_schema::migrate(&mut store.conn).map_err(|e| store.sql(Op::Migrate, e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                location: store.location(),
                op: Op::Migrate,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        tracing::debug!(path = %store.path.display(), schema = SCHEMA_VERSION, "state opened");
        Ok(store)
    }

    /// Opens an existing database for reading only (`tarpitctl`, with or without a running
    /// daemon). Every write through it fails with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(StoreError::Missing {
                location: path.display().to_string(),
                op: Op::Open,
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| fail(&path, Op::Open, Fail::Sql(e)))?;
        let mut store = SqliteStore { conn, path };
        store
            .conn
            .busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(|e| store.sql(Op::Configure, e))?;
        let found = match sqlite_schema::version(&store.conn) {
            Ok(found) => found,
            // A WAL database needs its `-shm` file, which a reader cannot create in a folder
            // it may not write (a read-only file system, a non-root tarpitctl). Without a `-wal`
            // file no writer is open and everything is in the main file, so reading that file
            // as immutable is exact.
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::CannotOpen)
                    && !sidecar(&store.path, "-wal").exists() =>
            {
                store.conn = Connection::open_with_flags(
                    immutable_uri(&store.path),
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| store.sql(Op::Open, e))?;
                sqlite_schema::version(&store.conn).map_err(|e| store.sql(Op::Open, e))?
            }
            Err(e) => return Err(store.sql(Op::Open, e)),
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                location: store.location(),
                op: Op::Open,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                location: store.location(),
                op: Op::Open,
                what: format!(
                    "schema version {found} is older than {SCHEMA_VERSION} (or not a tarpit state at all); \
                     start tarpitd once to upgrade it"
                ),
            });
        }
        Ok(store)
    }

    /// Sets how long to wait for another process's lock (default [`DEFAULT_BUSY_TIMEOUT`]).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(timeout)
            .map_err(|e| self.sql(Op::Configure, e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure_for_writing(&self) -> Result<(), StoreError> {
        let conn = &self.conn;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(|e| self.sql(Op::Configure, e))?;
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| self.sql(Op::Configure, e))?
        {
            return Err(StoreError::ReadOnly {
                location: self.location(),
                op: Op::Open,
                hint: READ_ONLY_HINT,
            });
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| self.sql(Op::Configure, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                location: self.location(),
                op: Op::Configure,
                source: format!("SQLite kept journal mode {mode:?} instead of WAL (a file system without shared memory?)").into(),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.sql(Op::Configure, e))?;
        // After a burst the WAL is truncated back to this size at the next checkpoint instead
        // of keeping its high-water mark for months.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(|e| self.sql(Op::Configure, e))?;
        Ok(())
    }

    fn sql(&self, op: Op, e: rusqlite::Error) -> StoreError {
        fail(&self.path, op, Fail::Sql(e))
    }

    fn err(&self, op: Op, f: Fail) -> StoreError {
        fail(&self.path, op, f)
    }

    fn query_listings(
        &self,
        op: Op,
        where_order: &str,
        args: &[Value],
    ) -> Result<Vec<Listing>, StoreError> {
        let sql = format!("SELECT {LISTING_COLUMNS} FROM listings WHERE {where_order}");
        let run = || -> Result<Vec<Listing>, Fail> {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(listing_from_row(row)?);
            }
            Ok(out)
        };
        run().map_err(|f| self.err(op, f))
    }

    fn count(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        self.conn
            .query_row(sql, rusqlite::params_from_iter(args.iter()), |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.sql(Op::Read, e))
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError> {
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let run = |conn: &mut Connection| -> Result<Committed, Fail> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(batch.changes.len());
            for change in &batch.changes {
                outcomes.push(match change {
                    Change::List(listing) => Outcome::Listed(insert_listing(&tx, listing)?),
                    Change::Unlist(unlisting) => Outcome::Unlisted(end_listing(&tx, unlisting)?),
                });
            }
            for (source, position) in &batch.positions {
                save_position(&tx, source, position)?;
            }
            tx.commit()?;
            Ok(Committed { outcomes })
        };
        run(&mut self.conn).map_err(|f| fail(&self.path, Op::Commit, f))
    }

    fn active(&self, at: OffsetDateTime) -> Result<Vec<Listing>, StoreError> {
        let t = to_micros(at);
        self.query_listings(
            Op::Read,
            "since <= ?1 AND ends > ?1 ORDER BY since, id",
            &[Value::Integer(t)],
        )
    }

    fn expired(&self, at: OffsetDateTime, limit: usize) -> Result<Vec<Listing>, StoreError> {
        self.query_listings(
            Op::Read,
            "ends <= ?1 ORDER BY ends DESC, id DESC LIMIT ?2",
            &[Value::Integer(to_micros(at)), Value::Integer(clamp(limit))],
        )
    }

    fn get(&self, net: IpNet, at: OffsetDateTime) -> Result<Option<Listing>, StoreError> {
        let found = self.query_listings(
            Op::Read,
            "net = ?1 AND since <= ?2 AND ends > ?2 ORDER BY id DESC LIMIT 1",
            &[
                Value::Text(net.trunc().to_string()),
                Value::Integer(to_micros(at)),
            ],
        )?;
        Ok(found.into_iter().next())
    }

    fn covering(&self, addr: IpAddr, at: OffsetDateTime) -> Result<Vec<Listing>, StoreError> {
        // A covering listing starts at the address masked to its own prefix length, so one
        // indexed equality per possible length (33 or 129) finds them all, however many
        // listings there are; `hi >= addr` then confirms the containment.
        let (family, bytes) = addr_key(addr);
        let max_len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let mut args = vec![
            Value::Integer(family),
            Value::Blob(bytes),
            Value::Integer(to_micros(at)),
        ];
        for len in 0..=max_len {
            let start = IpNet::new(addr, len).map(|n| n.network()).unwrap_or(addr);
            args.push(Value::Blob(addr_key(start).1));
        }
        let starts = (4..args.len() + 1)
            .map(|n| format!("?{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.query_listings(
            Op::Read,
            &format!(
                "family = ?1 AND lo IN ({starts}) AND hi >= ?2 AND since <= ?3 AND ends > ?3 \
                 ORDER BY prefix_len DESC, id DESC"
            ),
            &args,
        )
    }

    fn listings_of(&self, net: IpNet, limit: usize) -> Result<Vec<Listing>, StoreError> {
        self.query_listings(
            Op::Read,
            "net = ?1 ORDER BY id DESC LIMIT ?2",
            &[
                Value::Text(net.trunc().to_string()),
                Value::Integer(clamp(limit)),
            ],
        )
    }

    fn history(&self, net: IpNet) -> Result<Option<Offender>, StoreError> {
        let run = || -> Result<Option<Offender>, Fail> {
            let raw = self
                .conn
                .prepare_cached(
                    "SELECT offences, last_offence, last_listing_end FROM offenders WHERE net = ?1",
                )?
                .query_row([net.trunc().to_string()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            raw.map(|(offences, last, end)| offender(net.trunc(), offences, last, end))
                .transpose()
        };
        run().map_err(|f| self.err(Op::Read, f))
    }

    fn offenders(&self) -> Result<Vec<Offender>, StoreError> {
        let run = || -> Result<Vec<Offender>, Fail> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT net, offences, last_offence, last_listing_end FROM offenders ORDER BY net",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let text: String = row.get(0)?;
                let net: IpNet = text
                    .parse()
                    .map_err(|_| Fail::Corrupt(format!("offender with net {text:?}")))?;
                out.push(offender(net, row.get(1)?, row.get(2)?, row.get(3)?)?);
            }
            Ok(out)
        };
        run().map_err(|f| self.err(Op::Read, f))
    }

    fn position(&self, source: &SourceId) -> Result<Option<Position>, StoreError> {
        let run = || -> Result<Option<Position>, Fail> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT source, kind, dev, ino, offset, fingerprint, cursor FROM positions WHERE source = ?1",
            )?;
            let mut rows = stmt.query([&source.0])?;
            match rows.next()? {
                Some(row) => Ok(Some(position_from_row(row)?.1)),
                None => Ok(None),
            }
        };
        run().map_err(|f| self.err(Op::Read, f))
    }

    fn positions(&self) -> Result<Vec<(SourceId, Position)>, StoreError> {
        let run = || -> Result<Vec<(SourceId, Position)>, Fail> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT source, kind, dev, ino, offset, fingerprint, cursor FROM positions ORDER BY source",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(position_from_row(row)?);
            }
            Ok(out)
        };
        run().map_err(|f| self.err(Op::Read, f))
    }

    fn prune(&mut self, now: OffsetDateTime, rules: PruneRules) -> Result<Pruned, StoreError> {
        let now_us = to_micros(now);
        let listings_before = now_us.saturating_sub(duration_micros(rules.keep_expired));
        let history_before = now_us.saturating_sub(duration_micros(rules.forget_after));
        let run = |conn: &mut Connection| -> Result<Pruned, Fail> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let listings = tx.execute(
                "DELETE FROM listings WHERE ends <= ?1",
                params![listings_before],
            )?;
            let offenders = tx.execute(
                "DELETE FROM offenders WHERE last_listing_end <= ?1 AND NOT EXISTS (
                     SELECT 1 FROM listings l
                     WHERE l.net = offenders.net AND l.ends > ?2)",
                params![history_before, now_us],
            )?;
            tx.commit()?;
            Ok(Pruned {
                listings: listings as u64,
                offenders: offenders as u64,
            })
        };
        let pruned = run(&mut self.conn).map_err(|f| fail(&self.path, Op::Prune, f))?;
        tracing::debug!(path = %self.path.display(), listings = pruned.listings, offenders = pruned.offenders, "state pruned");
        Ok(pruned)
    }

    fn counts(&self, at: OffsetDateTime) -> Result<Counts, StoreError> {
        let t = [Value::Integer(to_micros(at))];
        Ok(Counts {
            active: self.count(
                "SELECT COUNT(*) FROM listings WHERE since <= ?1 AND ends > ?1",
                &t,
            )?,
            enforced: self.count(
                "SELECT COUNT(*) FROM listings WHERE since <= ?1 AND ends > ?1 AND enforced",
                &t,
            )?,
            expired: self.count("SELECT COUNT(*) FROM listings WHERE ends <= ?1", &t)?,
            offenders: self.count("SELECT COUNT(*) FROM offenders", &[])?,
            sources: self.count("SELECT COUNT(*) FROM positions", &[])?,
        })
    }
}

/// Records one listing: ends an active listing of the same net as superseded, inserts, and sets
/// the offender's history from it.
fn insert_listing(tx: &Transaction<'_>, listing: &NewListing) -> Result<ListingId, Fail> {
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
fn end_listing(tx: &Transaction<'_>, unlisting: &Unlisting) -> Result<Option<Listing>, Fail> {
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

fn save_position(tx: &Transaction<'_>, source: &SourceId, position: &Position) -> Result<(), Fail> {
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

fn listing_from_row(row: &Row<'_>) -> Result<Listing, Fail> {
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

fn offender(net: IpNet, offences: i64, last: i64, end: i64) -> Result<Offender, Fail> {
    Ok(Offender {
        net,
        offences: u32::try_from(offences)
            .map_err(|_| Fail::Corrupt(format!("offence count {offences} of {net}")))?,
        last_offence: from_micros(last)?,
        last_listing_end: from_micros(end)?,
    })
}

fn position_from_row(row: &Row<'_>) -> Result<(SourceId, Position), Fail> {
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

/// Attaches the location and operation to a failure, sorting out what an operator must act on.
fn fail(path: &Path, op: Op, f: Fail) -> StoreError {
    let location = path.display().to_string();
    let e = match f {
        Fail::Corrupt(what) => return StoreError::Corrupt { location, op, what },
        Fail::Sql(e) => e,
    };
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full { location, op },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
            location,
            op,
            hint: READ_ONLY_HINT,
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Busy { location, op }
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            location,
            op,
            what: e.to_string(),
        },
        Some(ErrorCode::CannotOpen) => StoreError::Backend {
            location,
            op,
            source: format!("{e}: does its folder exist, and may tarpit create files there?")
                .into(),
        },
        _ => StoreError::Backend {
            location,
            op,
            source: Box::new(e),
        },
    }
}

/// Creates the database file (mode 0640) and its last folder (mode 0750) when missing, so that
/// SQLite never creates them with wider modes. A missing grandparent is left for SQLite to
/// report: a path that far off is more likely a typo than a fresh install.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        let grandparent_exists = folder
            .parent()
            .is_none_or(|g| g.as_os_str().is_empty() || g.exists());
        if !folder.exists() && grandparent_exists {
            match std::fs::DirBuilder::new().mode(0o750).create(folder) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        if !folder.exists() {
            return Ok(());
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Already there (the usual case), or not ours to create: SQLite says what is wrong.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The file SQLite keeps beside the database with `suffix` (`-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A `file:` URI opening `path` as immutable (no locks, no `-shm`), with the characters a URI
/// gives meaning to escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{byte:02X}")),
            b if b.is_ascii() && !b.is_ascii_control() => uri.push(char::from(*b)),
            b => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Unix microseconds: the precision the state keeps. Every `OffsetDateTime` fits.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    let micros = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, Fail> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| Fail::Corrupt(format!("time {micros} µs is out of range")))
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn clamp(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The family and big-endian bytes of an address: blobs of one family compare like addresses.
fn addr_key(addr: IpAddr) -> (i64, Vec<u8>) {
    match addr {
        IpAddr::V4(v4) => (4, v4.octets().to_vec()),
        IpAddr::V6(v6) => (6, v6.octets().to_vec()),
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
