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
//! This file opens, configures and queries the database and runs each write as one transaction;
//! `sqlite_rows` holds the row encoding and the write statements, `sqlite_schema` the schema.
//! None of them decides what to list.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::error::{Op, StoreError};
use super::hourly::HourlyCounts;
use super::model::{Listing, Offender, Position, SourceId};
use super::sqlite_rows::{
    add_hourly, addr_key, clamp, count_from, duration_micros, end_listing, from_micros,
    insert_listing, listing_from_row, offender, position_from_row, save_position, to_micros, Fail,
    LISTING_COLUMNS,
};
use super::sqlite_schema::{self, SCHEMA_VERSION};
use super::store::{Batch, Change, Committed, Counts, Outcome, PruneRules, Pruned, Store};

/// How long a writer or reader waits for another process's lock before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The size, in bytes, the write-ahead log is cut back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// The state in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
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
            for counts in &batch.hourly {
                add_hourly(&tx, counts)?;
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

    fn hourly(&self, since: OffsetDateTime) -> Result<Vec<HourlyCounts>, StoreError> {
        let since = to_micros(since);
        let run = || -> Result<Vec<HourlyCounts>, Fail> {
            let mut out: Vec<HourlyCounts> = Vec::new();
            let mut stmt = self.conn.prepare_cached(
                "SELECT hour, listings, stall_connections, stall_seconds FROM hourly
                 WHERE hour >= ?1 ORDER BY hour",
            )?;
            let mut rows = stmt.query([since])?;
            while let Some(row) = rows.next()? {
                let hour: i64 = row.get(0)?;
                out.push(HourlyCounts {
                    hour: from_micros(hour)?,
                    listings: count_from(row.get(1)?, "an hour's listings")?,
                    events_by_class: Default::default(),
                    stall_connections: count_from(row.get(2)?, "an hour's stall connections")?,
                    stall_seconds: count_from(row.get(3)?, "an hour's stall seconds")?,
                });
            }
            let mut stmt = self.conn.prepare_cached(
                "SELECT hour, class, events FROM hourly_events WHERE hour >= ?1 ORDER BY hour",
            )?;
            let mut rows = stmt.query([since])?;
            while let Some(row) = rows.next()? {
                let hour = from_micros(row.get(0)?)?;
                let class: String = row.get(1)?;
                let events = count_from(row.get(2)?, "an hour's events")?;
                let Ok(i) = out.binary_search_by_key(&hour, |h| h.hour) else {
                    return Err(Fail::Corrupt(format!(
                        "events of {class} for the hour {hour} that has no record"
                    )));
                };
                if let Some(h) = out.get_mut(i) {
                    h.events_by_class.insert(class, events);
                }
            }
            Ok(out)
        };
        run().map_err(|f| self.err(Op::Read, f))
    }

    fn prune(&mut self, now: OffsetDateTime, rules: PruneRules) -> Result<Pruned, StoreError> {
        let now_us = to_micros(now);
        let listings_before = now_us.saturating_sub(duration_micros(rules.keep_expired));
        let history_before = now_us.saturating_sub(duration_micros(rules.forget_after));
        let hours_before = now_us.saturating_sub(duration_micros(rules.keep_hourly));
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
            tx.execute(
                "DELETE FROM hourly_events WHERE hour < ?1",
                params![hours_before],
            )?;
            let hours = tx.execute("DELETE FROM hourly WHERE hour < ?1", params![hours_before])?;
            tx.commit()?;
            Ok(Pruned {
                listings: listings as u64,
                offenders: offenders as u64,
                hours: hours as u64,
            })
        };
        let pruned = run(&mut self.conn).map_err(|f| fail(&self.path, Op::Prune, f))?;
        tracing::debug!(path = %self.path.display(), listings = pruned.listings, offenders = pruned.offenders, hours = pruned.hours, "state pruned");
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

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
