//! The [`Store`] trait: the one interface to tarpit's persistent state.
//!
//! The daemon commits what it decided together with how far it has read, in one [`Batch`], so a
//! crash loses at most the events of the batch not yet committed and never counts an event twice:
//! after a restart the sources resume at the committed positions, which match the committed
//! listings exactly. `tarpitctl` reads through the same trait. Every backend (the embedded
//! SQLite, later Redis for several MX hosts sharing one list) implements it; it must never hold
//! policy: offence numbers and durations arrive decided.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::error::StoreError;
use super::hourly::HourlyCounts;
use super::model::{
    HistoryOnUnlist, Listing, ListingId, NewListing, Offender, Position, SourceId, Unlisting,
};

/// One change to the listings, applied in the order given within a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Record a listing and update its offender's history (offences, last offence, last listing
    /// end). An active listing of the same net is ended as superseded at the new one's `since`.
    List(NewListing),
    /// End the active listing of exactly this net, keeping or forgetting its history.
    Unlist(Unlisting),
}

/// Everything one step of the daemon wants remembered: committed as a whole or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Listing changes, in order.
    pub changes: Vec<Change>,
    /// The read positions reached by the events behind these changes (last one per source wins).
    pub positions: Vec<(SourceId, Position)>,
    /// Figures to add to their hours (committed with the positions, so an event re-read after a
    /// crash is never counted twice).
    pub hourly: Vec<HourlyCounts>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a listing.
    pub fn list(&mut self, listing: NewListing) -> &mut Self {
        self.changes.push(Change::List(listing));
        self
    }

    /// Adds an unlisting.
    pub fn unlist(&mut self, unlisting: Unlisting) -> &mut Self {
        self.changes.push(Change::Unlist(unlisting));
        self
    }

    /// Adds the position a source has reached.
    pub fn position(&mut self, source: SourceId, position: Position) -> &mut Self {
        self.positions.push((source, position));
        self
    }

    /// Adds figures to an hour (a zero one still marks the hour as covered).
    pub fn add_hourly(&mut self, counts: HourlyCounts) -> &mut Self {
        self.hourly.push(counts);
        self
    }

    /// True when committing it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.positions.is_empty() && self.hourly.is_empty()
    }
}

/// What one [`Change`] did, in the order of the batch's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A listing was recorded under this id.
    Listed(ListingId),
    /// The listing that was active and is now ended, or `None` when nothing of exactly that net
    /// was active (history was still forgotten if asked).
    Unlisted(Option<Listing>),
}

/// The result of a committed batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// One outcome per change, in order.
    pub outcomes: Vec<Outcome>,
}

/// How long to keep what no longer matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRules {
    /// Listings that ended more than this long ago are deleted.
    pub keep_expired: Duration,
    /// Offender history with no listing ending within this long is deleted (`ban.forget_after`).
    pub forget_after: Duration,
    /// Hourly figures of hours that started longer ago than this are deleted
    /// ([`super::hourly::KEEP_HOURLY`]).
    pub keep_hourly: Duration,
}

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired listings deleted.
    pub listings: u64,
    /// Offender histories deleted.
    pub offenders: u64,
    /// Hours of figures deleted.
    pub hours: u64,
}

/// Sizes of the state at one time, for `tarpitctl stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Listings in force.
    pub active: u64,
    /// Of those, the ones enforced (not dry-run).
    pub enforced: u64,
    /// Listings kept after they ended.
    pub expired: u64,
    /// Offenders with history.
    pub offenders: u64,
    /// Sources with a saved position.
    pub sources: u64,
}

/// Persistent state: listings, offender history and source positions.
///
/// Writes go through [`Store::commit`], which applies a whole [`Batch`] in one transaction; the
/// other writers are shorthands for a one-change batch. Reads take the time `at` explicitly, so
/// they are deterministic and usable by a replay.
pub trait Store: Send {
    /// Where the state lives, for messages (a file path, a server address).
    fn location(&self) -> String;

