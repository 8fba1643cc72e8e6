//! The control socket's requests, answered by the core.
//!
//! Each request becomes a job that runs on the core thread between two batches of lines, so it
//! sees a consistent state and changes it the same way the policy does: kernel set first, then
//! one transaction in the store.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::control::address::Address;
use crate::control::handler::ControlHandler;
use crate::control::protocol::{
    self, AddRequest, Added, AllowVerdict, ControlError, DaemonMode, Flushed, History, HistoryDays,
    HostReport, Reloaded, Removed, SourcePosition, SourceStatus, StallFigures, Stats, Status,
    StatusCounts,
};
use crate::event::EventClass;
use crate::policy::config::Mode;
use crate::source::position::Position;
use crate::state::hourly::HourlyCounts;
use crate::state::model::{Evidence, Listing, NewListing, Origin};
use crate::state::store::Batch;

use super::core::{Core, Job, Msg};

/// Answers control requests by handing them to the core.
pub struct Handler {
    tx: mpsc::Sender<Msg>,
}

impl Handler {
    /// A handler that sends its jobs down `tx`.
    pub fn new(tx: mpsc::Sender<Msg>) -> Self {
        Handler { tx }
    }

    /// Runs `f` on the core between two batches and hands back its answer.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, ControlError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |core| {
            let _ = reply.send(f(core));
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| ControlError::internal("the daemon is shutting down"))?;
        answer
            .await
            .map_err(|_| ControlError::internal("the daemon stopped before answering"))?
    }
}

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::internal(e.to_string())
}

fn to_protocol(l: &Listing, now: OffsetDateTime) -> protocol::Listing {
    crate::control::views::listing(l, now)
}

/// The active listings that cover `address` (a host inside a listed /64 finds the /64).
fn covering(
    core: &Core,
    address: Address,
    now: OffsetDateTime,
) -> Result<Vec<Listing>, ControlError> {
    let net = address.net();
    if address.is_host() {
        return core.store.covering(net.addr(), now).map_err(internal);
    }
    Ok(core
        .store
        .active(now)
        .map_err(internal)?
        .into_iter()
        .filter(|l| net.contains(&l.net) || l.net.contains(&net))
        .collect())
}

impl ControlHandler for Handler {
    async fn status(&self) -> Result<Status, ControlError> {
        self.call(|core| {
            let now = OffsetDateTime::now_utc();
            let counts = core.store.counts(now).map_err(internal)?;
            let table_present = core
                .driver
                .as_ref()
                .is_some_and(|d| matches!(d.check(), Ok(crate::netfilter::driver::Health::Intact)));
            Ok(Status {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                started: core.started,
                mode: match core.config.mode {
                    Mode::Enforce => DaemonMode::Enforce,
                    Mode::DryRun => DaemonMode::DryRun,
                },
                config: core.config_path.as_ref().map_or_else(
                    || "built-in defaults".to_owned(),
                    |p| p.display().to_string(),
                ),
                sources: core
                    .sources
                    .iter()
                    .map(|s| SourceStatus {
                        name: s.id.0.clone(),
                        position: s.position.as_ref().map(|p| match p {
                            Position::File(f) => SourcePosition::File {
                                offset: f.offset,
                                inode: f.ino,
                            },
                            Position::Journal(c) => SourcePosition::Journal {
                                cursor: c.0.clone(),
                            },
                        }),
                        lines: s.lines,
                        events: s.events,
                        error: s.error.clone(),
                    })
                    .collect(),
                table: core.config.netfilter.table.clone(),
                table_present,
                counts: StatusCounts {
                    listed: counts.active,
                    enforced: counts.enforced,
                    tracked: core.engine.tracked() as u64,
                    held: core.stall.as_ref().map_or(0, |s| s.totals().current),
                },
            })
        })
        .await
    }

    async fn list(&self, expired: bool) -> Result<Vec<protocol::Listing>, ControlError> {
        self.call(move |core| {
            let now = OffsetDateTime::now_utc();
            let mut all = core.store.active(now).map_err(internal)?;
            if expired {
                all.extend(core.store.expired(now, 10_000).map_err(internal)?);
            }
            all.sort_by(|a, b| a.net.cmp(&b.net).then(a.since.cmp(&b.since)));
            Ok(all.iter().map(|l| to_protocol(l, now)).collect())
        })
        .await
    }

    async fn show(&self, address: Address) -> Result<HostReport, ControlError> {
        self.call(move |core| {
            let now = OffsetDateTime::now_utc();
            let listing = covering(core, address, now)?
                .first()
                .map(|l| to_protocol(l, now));
            let history = crate::control::views::history(
                &core
                    .store
                    .listings_of(address.net(), 50)
                    .map_err(internal)?,
            );
            let allowed = core.engine.allowed(address.net().addr(), now);
            Ok(HostReport {
                address,
                listing,
                history,
                allowlist: AllowVerdict {
                    allowed: allowed.is_some(),
                    reason: allowed.map(|r| r.to_string()),
                },
            })
        })
        .await
    }

