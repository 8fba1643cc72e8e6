//! State: what tarpit must remember across restarts.
//!
//! Listings (active and expired, with their reason and evidence), offender history (what
//! escalation and forgetting need) and the read position of every log source. [`store`] is the
//! one interface the daemon and `tarpitctl` speak ([`Store`]); [`sqlite`] is the embedded default
//! behind it, and a shared backend (Redis, so several MX hosts share one list) can implement the
//! same trait later. [`model`] holds the typed records, [`hourly`] the per-hour figures behind
//! `tarpitctl stats --history`, [`error`] the one error type, [`config`] the `state:` section of
//! the configuration.
//!
//! This module never decides anything: the policy computes listings, offence numbers and
//! durations; the store only keeps them, and keeps them all-or-nothing per [`Batch`].

pub mod config;
pub mod error;
pub mod hourly;
pub mod model;
pub mod sqlite;
mod sqlite_rows;
mod sqlite_schema;
pub mod store;

pub use config::StateConfig;
pub use error::{Op, StoreError};
pub use hourly::{hour_start, HourlyCounts, KEEP_HOURLY};
pub use model::{
    EndCause, Ended, Evidence, FilePosition, Fingerprint, HistoryOnUnlist, Listing, ListingId,
    NewListing, Offender, Origin, Position, SourceId, Unlisting,
};
pub use sqlite::SqliteStore;
pub use store::{Batch, Change, Committed, Counts, Outcome, PruneRules, Pruned, Store};
