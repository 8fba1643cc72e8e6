//! The client's side of the control socket: connect, send one request, read one reply.
//!
//! Blocking and small on purpose: `tarpitctl` asks one question and exits, so it needs no
//! runtime. It never decides what a reply means for the operator (that is [`super::commands`]).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Reply, Request};

/// How long `tarpitctl` waits for the daemon by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no reply came.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens on the socket (no file, or no daemon behind it).
    #[error("daemon unreachable: cannot connect to {socket}: {source}; is tarpitd running? (systemctl status tarpitd)")]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The socket file's permissions keep this user out.
    #[error("permission denied on {socket}: the control socket is for root and members of the control group (control.group, default adm)")]
    PermissionDenied {
        /// The socket.
        socket: PathBuf,
    },
    /// The daemon took the request but did not answer in time.
    #[error("daemon unreachable: no reply on {socket} within {}s", .timeout.as_secs())]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// The connection broke.
    #[error("the connection to the daemon on {socket} failed: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The daemon answered something that is not a reply.
    #[error("the daemon on {socket} sent a reply this tarpitctl cannot read ({detail}); are tarpitd and tarpitctl the same version?")]
    BadReply {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

impl ClientError {
    /// The `tarpitctl` exit status: 3 when the daemon cannot be reached, 4 when the socket's
    /// permissions refuse us, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } => 3,
            ClientError::PermissionDenied { .. } => 4,
            ClientError::Io { .. } | ClientError::BadReply { .. } => 1,
        }
    }

    /// Whether the daemon is simply not there (as opposed to there but failing).
    pub fn is_unreachable(&self) -> bool {
        self.exit_code() == 3
    }
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// Connects to the socket; reads and writes time out after `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| match source.kind() {
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                socket: socket.to_owned(),
            },
            _ => ClientError::Unreachable {
                socket: socket.to_owned(),
                source,
            },
        })?;
        let io_err = |source| ClientError::Io {
            socket: socket.to_owned(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            socket: socket.to_owned(),
            timeout,
        })
    }

    /// Sends one request and reads its reply.
    pub fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|e| ClientError::BadReply {
            socket: self.socket.clone(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        line.push(b'\n');
        // The daemon may already have answered and closed (a refusal is sent before any request
        // is read), so a failed write is only an error when no reply can be read either.
        let written = self
            .writer
            .write_all(&line)
            .and_then(|()| self.writer.flush());
        let mut reply = String::new();
        let read = self.reader.read_line(&mut reply);
        match read {
            Ok(0) => Err(match written {
                Err(source) => self.io_error(source),
                Ok(()) => ClientError::BadReply {
                    socket: self.socket.clone(),
                    detail: "the daemon closed the connection without a reply".to_owned(),
                },
            }),
            Ok(_) => serde_json::from_str(reply.trim_end()).map_err(|e| ClientError::BadReply {
                socket: self.socket.clone(),
                detail: e.to_string(),
            }),
            Err(source) => Err(self.io_error(source)),
        }
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                socket: self.socket.clone(),
                timeout: self.timeout,
            },
            _ => ClientError::Io {
                socket: self.socket.clone(),
                source,
            },
        }
    }
}

/// Connects, sends `request`, returns the reply: the one-question conversation `tarpitctl` has.
pub fn ask(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    Client::connect(socket, timeout)?.request(request)
}
