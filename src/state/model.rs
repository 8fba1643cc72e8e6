//! The typed records the state keeps: listings, offender history and source positions.
//!
//! These are plain values shared by every backend; they carry no storage detail. Times are
//! `OffsetDateTime` and are kept to the microsecond (finer parts are dropped on storing).
//! Nothing here talks to a disk.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The number of evidence lines a listing keeps (the most recent ones).
pub const EVIDENCE_MAX_LINES: usize = 16;
/// The longest evidence line kept, in bytes; longer lines are cut at a character boundary.
pub const EVIDENCE_MAX_LINE_BYTES: usize = 1024;
/// The most bytes a file fingerprint may hold.
pub const FINGERPRINT_MAX_BYTES: usize = 256;

/// A listing's identity in its store, increasing in the order listings were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ListingId(pub i64);

impl fmt::Display for ListingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who or what created a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    /// The policy engine, from the logs.
    Policy,
    /// An operator, with `tarpitctl add`; `by` says who (a user name, or what the operator typed).
    Manual {
        /// Who added it.
        by: String,
    },
}

/// The log lines that led to a listing: at most [`EVIDENCE_MAX_LINES`] lines (the last ones
/// given) of at most [`EVIDENCE_MAX_LINE_BYTES`] bytes each, so a flood cannot bloat the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(Vec<String>);

impl Evidence {
    /// Keeps the last [`EVIDENCE_MAX_LINES`] of `lines`, each cut to [`EVIDENCE_MAX_LINE_BYTES`].
    pub fn from_lines<I, S>(lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut kept: Vec<String> = lines.into_iter().map(Into::into).collect();
        if kept.len() > EVIDENCE_MAX_LINES {
            kept.drain(..kept.len() - EVIDENCE_MAX_LINES);
        }
        for line in &mut kept {
            if line.len() > EVIDENCE_MAX_LINE_BYTES {
                let mut cut = EVIDENCE_MAX_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
        }
        Evidence(kept)
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> &[String] {
        &self.0
    }
}

/// A listing as the policy or an operator asks for it, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    /// The listed address or prefix (stored truncated to its network: `198.51.100.7/24` is kept
    /// as `198.51.100.0/24`); a plain address is a /32 or /128.
    pub net: IpNet,
    /// When it starts.
    pub since: OffsetDateTime,
    /// When it expires by itself.
    pub until: OffsetDateTime,
    /// Which offence of this offender it is, counting from 1 (the policy decides it).
    pub offence: u32,
    /// The human reason ("7 rejections in 38 min: 5× unknown-recipient, 2× relay-denied").
    pub reason: String,
    /// The log lines that led to it.
    pub evidence: Evidence,
    /// False in `mode: dry-run`: decided and recorded, but not put into the kernel set.
    pub enforced: bool,
    /// Who created it.
    pub origin: Origin,
}

/// Why a listing ended before its `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EndCause {
    /// An operator removed it (`tarpitctl del`); `by` says who.
    Unlisted {
        /// Who removed it.
        by: String,
    },
    /// A newer listing of the same address or prefix replaced it.
    Superseded,
}

/// When and why a listing ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// When it ended.
    pub at: OffsetDateTime,
    /// Why.
    pub cause: EndCause,
}

/// A stored listing, active or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Its identity in the store.
    pub id: ListingId,
    /// The listed address or prefix, truncated to its network.
    pub net: IpNet,
    /// When it started.
    pub since: OffsetDateTime,
    /// When it was to expire by itself.
    pub until: OffsetDateTime,
    /// Which offence it was, from 1.
    pub offence: u32,
    /// The human reason.
    pub reason: String,
    /// The log lines that led to it.
    pub evidence: Evidence,
    /// Whether it was put into the kernel set (false in dry-run).
    pub enforced: bool,
    /// Who created it.
    pub origin: Origin,
    /// Set when it ended before `until` (removed by an operator, or superseded).
    pub ended: Option<Ended>,
}

impl Listing {
    /// When it stops (or stopped) being active: `until`, or earlier if it was ended.
    pub fn ends(&self) -> OffsetDateTime {
        match &self.ended {
            Some(ended) if ended.at < self.until => ended.at,
            _ => self.until,
        }
    }

    /// True when it is in force at `at`.
    pub fn is_active_at(&self, at: OffsetDateTime) -> bool {
        self.since <= at && at < self.ends()
    }

    /// True when it covers the plain address `addr`.
    pub fn covers(&self, addr: IpAddr) -> bool {
        self.net.contains(&addr)
    }
}

/// What an unlisting does to the offender's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOnUnlist {
    /// Keep it: the next offence escalates as if the listing had run its course (the history's
    /// last listing end becomes the unlisting time).
    Keep,
    /// Forget it: the next offence counts as the first.
    Forget,
}

/// An operator's removal of the active listing of exactly `net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlisting {
    /// The address or prefix to remove, as listed (truncated to its network).
    pub net: IpNet,
    /// When.
    pub at: OffsetDateTime,
    /// Who removed it.
    pub by: String,
    /// Whether the offender's history goes too.
    pub history: HistoryOnUnlist,
}

/// What escalation and `ban.forget_after` need to know of one address or prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offender {
    /// The address or prefix, as listed.
    pub net: IpNet,
    /// The offence number of its latest listing.
    pub offences: u32,
    /// When its latest listing started.
    pub last_offence: OffsetDateTime,
    /// When its latest listing ended or will end.
    pub last_listing_end: OffsetDateTime,
}

/// The name of a log source, stable across restarts (e.g. `file:/var/log/mail.log` or
/// `journald:postfix@-.service`): the key its position is saved under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceId(pub String);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fingerprint of a file's first bytes (at most [`FINGERPRINT_MAX_BYTES`]), chosen by the
/// file follower, so that a file replaced or truncated under the same inode (copytruncate) is
/// recognised as new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(Vec<u8>);

/// The fingerprint was longer than [`FINGERPRINT_MAX_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file fingerprint of {len} bytes is longer than the {FINGERPRINT_MAX_BYTES} bytes kept")]
pub struct FingerprintTooLong {
    /// The length given.
    pub len: usize,
}

impl Fingerprint {
    /// Wraps `bytes`, refusing more than [`FINGERPRINT_MAX_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, FingerprintTooLong> {
        if bytes.len() > FINGERPRINT_MAX_BYTES {
            return Err(FingerprintTooLong { len: bytes.len() });
        }
        Ok(Fingerprint(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Where reading a plain file stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilePosition {
    /// The device of the file read (`st_dev`).
    pub dev: u64,
    /// Its inode (`st_ino`).
    pub ino: u64,
    /// The byte offset of the first byte not yet processed.
    pub offset: u64,
    /// The fingerprint of its first bytes when it was read.
    pub fingerprint: Fingerprint,
}

/// Where a source stopped: the saved read position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    /// A followed file.
    File(FilePosition),
    /// The systemd journal: the cursor of the last entry processed.
    Journal {
        /// The journald cursor string.
        cursor: String,
    },
}
