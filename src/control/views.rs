//! The state store's records as the control protocol shows them: one conversion, used by the
//! daemon's answers and by `tarpitctl`'s read-only fallback alike.

use time::OffsetDateTime;

use crate::control::address::Address;
use crate::control::protocol::{Listing, ListingSource, Offence};
use crate::state::model::{self, Origin};

/// A stored listing as seen at `now` (`enforced` only while it runs and was put into the set).
pub fn listing(l: &model::Listing, now: OffsetDateTime) -> Listing {
    let left = (l.until - now).whole_seconds().max(0).unsigned_abs();
    let running = l.ended.is_none() && left > 0;
    Listing {
        address: Address::from(l.net),
        since: l.since,
        until: l.until,
        remaining_secs: if running { left } else { 0 },
        offences: l.offence,
        reason: l.reason.clone(),
        evidence: l.evidence.lines().to_vec(),
        enforced: l.enforced && running,
        source: source(&l.origin),
    }
}

/// Who listed it.
pub fn source(origin: &Origin) -> ListingSource {
    match origin {
        Origin::Policy => ListingSource::Policy,
        Origin::Manual { .. } => ListingSource::Manual,
    }
}

/// A host's listings as its offence history, oldest first.
pub fn history(listings: &[model::Listing]) -> Vec<Offence> {
    let mut h: Vec<Offence> = listings
        .iter()
        .map(|l| Offence {
            at: l.since,
            duration_secs: (l.until - l.since).whole_seconds().max(0).unsigned_abs(),
            reason: l.reason.clone(),
            source: source(&l.origin),
        })
        .collect();
    h.sort_by_key(|o| o.at);
    h
}
