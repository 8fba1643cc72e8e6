//! The SQLite schema and its migrations, numbered from 1.
//!
//! `schema_migrations` records every version applied and when. A database at an older version is
//! upgraded in one transaction when opened for writing; one at a newer version is refused rather
//! than misread. Migrations are only ever appended: a released one is never edited.

use rusqlite::{params, Connection, TransactionBehavior};
use time::OffsetDateTime;

/// The migrations, in order; version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: listings, offender history, source positions.
    "
    CREATE TABLE listings (
        id          INTEGER PRIMARY KEY,
        net         TEXT    NOT NULL,          -- the network, truncated: 198.51.100.0/24
        family      INTEGER NOT NULL,          -- 4 or 6
        lo          BLOB    NOT NULL,          -- first address, big-endian bytes
        hi          BLOB    NOT NULL,          -- last address, big-endian bytes
        prefix_len  INTEGER NOT NULL,
        since       INTEGER NOT NULL,          -- unix microseconds
        until       INTEGER NOT NULL,
        ends        INTEGER NOT NULL,          -- until, or ended_at when earlier
        offence     INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        evidence    TEXT    NOT NULL,          -- JSON array of lines
        enforced    INTEGER NOT NULL,
        origin      TEXT    NOT NULL CHECK (origin IN ('policy', 'manual')),
        created_by  TEXT,
        ended_at    INTEGER,
        end_cause   TEXT CHECK (end_cause IN ('unlisted', 'superseded')),
        ended_by    TEXT
    );
    CREATE INDEX listings_by_end ON listings (ends);
    CREATE INDEX listings_by_net ON listings (net, ends);
    CREATE INDEX listings_by_range ON listings (family, lo);
    CREATE TABLE offenders (
        net              TEXT PRIMARY KEY,
        offences         INTEGER NOT NULL,
        last_offence     INTEGER NOT NULL,
        last_listing_end INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX offenders_by_end ON offenders (last_listing_end);
    CREATE TABLE positions (
        source      TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('file', 'journal')),
        dev         INTEGER,
        ino         INTEGER,
        offset      INTEGER,
        fingerprint BLOB,
        cursor      TEXT
    ) WITHOUT ROWID;
    ",
    // 2: figures per UTC hour, for `tarpitctl stats --history`.
    "
    CREATE TABLE hourly (
        hour              INTEGER PRIMARY KEY,   -- start of the UTC hour, unix microseconds
        listings          INTEGER NOT NULL,
        stall_connections INTEGER NOT NULL,
        stall_seconds     INTEGER NOT NULL
    );
    CREATE TABLE hourly_events (
        hour   INTEGER NOT NULL,                 -- as in hourly
        class  TEXT    NOT NULL,                 -- the event class name
        events INTEGER NOT NULL,
        PRIMARY KEY (hour, class)
    ) WITHOUT ROWID;
    ",
];

/// The newest schema version this build knows.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)";

/// The version a database is at: 0 for a new or foreign one (no `schema_migrations` table).
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

/// Brings the database to [`SCHEMA_VERSION`] in one transaction; returns the version found
/// before, which the caller compares with [`SCHEMA_VERSION`] (a newer one is left untouched).
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(CREATE_VERSIONS)?;
    let found = version(&tx)?;
    if found >= SCHEMA_VERSION {
        tx.commit()?;
        return Ok(found);
    }
    let now = super::sqlite_rows::to_micros(OffsetDateTime::now_utc());
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![index as i64 + 1, now],
        )?;
    }
    tx.commit()?;
    Ok(found)
}
