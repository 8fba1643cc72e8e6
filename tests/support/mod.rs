//! A control server backed by an in-memory [`MockHandler`], on a socket in a temp dir, for the
//! control socket and `tarpitctl` tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tarpit::control::address::Address;
use tarpit::control::config::ControlConfig;
use tarpit::control::handler::ControlHandler;
use tarpit::control::protocol::{
    duration_buckets, AddRequest, Added, AllowVerdict, ControlError, DaemonMode, ErrorCode,
    Flushed, History, HistoryDays, HostReport, HourFigures, Listing, ListingSource, Offence,
    Reloaded, Removed, SourcePosition, SourceStatus, StallFigures, Stats, Status, StatusCounts,
};
use tarpit::control::server::{ControlServer, ServerLimits};
use time::OffsetDateTime;

/// The mock's clock: every listing starts now.
pub const NOW: OffsetDateTime = time::macros::datetime!(2026-12-04 10:00 UTC);

/// An in-memory daemon: listings, histories, an allowlist of 10.0.0.0/8.
#[derive(Default)]
pub struct MockHandler {
    pub listings: Mutex<BTreeMap<Address, Listing>>,
    pub history: Mutex<BTreeMap<Address, Vec<Offence>>>,
    pub reject_reload: AtomicBool,
}

fn allowed(address: Address) -> bool {
    let private: Address = "10.0.0.0/8".parse().unwrap();
    private.contains(address)
}

fn covering(listings: &BTreeMap<Address, Listing>, address: Address) -> Option<Address> {
    listings.keys().copied().find(|k| k.contains(address))
}

impl ControlHandler for MockHandler {
    async fn status(&self) -> Result<Status, ControlError> {
        let listed = self.listings.lock().unwrap().len() as u64;
        Ok(Status {
            version: "0.1.0".into(),
            pid: 4242,
            started: NOW,
            mode: DaemonMode::Enforce,
            config: "/etc/tarpit/tarpit.yaml".into(),
            sources: vec![SourceStatus {
                name: "/var/log/mail.log".into(),
                position: Some(SourcePosition::File {
                    offset: 1234,
                    inode: 99,
                }),
                lines: 10,
                events: 3,
                error: None,
            }],
            table: "inet tarpit".into(),
            table_present: true,
            counts: StatusCounts {
                listed,
                enforced: listed,
                tracked: 5,
                held: 2,
            },
        })
    }

    async fn list(&self, _expired: bool) -> Result<Vec<Listing>, ControlError> {
        Ok(self.listings.lock().unwrap().values().cloned().collect())
    }

    async fn show(&self, address: Address) -> Result<HostReport, ControlError> {
        let listings = self.listings.lock().unwrap();
        let key = covering(&listings, address);
        let listing = key.and_then(|k| listings.get(&k).cloned());
        let history = key
            .or(Some(address))
            .and_then(|k| self.history.lock().unwrap().get(&k).cloned())
            .unwrap_or_default();
        Ok(HostReport {
            address,
            listing,
            history,
            allowlist: AllowVerdict {
                allowed: allowed(address),
                reason: allowed(address).then(|| "allow: 10.0.0.0/8".to_owned()),
            },
        })
    }

    async fn add(&self, request: AddRequest) -> Result<Added, ControlError> {
        let forced = allowed(request.address);
        if forced && !request.force {
            return Err(ControlError::refused(format!(
                "{} is allowlisted (allow: 10.0.0.0/8); use --force to list it anyway",
                request.address
            )));
        }
        let secs = request.duration.map_or(3600, |d| d.get().as_secs());
        let mut history = self.history.lock().unwrap();
        let past = history.entry(request.address).or_default();
        let reason = request.reason.unwrap_or_else(|| "listed by hand".into());
        past.push(Offence {
            at: NOW,
            duration_secs: secs,
            reason: reason.clone(),
            source: ListingSource::Manual,
        });
        let listing = Listing {
            address: request.address,
            since: NOW,
            until: NOW + Duration::from_secs(secs),
            remaining_secs: secs,
            offences: past.len() as u32,
            reason,
            evidence: vec!["Dec  4 10:00:00 mx postfix/smtpd[1]: NOQUEUE: reject".into()],
            enforced: true,
            source: ListingSource::Manual,
        };
        let replaced = self
            .listings
            .lock()
            .unwrap()
            .insert(request.address, listing.clone())
            .is_some();
        Ok(Added {
            listing,
            replaced,
            forced,
        })
    }

