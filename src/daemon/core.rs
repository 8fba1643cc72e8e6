//! The daemon's core: the one owner of the policy engine, the state store and the kernel set.
//!
//! It runs on its own thread and takes messages in order: batches of log lines from the
//! sources, jobs from the control socket, and ticks. Lines are parsed, judged, put into the
//! kernel set at once, and committed to the store together with the read positions in one
//! transaction per batch, so that a crash loses at most the lines of the batch in hand (they are
//! read again at the next start) and never a committed listing. Having one owner means no locks:
//! a control request sees the state between two batches, never in the middle of one. The core
//! also keeps the hourly figures behind `tarpitctl stats --history` (see [`super::hourly`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::event::EventClass;
use crate::netfilter::Driver;
use crate::parse::{Outcome, Parser};
use crate::policy::decision::Decision;
use crate::policy::engine::Engine;
use crate::source::Line;
use crate::state::hourly::KEEP_HOURLY;
use crate::state::model::{Evidence, Listing, NewListing, Origin, SourceId, Unlisting};
use crate::state::store::{Batch, PruneRules, Pruned, Store};

use super::hourly::{BatchHours, StallHours};
use super::positions;

/// A job from the control socket: runs on the core, between batches.
pub type Job = Box<dyn FnOnce(&mut Core) + Send>;

/// What the core is sent.
pub enum Msg {
    /// Lines read by source number `.0`.
    Lines(usize, Vec<Line>),
    /// A control request.
    Job(Job),
    /// Housekeeping, every few seconds.
    Tick,
    /// Commit and stop.
    Stop,
}

/// What the core knows of one source.
pub struct SourceState {
    /// The key its position is saved under (`file:/var/log/mail.log`).
    pub id: SourceId,
    /// Which MTA's lines it carries.
    pub mta: crate::parse::MtaChoice,
    /// Its parser (each source has its own MTA choice and clock).
    pub parser: Parser,
    /// Lines read since start.
    pub lines: u64,
    /// Events found since start.
    pub events: u64,
    /// The timestamp of the newest line read, for the metrics' parse lag.
    pub newest: Option<OffsetDateTime>,
    /// Where it is.
    pub position: Option<crate::source::position::Position>,
    /// The last error its reader reported, if any.
    pub error: Option<String>,
}

/// The live listings `(net, until)` as the kernel should hold them, for the netfilter watcher
/// that repairs a flushed table without asking the core.
pub type Live = Arc<Mutex<Vec<(IpNet, OffsetDateTime)>>>;

/// The core's state.
pub struct Core {
    /// The configuration in force.
    pub config: Config,
    /// Where it came from.
    pub config_path: Option<std::path::PathBuf>,
    /// The policy engine.
    pub engine: Engine,
    /// The state store.
    pub store: Box<dyn Store>,
    /// The kernel set (none in dry-run mode).
    pub driver: Option<Driver>,
    /// The sources, by number.
    pub sources: Vec<SourceState>,
    /// The live listings for the watcher.
    pub live: Live,
    /// Events seen per class since start.
    pub events_by_class: BTreeMap<EventClass, u64>,
    /// When the daemon started.
    pub started: OffsetDateTime,
    /// This host's own addresses (never listed).
    pub own: Vec<IpAddr>,
    /// The stall listener's figures, when it runs.
    pub stall: Option<crate::stall::StallStats>,
    /// Store failures in a row (the daemon keeps enforcing while the disk is full).
    pub store_failures: u64,
    /// The stall figures per hour not yet committed, and when to commit and prune.
    pub hourly: StallHours,
    /// Listings made since start, by the policy and by hand.
    pub listed: u64,
    /// Every listing in force, enforced or not, as `(net, end, offence)` at the last change: the
    /// metrics count these rather than read the store at each scrape.
    pub in_force: Vec<(IpNet, OffsetDateTime, u32)>,
}

