//! The stall listener: holds every SMTP connection the nft redirect sends it for as long as the
//! sender's own limits allow, at a few dozen bytes and a few microseconds per connection.
//!
//! How it holds a sender: the default strategy answers with a greeting that never ends, an endless
//! multi-line `220-` reply carrying the operator's message, one byte per `interval` (10 s). A
//! default Postfix `smtp` client restarts its 300 s greeting timer on every read and accepts any
//! number of `220-` lines, so it waits until its `daemon_timeout` watchdog (18,000 s = 5 h) ends the
//! delivery attempt; Exim sets one deadline for the whole reply (`command_timeout`, 5 min) and is
//! held exactly that long.
//!
//! How it stays cheap: one thread running one epoll loop ([`listener`]), one FIFO timer queue
//! ([`trickle`]) since every connection waits the same interval, a record of a few dozen bytes per
//! connection, minimal socket buffers, and no reads in the default strategy.
//!
//! Shutdown closes every held connection at once rather than handing them to a successor: the
//! senders see the connection end, retry later, and are diverted and held again by the still
//! loaded nft set, so nothing is lost but the seconds of the restart, while a hand-over (fd passing
//! or systemd's fd store) would add a protocol between versions for that little gain.
//!
//! This module never reads logs, never touches nftables and never decides who is stalled.

pub mod config;
pub mod limits;
pub mod lines;
mod listener;
pub mod socket;
pub mod stats;
mod sys;
pub mod trickle;

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::Socket;
use tracing::{info, warn};

pub use config::{load_stall_section, ConfigError, StallConfig, Strategy};
pub use socket::SocketBuffers;
pub use stats::{IpSnapshot, StallStats, StatsSnapshot};

use listener::{Loop, Plan};

/// The stall listener could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum StallError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The event loop failed (epoll or eventfd).
    #[error("stall listener event loop failed: {0}")]
    Loop(#[source] std::io::Error),
}

/// A bound, ready-to-run stall listener.
///
/// The daemon binds it at start (so that a bad address fails early), runs it on a thread of its
/// own and triggers the [`Shutdown`] from its signal handling:
///
/// ```
/// use tarpit::stall::{Shutdown, Stall, StallConfig};
///
/// let config = StallConfig { listen: vec!["127.0.0.1:0".into()], ..StallConfig::default() };
/// let stall = Stall::bind(&config)?;
/// let stats = stall.stats();
/// let shutdown = Shutdown::new()?;
/// let stop = shutdown.clone();
/// let thread = std::thread::spawn(move || stall.run(&stop));
/// // ... later, on SIGTERM:
/// shutdown.trigger()?;
/// thread.join().expect("stall thread")?;
/// assert_eq!(stats.snapshot().current, 0);
/// # Ok::<(), tarpit::stall::StallError>(())
/// ```
pub struct Stall {
    plan: Plan,
    stats: StallStats,
}

/// Tells a running [`Stall`] to close every held connection and return. Cheap to clone, usable
/// from any thread (e.g. the daemon's signal handling).
#[derive(Debug, Clone)]
pub struct Shutdown {
    wake: Arc<sys::EventFd>,
}

impl Shutdown {
    /// A new, untriggered shutdown handle.
    pub fn new() -> Result<Shutdown, StallError> {
        Ok(Shutdown {
            wake: Arc::new(sys::EventFd::new().map_err(StallError::Loop)?),
        })
    }

    /// Asks the listener to stop; it closes all held connections and `run` returns.
    pub fn trigger(&self) -> Result<(), StallError> {
        self.wake.signal().map_err(StallError::Loop)
    }

    /// Whether [`Shutdown::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.wake.is_signalled()
    }
}

impl Stall {
    /// Checks `config`, raises the open-file limit, fits `max_connections` under it and binds every
    /// listen address, with minimal socket buffers.
    pub fn bind(config: &StallConfig) -> Result<Stall, StallError> {
        Stall::bind_with(config, SocketBuffers::Minimal)
    }

    /// [`Stall::bind`] with a choice of socket buffer sizing (kept for measurements).
    pub fn bind_with(config: &StallConfig, buffers: SocketBuffers) -> Result<Stall, StallError> {
        config.check()?;
        let addrs = config.listen_addrs()?;
        let nofile = limits::raise_nofile();
        let max_connections = limits::effective_max_connections(config.max_connections, nofile);
        let v6_only = addrs.iter().any(SocketAddr::is_ipv4);
        let listeners = addrs
            .iter()
            .map(|&addr| {
                let socket = socket::listen(addr, v6_only, buffers).map_err(|source| {
                    let hint = bind_hint(&source, addr);
                    StallError::Bind { addr, source, hint }
                })?;
                let bound = socket
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .unwrap_or(addr);
                Ok((socket, bound))
            })
            .collect::<Result<Vec<(Socket, SocketAddr)>, StallError>>()?;
        let interval = config.interval.get();
        let (line_len, fits) = lines::line_budget(interval);
        if !fits {
            warn!(
                interval = %config.interval,
                "stall.interval is so long that a reply line takes more than 270 s; Postfix with \
                 smtp_per_record_deadline=yes will give up after 300 s (10s is the default)"
            );
        }
        let (code, banner) = match config.strategy {
            Strategy::Greeting => (220, Vec::new()),
            Strategy::Reply => (
                451,
                format!("220 {}\r\n", config.message.trim()).into_bytes(),
            ),
        };
        let plan = Plan {
            listeners,
            interval,
            strategy: config.strategy,
            max_connections,
            max_per_ip: config.max_per_ip,
            lines: lines::Lines::new(code, &config.message, line_len),
            banner,
        };
        Ok(Stall {
            plan,
            stats: StallStats::new(),
        })
    }

    /// The addresses actually bound (with the real port when `:0` was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.plan.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// `max_connections` after fitting it under the open-file limit.
    pub fn max_connections(&self) -> usize {
        self.plan.max_connections
    }

    /// A shareable handle to the counters.
    pub fn stats(&self) -> StallStats {
        self.stats.clone()
    }

    /// Holds connections until `shutdown` is triggered, then closes all of them and returns.
    /// Blocks the calling thread: the daemon runs it on a thread of its own.
    pub fn run(self, shutdown: &Shutdown) -> Result<(), StallError> {
        info!(
            listen = ?self.local_addrs(),
            interval = ?self.plan.interval,
            strategy = ?self.plan.strategy,
            max_connections = self.plan.max_connections,
            max_per_ip = self.plan.max_per_ip,
            line = %String::from_utf8_lossy(self.plan.lines.cycle()).lines().next().unwrap_or(""),
            "stall listener holding connections"
        );
        let mut event_loop =
            Loop::new(&self.plan, &self.stats, &shutdown.wake).map_err(StallError::Loop)?;
        event_loop.run().map_err(StallError::Loop)
    }
}

fn bind_hint(error: &std::io::Error, addr: SocketAddr) -> &'static str {
    match error.raw_os_error() {
        Some(libc::EADDRINUSE) => "; another process (or an earlier tarpitd) uses that port",
        Some(libc::EACCES) => "; ports below 1024 need root or CAP_NET_BIND_SERVICE",
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL) if addr.is_ipv6() => {
            "; this host seems to have no IPv6: set stall.listen to [\"0.0.0.0:2525\"]"
        }
        Some(libc::EADDRNOTAVAIL) => "; that address is not configured on this host",
        _ => "",
    }
}