    async fn del(&self, address: Address, forget: bool) -> Result<Removed, ControlError> {
        let mut listings = self.listings.lock().unwrap();
        let Some(key) = covering(&listings, address) else {
            return Err(ControlError::not_found(format!("{address} is not listed")));
        };
        listings.remove(&key);
        if forget {
            self.history.lock().unwrap().remove(&key);
        }
        Ok(Removed {
            removed: vec![key],
            forgotten: forget,
        })
    }

    async fn flush(&self) -> Result<Flushed, ControlError> {
        let mut listings = self.listings.lock().unwrap();
        let removed = listings.len() as u64;
        listings.clear();
        Ok(Flushed { removed })
    }

    async fn stats(&self) -> Result<Stats, ControlError> {
        let listings = self.listings.lock().unwrap();
        let mut by_class = BTreeMap::new();
        if !listings.is_empty() {
            by_class.insert("manual".to_owned(), listings.len() as u64);
        }
        Ok(Stats {
            listings_by_class: by_class,
            listings_by_duration: duration_buckets(listings.values().map(|l| l.remaining())),
            events_by_class: BTreeMap::from([("unknown-recipient".to_owned(), 7)]),
            diverted_packets: 11,
            stall: StallFigures {
                held_now: 2,
                total: 9,
                seconds_wasted: 3600,
            },
        })
    }

    async fn history(&self, days: HistoryDays) -> Result<History, ControlError> {
        let listings = self.listings.lock().unwrap().len() as u64;
        Ok(History {
            from: NOW.replace_time(time::Time::MIDNIGHT)
                - time::Duration::days(i64::from(days.get()) - 1),
            now: NOW,
            hours: vec![HourFigures {
                start: NOW,
                listings,
                events: 7,
                events_by_class: BTreeMap::from([("unknown-recipient".to_owned(), 7)]),
                held_connections: 9,
                held_seconds: 3600,
            }],
        })
    }

    async fn reload(&self) -> Result<Reloaded, ControlError> {
        if self.reject_reload.load(Ordering::SeqCst) {
            return Err(ControlError::new(
                ErrorCode::ConfigRejected,
                "/etc/tarpit/tarpit.yaml: line 3: unknown field `polcy`; the old configuration stays in force",
            ));
        }
        Ok(Reloaded {
            config: "/etc/tarpit/tarpit.yaml".into(),
            changes: vec!["policy.threshold: 10 -> 12".into()],
        })
    }
}

/// A server running on its own runtime thread until dropped.
pub struct Running {
    pub socket: PathBuf,
    pub handler: Arc<MockHandler>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The name of the group this process runs with, so that `chown` of the socket works as any
/// user.
pub fn own_group() -> String {
    let gid = nix::unistd::getgid();
    nix::unistd::Group::from_gid(gid)
        .unwrap()
        .map(|g| g.name)
        .unwrap_or_else(|| "root".into())
}

/// Starts a mock server on `<tempdir>/run/control.sock` with `group` and `limits`.
pub fn start(group: &str, limits: ServerLimits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    // Unprivileged test clients must be able to reach the socket's directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("run").join("control.sock");
    let config = ControlConfig {
        socket: socket.clone(),
        group: group.to_owned(),
    };
    let handler = Arc::new(MockHandler::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let h = Arc::clone(&handler);
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = match ControlServer::bind(&config) {
                Ok(s) => s.with_limits(limits),
                Err(e) => {
                    ready_tx.send(Err(e.to_string())).unwrap();
                    return;
                }
            };
            ready_tx.send(Ok(())).unwrap();
            server
                .serve(h, async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    ready_rx.recv().unwrap().expect("server binds");
    Running {
        socket,
        handler,
        dir,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

impl Running {
    /// Stops the server and waits for it to finish.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: {test} because it needs root to run a client as another user");
    false
}
