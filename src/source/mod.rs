//! Sources: where log lines come from.
//!
//! [`input`] opens a file, a gzip file or standard input; [`lines`] splits what it reads into
//! lines without an allocation per line. [`follow`] follows a live log file through rotations and
//! restarts, [`journald`] reads the systemd journal; both hand out each raw [`Line`] with the
//! [`position::Position`] just after it, which the daemon saves once it has processed the line.
//! [`config`] is the `sources:` section of the configuration and [`live`] starts a configured
//! source. Nothing here parses a line.

pub mod config;
pub mod follow;
pub mod input;
pub mod journald;
pub mod lines;
pub mod live;
pub mod position;

/// One raw log line from a live source, and how far the source has read once it is processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line without its `\n`.
    pub bytes: Vec<u8>,
    /// Where reading resumes after this line.
    pub position: position::Position,
}
