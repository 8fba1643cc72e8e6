//! Reading the state without the daemon: what `tarpitctl list`, `show` and `stats --history`
//! fall back to when the daemon is down.
//!
//! Owns only the [`OfflineState`] seam and the one place that opens it,
//! [`open_state_database`]. It never writes: changes go through the daemon, always.

use std::path::{Path, PathBuf};

use super::address::Address;
use super::protocol::{AllowVerdict, History, HistoryDays, HostReport, Listing};

/// Read-only access to the daemon's state database.
pub trait OfflineState {
    /// The listings recorded as in force (with `expired`, also those run out), ordered by
    /// address. `enforced` must be false: nobody has checked the kernel set.
    fn list(&self, expired: bool) -> Result<Vec<Listing>, OfflineError>;

    /// What the state records about `address` (a host inside a listed prefix finds it). The
    /// allowlist verdict cannot be known without the daemon's configuration and DNS: report
    /// `allowed: false` with a reason saying so.
    fn show(&self, address: Address) -> Result<HostReport, OfflineError>;

    /// The hourly figures recorded from midnight UTC `days - 1` days ago until now. The last
    /// minute before the daemon stopped is included (it commits them when it stops).
    fn history(&self, days: HistoryDays) -> Result<History, OfflineError>;
}

/// The state database could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the state database {path}: {detail}")]
pub struct OfflineError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

/// How `tarpitctl` opens the state database: `Ok(None)` when there is none at that path.
pub type OpenOffline = fn(&Path) -> Result<Option<Box<dyn OfflineState>>, OfflineError>;

/// Opens the SQLite state database at `path` read-only as an [`OfflineState`]; `Ok(None)` when
/// the file does not exist (the daemon never ran with this configuration), in which case
/// `tarpitctl list`/`show` report the daemon as unreachable (exit 3) rather than show anything
/// made up.
pub fn open_state_database(path: &Path) -> Result<Option<Box<dyn OfflineState>>, OfflineError> {
    if !path.exists() {
        return Ok(None);
    }
    let store = crate::state::SqliteStore::open_read_only(path).map_err(|e| OfflineError {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(Some(Box::new(StoreReader {
        path: path.to_owned(),
        store,
    })))
}

/// The state database read directly, while the daemon is down.
struct StoreReader {
    path: PathBuf,
    store: crate::state::SqliteStore,
}

impl StoreReader {
    fn fail(&self, e: impl std::fmt::Display) -> OfflineError {
        OfflineError {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }
}

impl OfflineState for StoreReader {
    fn list(&self, expired: bool) -> Result<Vec<Listing>, OfflineError> {
        use crate::state::store::Store;
        let now = time::OffsetDateTime::now_utc();
        let mut all = self.store.active(now).map_err(|e| self.fail(e))?;
        if expired {
            all.extend(self.store.expired(now, 10_000).map_err(|e| self.fail(e))?);
        }
        all.sort_by(|a, b| a.net.cmp(&b.net).then(a.since.cmp(&b.since)));
        // Nobody has looked at the kernel set: not "enforced".
        Ok(all
            .iter()
            .map(|l| Listing {
                enforced: false,
                ..crate::control::views::listing(l, now)
            })
            .collect())
    }

    fn show(&self, address: Address) -> Result<HostReport, OfflineError> {
        use crate::state::store::Store;
        let now = time::OffsetDateTime::now_utc();
        let covering = self
            .store
            .covering(address.net().addr(), now)
            .map_err(|e| self.fail(e))?;
        let listings = self
            .store
            .listings_of(address.net(), 50)
            .map_err(|e| self.fail(e))?;
        Ok(HostReport {
            address,
            listing: covering.first().map(|l| Listing {
                enforced: false,
                ..crate::control::views::listing(l, now)
            }),
            history: crate::control::views::history(&listings),
            allowlist: AllowVerdict {
                allowed: false,
                reason: Some(
                    "unknown while the daemon is down (it needs the configuration and DNS)".into(),
                ),
            },
        })
    }

    fn history(&self, days: HistoryDays) -> Result<History, OfflineError> {
        use crate::state::store::Store;
        let now = time::OffsetDateTime::now_utc();
        let from = crate::control::views::history_from(days, now);
        let hours = self.store.hourly(from).map_err(|e| self.fail(e))?;
        Ok(crate::control::views::hourly_history(&hours, from, now))
    }
}
