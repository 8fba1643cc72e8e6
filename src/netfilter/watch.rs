//! A watchdog thread that notices when tarpit's table was flushed or deleted (for example by
//! `nft flush ruleset` or a firewall reload) and rebuilds it with the caller's live listings.
//!
//! It holds no listings itself: on damage it asks the caller's callback for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::IpNet;

use super::driver::{Driver, Health};

/// A running watchdog; stops (and joins its thread) when stopped or dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    repairs: Arc<AtomicU64>,
}

impl Watcher {
    /// Checks the table every `every` and repairs it with `live()` when it is damaged.
    /// The thread runs in the calling thread's network namespace.
    pub fn spawn<F>(driver: Driver, every: Duration, mut live: F) -> std::io::Result<Self>
    where
        F: FnMut() -> Vec<(IpNet, Duration)> + Send + 'static,
    {
        let (stop, stopped) = mpsc::channel::<()>();
        let repairs = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&repairs);
        let handle = std::thread::Builder::new()
            .name("netfilter-watch".to_owned())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                match driver.check() {
                    Ok(Health::Intact) => {}
                    Ok(Health::Damaged(why)) => {
                        tracing::warn!(%why, "tarpit's nftables table was damaged; rebuilding it");
                        let listings = live();
                        match driver.repair(&listings) {
                            Ok(()) => {
                                counter.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(listings = listings.len(), "nftables table rebuilt");
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "rebuilding the nftables table failed")
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "checking the nftables table failed"),
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            handle: Some(handle),
            repairs,
        })
    }

    /// How many times the table was rebuilt.
    pub fn repairs(&self) -> u64 {
        self.repairs.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("the netfilter watch thread panicked");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