    async fn add(&self, request: AddRequest) -> Result<Added, ControlError> {
        self.call(move |core| {
            let now = OffsetDateTime::now_utc();
            let net = request.address.net();
            let allowed = core.engine.allowed(net.addr(), now);
            if let Some(why) = &allowed {
                if !request.force {
                    return Err(ControlError::refused(format!(
                        "{} is allowlisted ({why}); add --force to list it anyway",
                        request.address
                    )));
                }
            }
            let previous = core.store.history(net).map_err(internal)?;
            let offence = previous.map_or(1, |h| h.offences.saturating_add(1));
            let duration = match request.duration {
                Some(d) => d.get(),
                None => escalated(core, offence),
            };
            let until = now + duration;
            let replaced = !covering(core, request.address, now)?.is_empty();
            let enforced = core.config.mode == Mode::Enforce;
            if enforced {
                if let Some(driver) = &core.driver {
                    driver
                        .add(&[(net, duration)])
                        .map_err(|e| internal(format!("cannot add to the kernel set: {e}")))?;
                }
            }
            let reason = request
                .reason
                .clone()
                .unwrap_or_else(|| "listed by hand".to_owned());
            let mut batch = Batch::new();
            batch.list(NewListing {
                net,
                since: now,
                until,
                offence,
                reason: reason.clone(),
                evidence: Evidence::from_lines(Vec::<String>::new()),
                enforced,
                origin: Origin::Manual {
                    by: "tarpitctl".to_owned(),
                },
            });
            let mut hour = HourlyCounts::zero(now);
            hour.listings = 1;
            batch.add_hourly(hour);
            core.store.commit(&batch).map_err(internal)?;
            core.engine.restore(net, offence, until);
            core.listed += 1;
            core.refresh_live();
            tracing::info!(ip = %net, duration_s = duration.as_secs(), offence, reason = %reason, "listed by hand");
            let listing = core
                .store
                .get(net, now)
                .map_err(internal)?
                .ok_or_else(|| internal("the listing was committed but cannot be read back"))?;
            Ok(Added {
                listing: to_protocol(&listing, now),
                replaced,
                forced: allowed.is_some(),
            })
        })
        .await
    }

    async fn del(&self, address: Address, forget: bool) -> Result<Removed, ControlError> {
        self.call(move |core| {
            let now = OffsetDateTime::now_utc();
            let found = covering(core, address, now)?;
            if found.is_empty() {
                return Err(ControlError::not_found(format!("{address} is not listed")));
            }
            core.unlist(&found, forget, "tarpitctl").map_err(internal)?;
            for l in &found {
                tracing::info!(ip = %l.net, forget, "unlisted by hand");
            }
            Ok(Removed {
                removed: found.iter().map(|l| Address::from(l.net)).collect(),
                forgotten: forget,
            })
        })
        .await
    }

    async fn flush(&self) -> Result<Flushed, ControlError> {
        self.call(|core| {
            let now = OffsetDateTime::now_utc();
            let all = core.store.active(now).map_err(internal)?;
            core.unlist(&all, false, "tarpitctl flush")
                .map_err(internal)?;
            tracing::info!(count = all.len(), "flushed every listing");
            Ok(Flushed {
                removed: all.len() as u64,
            })
        })
        .await
    }

    async fn stats(&self) -> Result<Stats, ControlError> {
        self.call(|core| {
            let now = OffsetDateTime::now_utc();
            let active = core.store.active(now).map_err(internal)?;
            let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
            for l in &active {
                // A listing's reason names the classes that led to it ("5× unknown-recipient").
                for class in EventClass::ALL {
                    if l.reason.contains(class.as_str()) {
                        *by_class.entry(class.as_str().to_owned()).or_default() += 1;
                    }
                }
            }
            let diverted = core
                .driver
                .as_ref()
                .and_then(|d| d.diverted().ok())
                .map_or(0, |d| d.packets);
            let stall = core.stall.as_ref().map(|s| s.totals());
            Ok(Stats {
                listings_by_class: by_class,
                listings_by_duration: protocol::duration_buckets(active.iter().map(|l| {
                    Duration::from_secs((l.until - l.since).whole_seconds().max(0).unsigned_abs())
                })),
                events_by_class: core
                    .events_by_class
                    .iter()
                    .map(|(c, n)| (c.as_str().to_owned(), *n))
                    .collect(),
                diverted_packets: diverted,
                stall: stall.map_or_else(StallFigures::default, |s| StallFigures {
                    held_now: s.current,
                    total: s.total,
                    seconds_wasted: s.seconds_held,
                }),
            })
        })
        .await
    }

    async fn history(&self, days: HistoryDays) -> Result<History, ControlError> {
        self.call(move |core| {
            let now = OffsetDateTime::now_utc();
            let from = crate::control::views::history_from(days, now);
            let mut hours = core.store.hourly(from).map_err(internal)?;
            // The stall figures of the last minute are not committed yet: add them.
            if let Some(pending) = core.hourly.pending() {
                match hours.iter_mut().find(|h| h.hour == pending.hour) {
                    Some(h) => h.add(pending),
                    None => hours.push(pending.clone()),
                }
            }
            Ok(crate::control::views::hourly_history(&hours, from, now))
        })
        .await
    }

    async fn reload(&self) -> Result<Reloaded, ControlError> {
        self.call(super::reload::reload).await
    }
}

/// The escalated duration of offence number `offence`: `first × factor^(offence−1)`, capped.
fn escalated(core: &Core, offence: u32) -> Duration {
    let ban = &core.config.ban;
    let exp = i32::try_from(offence.saturating_sub(1).min(64)).unwrap_or(64);
    let secs =
        (ban.first.get().as_secs_f64() * ban.factor.powi(exp)).min(ban.max.get().as_secs_f64());
    Duration::from_secs_f64(secs.max(1.0))
}
