//! The daemon's side of the metrics endpoint: the core's figures, taken on the core.
//!
//! A scrape becomes a job on the core thread, like a `tarpitctl stats` request, so it reads the
//! very counters `stats` reads, between two batches, without locks. The endpoint asks at most
//! once a second (see [`crate::metrics::server`]), so scrapes cannot crowd out the log lines.
//! It never changes the core's state.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::event::EventClass;
use crate::metrics::snapshot::{ActiveListings, SourceFigures, StallFigures};
use crate::metrics::{Collect, Snapshot};

use super::core::Core;
use super::handler::Handler;

/// Collects snapshots by sending jobs to the core.
pub struct CoreCollector(pub Arc<Handler>);

impl Collect for CoreCollector {
    async fn collect(&self) -> Result<Snapshot, String> {
        self.0
            .call(|core| Ok(snapshot(core)))
            .await
            .map_err(|e| e.message)
    }
}

/// The core's figures now. Cheap: counters and the in-force list the core keeps, the kernel's
/// rule counters and the stall listener's totals; the store is not read.
pub fn snapshot(core: &Core) -> Snapshot {
    let now = OffsetDateTime::now_utc();
    let mut active = ActiveListings::default();
    for (net, end, offence) in &core.in_force {
        if *end > now {
            active.add(net, *offence);
        }
    }
    let diverted_packets = match &core.driver {
        None => Some(0),
        Some(d) => match d.diverted() {
            Ok(d) => Some(d.packets),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the diversion counters");
                None
            }
        },
    };
    Snapshot {
        started: core.started,
        events_by_class: EventClass::ALL
            .iter()
            .map(|c| (*c, core.events_by_class.get(c).copied().unwrap_or(0)))
            .collect(),
        active,
        listings_total: core.listed,
        diverted_packets,
        stall: core.stall.as_ref().map(|s| StallFigures::from(&s.totals())),
        sources: core
            .sources
            .iter()
            .map(|s| SourceFigures {
                name: s.id.0.clone(),
                lines: s.lines,
                events: s.events,
                lag_seconds: s.newest.map(|t| (now - t).as_seconds_f64()),
            })
            .collect(),
    }
}
