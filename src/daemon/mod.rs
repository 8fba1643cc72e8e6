//! The daemon: wires the stages together and runs them until told to stop.
//!
//! One place builds everything, in this order: the state store; the policy engine with the
//! offender history restored; the nftables table (ensured, then made to hold exactly the store's
//! active listings with their remaining time); the stall listener on its own thread; the
//! netfilter watcher that rebuilds a flushed table; the core thread that owns engine, store and
//! kernel set; the metrics endpoint, when configured, on its own thread; one reader per log
//! source; the control socket; the signal handlers. Data flows one way: sources → core (parse →
//! policy → kernel set → store).
//!
//! SIGTERM/SIGINT: the core commits what it has and stops, the stall listener closes its
//! connections, and the kernel set keeps the listings (they survive a restart; `tarpitd
//! --teardown` removes them). SIGHUP: reload (see [`reload`]).

pub mod core;
pub mod handler;
pub mod hourly;
pub mod metrics;
pub mod positions;
pub mod reload;
pub mod warmup;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::config::Loaded;
use crate::control::replay::load_rules as load_rule_files;
use crate::control::server::ControlServer;
use crate::metrics::{Limits, MetricsServer};
use crate::netfilter::{Action, Driver, Watcher};
use crate::parse::clock::Clock;
use crate::parse::rules::RuleSet;
use crate::parse::Parser;
use crate::policy::config::Mode;
use crate::policy::engine::Engine;
use crate::source::config::SourceConfig;
use crate::source::follow::{FileSource, FollowOptions};
use crate::source::journald::JournaldSource;
use crate::source::position::Position;
use crate::stall::{Shutdown, Stall};
use crate::state::model::SourceId;
use crate::state::store::Store;
use crate::state::SqliteStore;

use self::core::{Core, Live, Msg, SourceState};

/// The daemon could not start, or failed while running.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct DaemonError {
    /// What it was doing.
    pub step: &'static str,
    /// What went wrong, and what to do.
    pub message: String,
}

fn fail(step: &'static str) -> impl Fn(&dyn std::fmt::Display) -> DaemonError {
    move |e| DaemonError {
        step,
        message: e.to_string(),
    }
}

/// The rule sets with the operator's files in front.
pub fn load_rules(files: &[PathBuf]) -> Result<(RuleSet, RuleSet), DaemonError> {
    load_rule_files(files).map_err(|e| fail("loading rule files")(&e))
}

