//! The endpoint: a TCP listener on a thread of its own that answers `GET /metrics`.
//!
//! The thread runs a small single-threaded runtime, so a scrape never takes a worker from the
//! daemon's sources, and the daemon never makes a scrape wait. Each connection is a task with
//! hard limits: a bounded request head, a deadline to send it, a deadline to take the answer,
//! and a cap on connections open at once (past it, new ones get a 503 and are closed). A client
//! that sends nothing, sends garbage or sends an endless header therefore costs one task for a
//! few seconds and never holds up another scrape. Figures come from a [`Collect`]or, at most
//! once a second and one collection at a time, however many scrapers ask.
//!
//! It owns the socket and the HTTP exchange; it never counts anything itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Mutex, Semaphore};

use super::http::{self, Response};
use super::render::{render, Format};
use super::snapshot::Snapshot;

/// Where the figures come from, at scrape time.
pub trait Collect: Send + Sync + 'static {
    /// The figures now, or why they cannot be had (the scrape then gets a 503).
    fn collect(&self) -> impl Future<Output = Result<Snapshot, String>> + Send;
}

/// The endpoint's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest request head read, in bytes; a longer one gets a 431.
    pub max_head_bytes: usize,
    /// How long a client has to send its whole request head; a slower one gets a 408.
    pub read_timeout: Duration,
    /// How long a client has to take the whole response.
    pub write_timeout: Duration,
    /// How long a collection may take before the scrape gets a 503.
    pub collect_timeout: Duration,
    /// A collection younger than this is served again rather than asking the daemon again.
    pub reuse: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            collect_timeout: Duration::from_secs(10),
            reuse: Duration::from_secs(1),
            max_connections: 64,
        }
    }
}

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr} for metrics: {source}; free the port or change metrics.listen"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or thread could not be set up.
    #[error("cannot start the metrics thread: {0}")]
    Start(std::io::Error),
}

/// A bound endpoint, not yet serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port, for tests).
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        let bind_err = |source| MetricsError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(MetricsServer { listener, addr })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on a thread of its own until [`MetricsHandle::stop`].
    pub fn spawn<C: Collect>(
        self,
        collector: C,
        limits: Limits,
    ) -> Result<MetricsHandle, MetricsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(MetricsError::Start)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(self.listener).map_err(MetricsError::Start)?
        };
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::new(Shared {
            collector,
            limits,
            last: Mutex::new(None),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
        });
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(serve(listener, shared, stopped)))
            .map_err(MetricsError::Start)?;
        Ok(MetricsHandle {
            addr: self.addr,
            stop,
            thread,
        })
    }
}

/// A running endpoint.
#[derive(Debug)]
pub struct MetricsHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl MetricsHandle {
    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops open connections and waits for the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

struct Shared<C> {
    collector: C,
    limits: Limits,
    /// The last collection and when it was taken; the lock also keeps collections one at a time.
    last: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    slots: Arc<Semaphore>,
}

async fn serve<C: Collect>(
    listener: TcpListener,
    shared: Arc<Shared<C>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: back off rather than spin.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
            let busy = Response::text(503, "too many metrics connections; try again");
            let _ = stream.try_write(&busy.to_bytes(false));
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            exchange(&mut stream, &shared).await;
            drop(slot);
        });
    }
}

/// One request, one response, whatever the client does.
async fn exchange<C: Collect>(stream: &mut TcpStream, shared: &Shared<C>) {
    let limits = shared.limits;
    let (response, head_only) =
        match tokio::time::timeout(limits.read_timeout, read_head(stream, limits)).await {
            Err(_) => (Response::text(408, "the request took too long"), false),
            Ok(Head::Gone) => return,
            Ok(Head::TooLarge) => (Response::text(431, "the request head is too large"), false),
            Ok(Head::Complete(head)) => match http::parse_head(&head) {
                Err(e) => (Response::text(400, &e.to_string()), false),
                Ok(request) => {
                    let head_only = request.method == "HEAD";
                    (answer(&request, shared).await, head_only)
                }
            },
        };
    let bytes = response.to_bytes(head_only);
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Gone,
}

async fn read_head(stream: &mut TcpStream, limits: Limits) -> Head {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = http::head_end(&buf) {
            buf.truncate(end);
            return Head::Complete(buf);
        }
        if buf.len() >= limits.max_head_bytes {
            return Head::TooLarge;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn answer<C: Collect>(request: &http::Request, shared: &Shared<C>) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET and HEAD are served");
    }
    if request.path != "/metrics" {
        return Response::text(404, "not found; the metrics are at /metrics");
    }
    let snapshot = match snapshot(shared).await {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(error = %why, "metrics endpoint: no figures for a scrape");
            return Response::text(503, &why);
        }
    };
    let format = Format::negotiate(request.accept.as_deref());
    match render(&snapshot, format) {
        Ok(body) => Response {
            status: 200,
            content_type: format.content_type(),
            body: body.into_bytes(),
        },
        Err(_) => Response::text(503, "the figures could not be written out"),
    }
}

/// The last collection if it is recent enough, else a new one.
async fn snapshot<C: Collect>(shared: &Shared<C>) -> Result<Arc<Snapshot>, String> {
    let limits = shared.limits;
    let mut last = match tokio::time::timeout(limits.collect_timeout, shared.last.lock()).await {
        Ok(guard) => guard,
        Err(_) => return Err("another scrape is still waiting for the daemon".to_owned()),
    };
    if let Some((at, s)) = last.as_ref() {
        if at.elapsed() < limits.reuse {
            return Ok(s.clone());
        }
    }
    let fresh = tokio::time::timeout(limits.collect_timeout, shared.collector.collect())
        .await
        .map_err(|_| "the daemon did not answer in time".to_owned())??;
    let fresh = Arc::new(fresh);
    *last = Some((Instant::now(), fresh.clone()));
    Ok(fresh)
}