    /// Applies every change and position of `batch` in one transaction: all of it is durable when
    /// this returns `Ok`, none of it when it returns `Err`.
    fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError>;

    /// The listings in force at `at` (`since <= at < ends`), oldest first.
    fn active(&self, at: OffsetDateTime) -> Result<Vec<Listing>, StoreError>;

    /// Up to `limit` listings that had ended by `at`, the most recently ended first.
    fn expired(&self, at: OffsetDateTime, limit: usize) -> Result<Vec<Listing>, StoreError>;

    /// The listing of exactly `net` in force at `at`, if any.
    fn get(&self, net: IpNet, at: OffsetDateTime) -> Result<Option<Listing>, StoreError>;

    /// The listings in force at `at` that cover the plain address `addr` (the address itself, its
    /// /64, a wider CIDR), the most specific first.
    fn covering(&self, addr: IpAddr, at: OffsetDateTime) -> Result<Vec<Listing>, StoreError>;

    /// Up to `limit` listings of exactly `net`, active or not, the newest first.
    fn listings_of(&self, net: IpNet, limit: usize) -> Result<Vec<Listing>, StoreError>;

    /// The history of exactly `net`, if it has any.
    fn history(&self, net: IpNet) -> Result<Option<Offender>, StoreError>;

    /// Every offender's history, for the policy engine to load at start.
    fn offenders(&self) -> Result<Vec<Offender>, StoreError>;

    /// The saved position of one source.
    fn position(&self, source: &SourceId) -> Result<Option<Position>, StoreError>;

    /// Every saved position, by source name.
    fn positions(&self) -> Result<Vec<(SourceId, Position)>, StoreError>;

    /// The hourly figures of every hour starting at or after `since`, oldest first; hours with
    /// no record are absent (not known, as opposed to a record of zeros).
    fn hourly(&self, since: OffsetDateTime) -> Result<Vec<HourlyCounts>, StoreError>;

    /// Deletes listings ended more than `rules.keep_expired` before `now`, history forgotten
    /// under `rules.forget_after` and hourly figures older than `rules.keep_hourly`, in one
    /// transaction. Active listings and their history stay.
    fn prune(&mut self, now: OffsetDateTime, rules: PruneRules) -> Result<Pruned, StoreError>;

    /// How much the state holds at `at`.
    fn counts(&self, at: OffsetDateTime) -> Result<Counts, StoreError>;

    /// Records one listing with its history update; shorthand for a one-change batch.
    fn record(&mut self, listing: NewListing) -> Result<ListingId, StoreError> {
        let mut batch = Batch::new();
        batch.list(listing);
        let committed = self.commit(&batch)?;
        match committed.outcomes.first() {
            Some(Outcome::Listed(id)) => Ok(*id),
            _ => Err(StoreError::Corrupt {
                location: self.location(),
                op: super::error::Op::Commit,
                what: String::from("the backend did not report the recorded listing"),
            }),
        }
    }

    /// Ends the active listing of exactly `net` at `at`; shorthand for a one-change batch.
    /// Returns the listing ended, if one was active.
    fn unlist(
        &mut self,
        net: IpNet,
        at: OffsetDateTime,
        by: &str,
        history: HistoryOnUnlist,
    ) -> Result<Option<Listing>, StoreError> {
        let mut batch = Batch::new();
        batch.unlist(Unlisting {
            net,
            at,
            by: by.to_owned(),
            history,
        });
        let committed = self.commit(&batch)?;
        Ok(match committed.outcomes.into_iter().next() {
            Some(Outcome::Unlisted(ended)) => ended,
            _ => None,
        })
    }

    /// Adds figures to their hour; shorthand for a batch holding only them.
    fn add_hourly(&mut self, counts: &HourlyCounts) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.add_hourly(counts.clone());
        self.commit(&batch).map(drop)
    }

    /// Saves one source's position; shorthand for a batch holding only it.
    fn save_position(&mut self, source: SourceId, position: Position) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.position(source, position);
        self.commit(&batch).map(drop)
    }
}
