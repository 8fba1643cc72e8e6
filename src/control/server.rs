//! The daemon's side of the control socket: bind, admit peers, read requests, answer them.
//!
//! Owns the Unix socket file (created with mode 0660, group = `control.group`, parent directory
//! created, a stale file replaced), the accept loop and one task per connection. Every request
//! goes to a [`ControlHandler`]; this module never touches state, the kernel or the config.
//!
//! Bounds, so that a local client cannot hurt the daemon: at most
//! [`ServerLimits::max_connections`] connections at once (more get a `busy` reply and are
//! closed); request lines of at most [`ServerLimits::max_request_bytes`] (a longer one gets a
//! `bad_request` reply and the connection is closed); a connection idle for
//! [`ServerLimits::idle_timeout`] is closed; a reply that cannot be written within
//! [`ServerLimits::write_timeout`] closes the connection.
//!
//! Wiring it into the daemon: implement [`ControlHandler`] on the daemon's shared state, then
//! inside the runtime `ControlServer::bind(&config.control)?` (at start, so a bad group or a
//! socket in use stops the daemon with a clear error) and spawn
//! `server.serve(Arc::new(handler), shutdown)`, where `shutdown` is the daemon's shutdown future.
//! When `serve` returns, the socket file is gone.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::config::ControlConfig;
use super::connection::{encode_reply, Connection, Frame};
use super::handler::{dispatch, ControlHandler};
use super::peer::{ControlGroup, GroupError, Peer, Verdict};
use super::protocol::{ControlError, ErrorCode, Reply, Request, MAX_REQUEST_BYTES};

/// The socket file's mode: owner and group may connect, nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// How much a client may ask of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The longest request line, newline included. Default 64 KiB.
    pub max_request_bytes: usize,
    /// Connections served at once. Default 32.
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// A request the handler has not answered in this long gets an `internal` error (the
    /// handler's work still runs to its end). Default 60 s.
    pub request_timeout: Duration,
    /// A reply the peer does not take in this long closes the connection. Default 10 s.
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_request_bytes: MAX_REQUEST_BYTES,
            max_connections: 32,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `control.group` is wrong.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The socket's directory could not be created.
    #[error("cannot create the control socket's directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another daemon answers on the socket.
    #[error("control socket {0} is in use by a running daemon; stop it first, or set control.socket to another path")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("{0} exists and is not a socket; remove it or set control.socket to another path")]
    NotASocket(PathBuf),
    /// Binding, removing the stale file, or setting mode and group failed.
    #[error("cannot set up the control socket {path}: {action}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// A bound control socket, ready to serve.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    inode: (u64, u64),
    group: Arc<ControlGroup>,
    limits: ServerLimits,
}

impl ControlServer {
    /// Creates the socket for `config`: resolves the group, creates the parent directory,
    /// replaces a stale socket file (refusing when a daemon still answers on it), binds, and
    /// sets mode 0660 and the group. Must be called inside a tokio runtime.
    pub fn bind(config: &ControlConfig) -> Result<Self, ServerError> {
        let group = ControlGroup::resolve(&config.group)?;
        let path = config.socket.clone();
        let sock_err = |action: &'static str| {
            let path = path.clone();
            move |source| ServerError::Socket {
                path,
                action,
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ServerError::Directory {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        remove_stale(&path)?;
        // Bound under a private name and renamed into place once its mode and group are right,
        // so that there is no moment when the socket is reachable with the umask's mode.
        let staging = staging_path(&path);
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging).map_err(sock_err("bind"))?;
        let placed =
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(SOCKET_MODE))
                .map_err(sock_err("chmod 0660"))
                .and_then(|()| {
                    std::os::unix::fs::chown(&staging, None, Some(group.gid))
                        .map_err(sock_err("chown to the control group"))
                })
                .and_then(|()| {
                    std::fs::rename(&staging, &path).map_err(sock_err("rename into place"))
                });
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        let meta = std::fs::symlink_metadata(&path).map_err(sock_err("stat"))?;
        info!(socket = %path.display(), group = %group.name, "control socket ready");
        Ok(ControlServer {
            listener,
            path,
            inode: (meta.dev(), meta.ino()),
            group: Arc::new(group),
            limits: ServerLimits::default(),
        })
    }

    /// Replaces the default limits.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` completes, then closes every connection and removes the socket
    /// file (unless another process has replaced it meanwhile).
    pub async fn serve<H: ControlHandler>(
        self,
        handler: Arc<H>,
        shutdown: impl Future<Output = ()>,
    ) {
        // A semaphore rather than a counter: a permit is released however a connection task
        // ends, panics included.
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let handler = Arc::clone(&handler);
                    let group = Arc::clone(&self.group);
                    let limits = self.limits;
                    tasks.spawn(async move {
                        serve_connection(stream, handler, group, limits).await;
                        drop(permit);
                    });
                }
                Err(_) => refuse_busy(&stream, self.limits.max_connections),
            }
        }
        tasks.shutdown().await;
        self.remove_socket_file();
    }

    fn remove_socket_file(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.inode)
            .unwrap_or(false);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(socket = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}

