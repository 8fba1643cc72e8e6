//! The one error type every [`super::Store`] backend returns.
//!
//! Each variant names where the state lives (a file path, later a Redis URL) and which operation
//! failed, and says what to do next. The conditions an operator must act on (full disk, read-only
//! state, a lock held too long, a database from a newer tarpit) have their own variants so the
//! daemon can report them and keep enforcing. A failed write never leaves part of a batch behind.

use std::fmt;

/// What the store was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening or creating the store.
    Open,
    /// Setting the connection up (journal mode, pragmas).
    Configure,
    /// Creating or upgrading the schema.
    Migrate,
    /// Committing a batch of changes and positions.
    Commit,
    /// Reading listings, history, positions or counts.
    Read,
    /// Deleting old expired listings and forgotten history.
    Prune,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::Configure => "configure",
            Op::Migrate => "schema migration",
            Op::Commit => "commit",
            Op::Read => "read",
            Op::Prune => "prune",
        })
    }
}

/// A store operation failed. Nothing that was committed before is lost by any of these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The device holding the state is full; the batch was rolled back as a whole.
    #[error("state {location}: {op} failed: no space left on the device; nothing of this batch was written and everything committed before is intact; free space there, then the same batch can be committed again")]
    Full {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
    },
    /// The state cannot be written: file permissions, a read-only file system, or a store
    /// opened read-only.
    #[error("state {location}: {op} failed: the state is read-only (opened read-only, file or folder permissions, or a read-only file system); {hint}")]
    ReadOnly {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
        /// What to do next.
        hint: &'static str,
    },
    /// Another process held the lock longer than the busy timeout.
    #[error("state {location}: {op} failed: the database stayed locked by another process for longer than the busy timeout; retry, or look for a stuck tarpitd or tarpitctl")]
    Busy {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
    },
    /// The state does not exist (a read-only open of a missing database).
    #[error("state {location}: {op} failed: there is no state database there; has tarpitd run with this state path?")]
    Missing {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
    },
    /// The database was written by a newer tarpit with a schema this one does not know.
    #[error("state {location}: {op} failed: its schema is version {found}, this tarpit knows up to {supported}; upgrade tarpit or point it at another state path")]
    SchemaTooNew {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
        /// The version in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored record does not decode (damaged file or a foreign writer).
    #[error("state {location}: {op} failed: a stored record is invalid: {what}; restore the state from a backup or move the file away to start afresh")]
    Corrupt {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
        /// Which record and what is wrong with it.
        what: String,
    },
    /// Any other failure of the backend.
    #[error("state {location}: {op} failed: {source}")]
    Backend {
        /// Where the state lives.
        location: String,
        /// What was being done.
        op: Op,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// The operation that failed.
    pub fn op(&self) -> Op {
        match self {
            StoreError::Full { op, .. }
            | StoreError::ReadOnly { op, .. }
            | StoreError::Busy { op, .. }
            | StoreError::Missing { op, .. }
            | StoreError::SchemaTooNew { op, .. }
            | StoreError::Corrupt { op, .. }
            | StoreError::Backend { op, .. } => *op,
        }
    }

    /// True when the condition may clear by itself or by an operator's action while the daemon
    /// keeps running (full disk, lock contention), so the same batch can be committed again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Full { .. } | StoreError::Busy { .. })
    }
}