impl Core {
    /// Runs until `Stop` or until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Lines(source, lines) => {
                    // Take every batch that is already waiting: one commit for all of them.
                    let mut batches = vec![(source, lines)];
                    let mut after = Vec::new();
                    while let Ok(next) = rx.try_recv() {
                        match next {
                            Msg::Lines(s, l) if after.is_empty() => batches.push((s, l)),
                            other => after.push(other),
                        }
                        if batches.len() >= 64 {
                            break;
                        }
                    }
                    self.process(batches, OffsetDateTime::now_utc());
                    for msg in after {
                        if !self.handle(msg) {
                            return self.stop(OffsetDateTime::now_utc());
                        }
                    }
                }
                other => {
                    if !self.handle(other) {
                        return self.stop(OffsetDateTime::now_utc());
                    }
                }
            }
        }
        self.stop(OffsetDateTime::now_utc());
    }

    /// Handles a message other than lines; false means stop.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Lines(source, lines) => {
                self.process(vec![(source, lines)], OffsetDateTime::now_utc())
            }
            Msg::Job(job) => job(self),
            Msg::Tick => self.tick(OffsetDateTime::now_utc()),
            Msg::Stop => return false,
        }
        true
    }

    /// Commits the stall figures not yet committed; `now` is the wall clock.
    pub(crate) fn stop(&mut self, now: OffsetDateTime) {
        let mut batch = Batch::new();
        batch.hourly = self.record_stall(now);
        batch.hourly.extend(self.hourly.flush());
        self.commit(&batch, false);
        tracing::info!("core stopped; the kernel set keeps the listings");
    }

    /// Parses, judges, enforces and commits one or more batches of lines; `now` is the wall
    /// clock (events are counted in the hour of their log time, but never ahead of `now`).
    pub(crate) fn process(&mut self, batches: Vec<(usize, Vec<Line>)>, now: OffsetDateTime) {
        let mut decisions: Vec<Decision> = Vec::new();
        let mut batch = Batch::new();
        let mut hours = BatchHours::new();
        for (source, lines) in batches {
            let Some(src) = self.sources.get_mut(source) else {
                continue;
            };
            for line in &lines {
                src.lines += 1;
                match src.parser.parse(&line.bytes) {
                    Outcome::Event(event) => {
                        src.events += 1;
                        *self.events_by_class.entry(event.class).or_default() += 1;
                        hours.event(event.time, event.class, now);
                        decisions.extend(self.engine.observe_event(&event));
                    }
                    Outcome::Delivered(d) => self.engine.observe_delivery(&d),
                    Outcome::Sender { queue_id, sender } => {
                        self.engine.observe_sender(&queue_id, &sender)
                    }
                    Outcome::NotAnEvent => {}
                    Outcome::Malformed(why) => {
                        tracing::debug!(source = %src.id, reason = why.as_str(), "line skipped");
                    }
                }
            }
            if let Some(t) = lines.iter().rev().find_map(|l| {
                let stamp = crate::parse::header::split(&l.bytes).stamp?;
                src.parser.clock().resolve(&stamp)
            }) {
                src.newest = Some(t);
            }
            if let Some(last) = lines.last() {
                src.position = Some(last.position.clone());
                if let Some(p) = positions::to_store(&last.position) {
                    batch.position(src.id.clone(), p);
                }
            }
        }
        self.enforce(&decisions);
        self.listed += decisions.len() as u64;
        for d in &decisions {
            tracing::info!(
                ip = %crate::policy::decision::ip_text(&d.ip),
                duration_s = d.duration.as_secs(),
                offence = d.offence,
                enforced = d.enforced,
                reason = %d.reason,
                "listed"
            );
            hours.listing(d.time, now);
            batch.list(NewListing {
                net: d.ip,
                since: d.time,
                until: d.until,
                offence: d.offence,
                reason: d.reason.clone(),
                evidence: Evidence::from_lines(d.evidence.iter().cloned()),
                enforced: d.enforced,
                origin: Origin::Policy,
            });
        }
        batch.hourly.extend(hours.into_counts());
        self.commit(&batch, !decisions.is_empty());
    }

    /// Puts enforced decisions into the kernel set at once (before the commit, so that the
    /// latency is the kernel's, not the disk's).
    fn enforce(&mut self, decisions: &[Decision]) {
        let items: Vec<(IpNet, Duration)> = decisions
            .iter()
            .filter(|d| d.enforced)
            .map(|d| (d.ip, d.duration))
            .collect();
        if items.is_empty() {
            return;
        }
        if let Some(driver) = &self.driver {
            if let Err(e) = driver.add(&items) {
                tracing::error!(error = %e, "cannot add listings to the kernel set");
            }
        }
    }

    /// Commits a batch; on failure (full disk, read-only file) says so and keeps enforcing: the
    /// lines will be read again after a restart, and the kernel set already holds the listings.
    pub fn commit(&mut self, batch: &Batch, listings_changed: bool) {
        if batch.is_empty() {
            return;
        }
        match self.store.commit(batch) {
            Ok(_) => {
                if self.store_failures > 0 {
                    tracing::info!(after = self.store_failures, "state store writable again");
                }
                self.store_failures = 0;
            }
            Err(e) => {
                self.store_failures += 1;
                if self.store_failures == 1 || self.store_failures.is_power_of_two() {
                    tracing::error!(error = %e, failures = self.store_failures, "cannot commit state; still enforcing");
                }
            }
        }
        if listings_changed {
            self.refresh_live();
        }
    }

    /// Re-reads the live listings for the watcher and the metrics.
    pub fn refresh_live(&mut self) {
        let now = OffsetDateTime::now_utc();
        match self.store.active(now) {
            Ok(active) => {
                self.in_force = active
                    .iter()
                    .map(|l| (l.net, l.ends(), l.offence))
                    .collect();
                let live: Vec<(IpNet, OffsetDateTime)> = active
                    .iter()
                    .filter(|l| l.enforced)
                    .map(|l| (l.net, l.until))
                    .collect();
                if let Ok(mut guard) = self.live.lock() {
                    *guard = live;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the active listings"),
        }
    }

    /// Housekeeping at `now` (the wall clock): expire the engine's counters, commit the stall
    /// figures when due, and once an hour prune old hourly figures and the listings and
    /// offender history that `ban.forget_after` has made irrelevant.
    pub(crate) fn tick(&mut self, now: OffsetDateTime) {
        self.engine.expire(now);
        let due = self.record_stall(now);
        if !due.is_empty() {
            let mut batch = Batch::new();
            batch.hourly = due;
            self.commit(&batch, false);
        }
        if self.hourly.prune_due(now) {
            // Listings and offender history are kept as long as they can still make a repeat
            // offence longer (`ban.forget_after`), so `list --expired` shows them until then.
            let forget_after = self.config.ban.forget_after.get();
            let rules = PruneRules {
                keep_expired: forget_after,
                forget_after,
                keep_hourly: KEEP_HOURLY,
            };
            match self.store.prune(now, rules) {
                Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                    listings = pruned.listings,
                    offenders = pruned.offenders,
                    hours = pruned.hours,
                    "state pruned of what can no longer matter"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune the state database"),
            }
        }
    }

    /// Takes the stall listener's totals into the hourly figures; returns those due a commit.
    fn record_stall(&mut self, now: OffsetDateTime) -> Vec<crate::state::HourlyCounts> {
        let (connections, seconds) = self
            .stall
            .as_ref()
            .map(|s| s.totals())
            .map_or((0, 0), |s| (s.total, s.seconds_held));
        self.hourly.observe(now, connections, seconds)
    }

    /// Ends listings by hand: removes them from the kernel set and the store at once.
    pub fn unlist(&mut self, listings: &[Listing], forget: bool, by: &str) -> Result<(), String> {
        if listings.is_empty() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        if let Some(driver) = &self.driver {
            let nets: Vec<IpNet> = listings.iter().map(|l| l.net).collect();
            driver
                .remove(&nets)
                .map_err(|e| format!("cannot remove from the kernel set: {e}"))?;
        }
        let mut batch = Batch::new();
        for l in listings {
            batch.unlist(Unlisting {
                net: l.net,
                at: now,
                by: by.to_owned(),
                history: if forget {
                    crate::state::model::HistoryOnUnlist::Forget
                } else {
                    crate::state::model::HistoryOnUnlist::Keep
                },
            });
            self.engine.unlisted(l.net, now, forget);
        }
        self.store
            .commit(&batch)
            .map_err(|e| format!("removed from the kernel set, but the state store said: {e}"))?;
        self.refresh_live();
        Ok(())
    }
}

/// Puts the store's active listings into the kernel set with their remaining time, and takes
/// out what the kernel holds that the store says is gone.
pub fn restore_kernel(driver: &Driver, store: &dyn Store) -> Result<(usize, usize), String> {
    let now = OffsetDateTime::now_utc();
    let active = store
        .active(now)
        .map_err(|e| format!("cannot read the active listings: {e}"))?;
    let wanted: Vec<(IpNet, Duration)> = active
        .iter()
        .filter(|l| l.enforced)
        .filter_map(|l| {
            let left = (l.until - now).whole_seconds();
            (left > 0).then(|| (l.net, Duration::from_secs(left.unsigned_abs())))
        })
        .collect();
    let held = driver
        .list()
        .map_err(|e| format!("cannot list the kernel set: {e}"))?;
    let stale: Vec<IpNet> = held
        .iter()
        .map(|(net, _)| *net)
        .filter(|net| !wanted.iter().any(|(w, _)| w == net))
        .collect();
    if !stale.is_empty() {
        driver
            .remove(&stale)
            .map_err(|e| format!("cannot remove stale elements: {e}"))?;
    }
    if !wanted.is_empty() {
        driver
            .add(&wanted)
            .map_err(|e| format!("cannot restore the listings: {e}"))?;
    }
    Ok((wanted.len(), stale.len()))
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