/// This host's own addresses (never listed).
fn own_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter_map(|a| a.address)
            .filter_map(|s| {
                if let Some(v4) = s.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this host's own addresses");
            Vec::new()
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(loaded: Loaded) -> Result<(), DaemonError> {
    let config = loaded.config.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("tarpitd")
        .build()
        .map_err(|e| fail("starting the runtime")(&e))?;

    // State first: everything else is restored from it.
    let store =
        SqliteStore::open(&config.state.path).map_err(|e| fail("opening the state store")(&e))?;
    let own = own_addresses();
    let mut engine = Engine::new(&config.policy_section(), own.clone());
    let rules = load_rules(&config.rules)?;
    let saved = store
        .positions()
        .map_err(|e| fail("reading source positions")(&e))?;
    for source in &config.sources {
        let resume = saved
            .iter()
            .find(|(s, _)| s.0 == source.key())
            .and_then(|(_, p)| positions::from_store(p));
        let (SourceConfig::File { path, .. }, Some(Position::File(at))) = (source, resume) else {
            continue;
        };
        let parser = Parser::new(
            rules.0.clone(),
            rules.1.clone(),
            source.mta(),
            Clock::live(),
        );
        let n = warmup::warm_up(&mut engine, &parser, path, &at);
        tracing::info!(path = %path.display(), lines = n, "counters rebuilt from the lines read before the restart");
    }
    // The warm-up's own listings were decided (and perhaps ended by hand) by the previous run;
    // the store's word on them wins.
    engine.forget_listings();
    let offenders = store
        .offenders()
        .map_err(|e| fail("reading offender history")(&e))?;
    for o in &offenders {
        engine.restore(o.net, o.offences, o.last_listing_end);
    }

    // The kernel set holds exactly the store's active listings.
    let enforce = config.mode == Mode::Enforce;
    let driver = if enforce {
        let d = Driver::new(&config.netfilter).map_err(|e| fail("opening netlink")(&e))?;
        d.ensure()
            .map_err(|e| fail("creating the nftables table")(&e))?;
        let (restored, removed) =
            self::core::restore_kernel(&d, &store).map_err(|e| fail("restoring listings")(&e))?;
        tracing::info!(restored, removed, table = %config.netfilter.table, "kernel set matches the state store");
        Some(d)
    } else {
        tracing::info!("dry-run: deciding and recording, enforcing nothing");
        None
    };

    // The stall listener, on its own thread.
    let stall_shutdown = Shutdown::new().map_err(|e| fail("starting the stall listener")(&e))?;
    let mut stall_thread = None;
    let mut stall_stats = None;
    if enforce && config.netfilter.action == Action::Stall {
        let stall =
            Stall::bind(&config.stall).map_err(|e| fail("binding the stall listener")(&e))?;
        stall_stats = Some(stall.stats());
        let shutdown = stall_shutdown.clone();
        stall_thread = Some(
            std::thread::Builder::new()
                .name("stall".into())
                .spawn(move || {
                    if let Err(e) = stall.run(&shutdown) {
                        tracing::error!(error = %e, "the stall listener stopped");
                    }
                })
                .map_err(|e| fail("starting the stall thread")(&e))?,
        );
    }

    // The metrics endpoint's socket, bound now so that a taken port stops the start here.
    let metrics_server = config
        .metrics
        .listen
        .map(|addr| MetricsServer::bind(addr.get()))
        .transpose()
        .map_err(|e| fail("starting the metrics endpoint")(&e))?;

    // The watcher rebuilds a flushed or deleted table with the live listings.
    let live: Live = Arc::new(Mutex::new(Vec::new()));
    let watcher = if enforce {
        let d = Driver::new(&config.netfilter).map_err(|e| fail("opening netlink")(&e))?;
        let live = live.clone();
        Some(
            Watcher::spawn(d, Duration::from_secs(2), move || {
                let now = OffsetDateTime::now_utc();
                live.lock()
                    .map(|l| {
                        l.iter()
                            .filter_map(|(net, until)| {
                                let left = (*until - now).whole_seconds();
                                (left > 0).then(|| (*net, Duration::from_secs(left.unsigned_abs())))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .map_err(|e| fail("starting the netfilter watcher")(&e))?,
        )
    } else {
        None
    };

    // The core, and the sources that feed it.
    let (tx, rx) = mpsc::channel::<Msg>(64);
    let mut sources = Vec::new();
    let mut starts = Vec::new();
    for source in &config.sources {
        let id = SourceId(source.key());
        let start = saved
            .iter()
            .find(|(s, _)| *s == id)
            .and_then(|(_, p)| positions::from_store(p));
        let parser = Parser::new(
            rules.0.clone(),
            rules.1.clone(),
            source.mta(),
            Clock::live(),
        );
        sources.push(SourceState {
            id,
            mta: source.mta(),
            parser,
            lines: 0,
            events: 0,
            newest: None,
            position: start.clone(),
            error: None,
        });
        starts.push((source.clone(), start));
    }
    let mut core = Core {
        config: config.clone(),
        config_path: loaded.path.clone(),
        engine,
        store: Box::new(store),
        driver,
        sources,
        live,
        events_by_class: Default::default(),
        started: OffsetDateTime::now_utc(),
        own,
        stall: stall_stats,
        store_failures: 0,
        hourly: self::hourly::StallHours::new(),
        listed: 0,
        in_force: Vec::new(),
    };
    core.refresh_live();
    let core_thread = std::thread::Builder::new()
        .name("core".into())
        .spawn(move || core.run(rx))
        .map_err(|e| fail("starting the core thread")(&e))?;

    let handler = Arc::new(handler::Handler::new(tx.clone()));
    let metrics = match metrics_server {
        Some(server) => {
            let handle = server
                .spawn(
                    self::metrics::CoreCollector(handler.clone()),
                    Limits::default(),
                )
                .map_err(|e| fail("starting the metrics endpoint")(&e))?;
            tracing::info!(address = %handle.local_addr(), "metrics served at http://{}/metrics", handle.local_addr());
            Some(handle)
        }
        None => None,
    };

    let result = runtime.block_on(async {
        for (i, (source, start)) in starts.into_iter().enumerate() {
            spawn_source(i, source, start, tx.clone())?;
        }
        let server = ControlServer::bind(&config.control)
            .map_err(|e| fail("creating the control socket")(&e))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stop_server = stop_rx.clone();
        let server_task = tokio::spawn(server.serve(handler.clone(), async move {
            let _ = stop_server.wait_for(|s| *s).await;
        }));
        let ticks = tx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                if ticks.send(Msg::Tick).await.is_err() {
                    break;
                }
            }
        });
        spawn_spf(&config, tx.clone());
        wait_for_signals(tx.clone()).await?;
        let _ = stop_tx.send(true);
        let _ = tx.send(Msg::Stop).await;
        let _ = server_task.await;
        Ok::<(), DaemonError>(())
    });
    // Every sender goes before the core is joined: it also stops when the last one is gone.
    if let Some(m) = metrics {
        m.stop();
    }
    drop(handler);
    drop(tx);
    let _ = core_thread.join();
    if let Some(t) = stall_thread {
        let _ = stall_shutdown.trigger();
        let _ = t.join();
    }
    if let Some(w) = watcher {
        w.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!("stopped");
    result
}

/// Starts reading one source; its lines go to the core in batches.
fn spawn_source(
    index: usize,
    source: SourceConfig,
    start: Option<Position>,
    tx: mpsc::Sender<Msg>,
) -> Result<(), DaemonError> {
    match source {
        SourceConfig::File { path, .. } => {
            let start = match start {
                Some(Position::File(f)) => Some(f),
                _ => None,
            };
            tracing::info!(path = %path.display(), resume = start.is_some(), "following");
            let mut file = FileSource::spawn(path, start, FollowOptions::default())
                .map_err(|e| fail("starting a file follower")(&e))?;
            tokio::spawn(async move {
                while let Some(batch) = file.next_batch().await {
                    if tx.send(Msg::Lines(index, batch)).await.is_err() {
                        break;
                    }
                }
            });
        }
        SourceConfig::Journald { journald, .. } => {
            let start = match start {
                Some(Position::Journal(c)) => Some(c),
                _ => None,
            };
            let mut journal = JournaldSource::spawn(&journald, start)
                .map_err(|e| fail("starting journalctl")(&e))?;
            tokio::spawn(async move {
                loop {
                    match journal.next_line().await {
                        Ok(line) => {
                            if tx.send(Msg::Lines(index, vec![line])).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the journald source failed; retrying in 5 s");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
        }
    }
    Ok(())
}

/// Resolves `policy.allow_spf` at start and every 4 hours, off the runtime's threads.
fn spawn_spf(config: &crate::config::Config, tx: mpsc::Sender<Msg>) {
    let domains = config.policy.allow_spf.clone();
    if domains.is_empty() {
        return;
    }
    let nameserver = config.policy.spf_nameserver;
    tokio::spawn(async move {
        let mut spf = crate::policy::spf::SpfAllow::default();
        loop {
            let (next, nets) = match tokio::task::spawn_blocking({
                let domains = domains.clone();
                move || {
                    let resolver = crate::policy::spf_dns::DnsResolver::new(nameserver);
                    (resolver, domains)
                }
            })
            .await
            {
                Ok((Ok(resolver), domains)) => {
                    let failures = spf.refresh(&resolver, &domains);
                    for f in failures {
                        tracing::warn!(error = %f, "SPF lookup failed; keeping the last good answer");
                    }
                    (spf.clone(), spf.networks())
                }
                Ok((Err(e), _)) => {
                    tracing::warn!(error = %e, "cannot set up the SPF resolver");
                    (spf.clone(), spf.networks())
                }
                Err(_) => break,
            };
            spf = next;
            let job: self::core::Job = Box::new(move |core: &mut Core| core.engine.set_spf(nets));
            if tx.send(Msg::Job(job)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
        }
    });
}

/// Waits for SIGTERM or SIGINT; SIGHUP reloads on the way.
async fn wait_for_signals(tx: mpsc::Sender<Msg>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| fail("installing SIGTERM")(&e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| fail("installing SIGINT")(&e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| fail("installing SIGHUP")(&e))?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()); }
            _ = hup.recv() => {
                let job: self::core::Job = Box::new(|core: &mut Core| {
                    if let Err(e) = reload::reload(core) {
                        tracing::error!(error = %e.message, "reload refused");
                    }
                });
                let _ = tx.send(Msg::Job(job)).await;
            }
        }
    }
}