/// `control.sock` → `.control.sock.<pid>.new` in the same directory (a rename must not cross
/// file systems).
fn staging_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.new", std::process::id()))
}

/// Removes a socket file left by a daemon that is gone; refuses when one still answers, or when
/// the path is not a socket.
fn remove_stale(path: &Path) -> Result<(), ServerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Socket {
                path: path.to_owned(),
                action: "stat",
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.to_owned()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServerError::InUse(path.to_owned()));
    }
    debug!(socket = %path.display(), "replacing a stale control socket");
    std::fs::remove_file(path).map_err(|source| ServerError::Socket {
        path: path.to_owned(),
        action: "remove the stale socket",
        source,
    })
}

/// Tells a connection over the limit why it is closed, without waiting for it: the reply fits
/// in the empty socket buffer of a new connection.
fn refuse_busy(stream: &UnixStream, max: usize) {
    warn!(max, "control socket: too many connections, refusing one");
    let mut line = encode_reply(&Reply::Error(ControlError::new(
        ErrorCode::Busy,
        format!("the daemon is serving {max} control connections already; try again shortly"),
    )));
    line.push(b'\n');
    let _ = stream.try_write(&line);
}

async fn serve_connection<H: ControlHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    group: Arc<ControlGroup>,
    limits: ServerLimits,
) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            warn!(error = %e, "control socket: cannot read the peer's credentials; closing");
            return;
        }
    };
    let admit_group = Arc::clone(&group);
    // The group database may be NSS over the network: keep it off the runtime's threads.
    let verdict = tokio::task::spawn_blocking(move || admit_group.admit(&peer))
        .await
        .unwrap_or(Verdict::Refused);
    let mut conn = Connection::new(stream, limits.max_request_bytes);
    if verdict == Verdict::Refused {
        warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            group = %group.name,
            "control socket: refused a peer that is neither root nor in the control group"
        );
        let refusal = Reply::Error(ControlError::refused(format!(
            "permission denied: the control socket is for root and members of group {:?} (uid {} is neither)",
            group.name, peer.uid
        )));
        let _ = timeout(limits.write_timeout, conn.write_reply(&refusal)).await;
        return;
    }
    loop {
        let line = match timeout(limits.idle_timeout, conn.read_frame()).await {
            Err(_) => {
                debug!(uid = peer.uid, "control connection idle too long; closing");
                return;
            }
            Ok(Err(e)) => {
                debug!(uid = peer.uid, error = %e, "control connection read failed");
                return;
            }
            Ok(Ok(Frame::Eof)) => return,
            Ok(Ok(Frame::TooLong)) => {
                warn!(
                    uid = peer.uid,
                    pid = peer.pid,
                    limit = limits.max_request_bytes,
                    "control socket: request too long; closing the connection"
                );
                let err = Reply::Error(ControlError::bad_request(format!(
                    "request longer than {} bytes; one request per line, each a small JSON object",
                    limits.max_request_bytes
                )));
                let _ = timeout(limits.write_timeout, conn.write_reply(&err)).await;
                return;
            }
            Ok(Ok(Frame::Line(line))) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match serde_json::from_slice::<Request>(&line) {
            Err(e) => Reply::Error(ControlError::bad_request(format!(
                "not a valid request: {e}; expected one JSON object per line such as {{\"cmd\":\"status\"}}"
            ))),
            Ok(request) => run_request(&handler, request, &peer, limits.request_timeout).await,
        };
        match timeout(limits.write_timeout, conn.write_reply(&reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(uid = peer.uid, error = %e, "control connection write failed");
                return;
            }
            Err(_) => {
                debug!(
                    uid = peer.uid,
                    "control peer does not read its replies; closing"
                );
                return;
            }
        }
    }
}

/// Runs one request on its own task, so it completes even if this connection goes away or the
/// answer takes longer than `limit`.
async fn run_request<H: ControlHandler>(
    handler: &Arc<H>,
    request: Request,
    peer: &Peer,
    limit: Duration,
) -> Reply {
    if request.is_change() {
        info!(uid = peer.uid, pid = peer.pid, request = ?request, "control request");
    } else {
        debug!(uid = peer.uid, request = request.name(), "control request");
    }
    let name = request.name();
    let handler = Arc::clone(handler);
    let task = tokio::spawn(async move { dispatch(&*handler, request).await });
    match timeout(limit, task).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            warn!(request = name, error = %e, "control request failed inside the daemon");
            Reply::Error(ControlError::internal(format!(
                "the daemon failed while handling {name}; see its log"
            )))
        }
        Err(_) => Reply::Error(ControlError::internal(format!(
            "{name} did not finish within {}s; it goes on in the daemon, check with status or list",
            limit.as_secs()
        ))),
    }
}
