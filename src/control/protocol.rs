//! The control protocol: what `tarpitctl` and the daemon say to each other over the socket.
//!
//! Owns the wire types and nothing else: it never opens a socket, never touches state.
//!
//! # Reference
//!
//! The daemon listens on a Unix stream socket (default `/run/tarpit/control.sock`). The
//! conversation is line-delimited JSON in UTF-8: the client writes one request as one JSON object
//! on one line ending in `\n`; the daemon answers with exactly one reply on one line. A connection
//! may carry any number of requests, one after the other; blank lines are ignored. A request line
//! is at most 64 KiB; a longer one is answered with a `bad_request` error and the connection is
//! closed. A line that is not a valid request is answered with a `bad_request` error and the
//! connection stays open.
//!
//! ## Requests
//!
//! The member `cmd` names the request; the other members are its arguments. Unknown members
//! are refused.
//!
//! | request | JSON |
//! |---|---|
//! | status  | `{"cmd":"status"}` |
//! | list    | `{"cmd":"list","expired":false}` (`expired` optional: also listings that have run out) |
//! | show    | `{"cmd":"show","address":"2001:db8:1:2::25"}` (a host inside a listed prefix finds it) |
//! | add     | `{"cmd":"add","address":"192.0.2.7","for":"3d","reason":"spam run","force":false}` (`for`, `reason`, `force` optional) |
//! | del     | `{"cmd":"del","address":"192.0.2.7","forget":false}` (`forget` optional: also clear the offence history) |
//! | flush   | `{"cmd":"flush"}` |
//! | stats   | `{"cmd":"stats"}` |
//! | history | `{"cmd":"history","days":7}` (`days` optional, 1 to 8, default 7: today and the days before, UTC) |
//! | reload  | `{"cmd":"reload"}` |
//!
//! Addresses are IPv4 or IPv6 hosts or CIDR prefixes; durations are human (`90m`, `12h`,
//! `3d`, `2w`). Times are RFC 3339 in UTC.
//!
//! ## Replies
//!
//! Success is `{"ok":{"kind":KIND,...}}`, failure is `{"error":{"code":CODE,"message":TEXT}}`.
//!
//! | request | `kind` | members |
//! |---|---|---|
//! | status | `status` | [`Status`] |
//! | list   | `listings` | `listings`: array of [`Listing`] |
//! | show   | `host` | [`HostReport`] |
//! | add    | `added` | [`Added`] |
//! | del    | `removed` | [`Removed`] |
//! | flush  | `flushed` | [`Flushed`] |
//! | stats  | `stats` | [`Stats`] |
//! | history | `history` | [`History`] |
//! | reload | `reloaded` | [`Reloaded`] |
//!
//! Error codes and the `tarpitctl` exit status each maps to ([`ErrorCode::exit_code`]):
//!
//! | code | meaning | exit |
//! |---|---|---|
//! | `not_found` | the address is not listed / not known | 1 |
//! | `nothing_done` | the request was valid but changed nothing | 1 |
//! | `config_rejected` | `reload`: the new configuration is invalid; the old one stays | 1 |
//! | `internal` | the daemon failed to carry the request out (state, kernel) | 1 |
//! | `bad_request` | the line was not a valid request, or too long | 2 |
//! | `busy` | the daemon has too many control connections open | 3 |
//! | `refused` | not allowed: the peer is not root or in the control group, or the address is allowlisted (`add` without `force`) | 4 |
//!
//! Exit status 0 is success and 3 is also used by `tarpitctl` when it cannot reach the daemon.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::address::Address;
use crate::duration::HumanDuration;

/// The longest request line the daemon reads (64 KiB, the newline included).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One request, one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// The argument-less requests are empty struct variants, not unit variants: serde lets unknown
// members through on the unit variants of a tagged enum.
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon up, what is it doing.
    Status {},
    /// The current listings.
    List {
        /// Also listings that have run out but are still remembered.
        #[serde(default)]
        expired: bool,
    },
    /// Everything known about one host or prefix.
    Show {
        /// The host or prefix; a host inside a listed prefix finds that listing.
        address: Address,
    },
    /// List a host or prefix by hand.
    Add(AddRequest),
    /// Unlist a host or prefix, from the kernel set and the state at once.
    Del {
        /// The host or prefix.
        address: Address,
        /// Also clear its offence history, so its next listing starts from `ban.first`.
        #[serde(default)]
        forget: bool,
    },
    /// Unlist everybody.
    Flush {},
    /// Figures.
    Stats {},
    /// Figures per UTC hour over the last days.
    History {
        /// How many days, today included.
        #[serde(default)]
        days: HistoryDays,
    },
    /// Re-read the configuration, like SIGHUP.
    Reload {},
}

/// The arguments of `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// The host or prefix.
    pub address: Address,
    /// How long; the daemon's escalation decides when absent.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// Why, in the operator's words; the daemon supplies "listed by hand" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// List it even when it is allowlisted.
    #[serde(default)]
    pub force: bool,
}

impl Request {
    /// The request's name, as in `cmd`.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status {} => "status",
            Request::List { .. } => "list",
            Request::Show { .. } => "show",
            Request::Add(_) => "add",
            Request::Del { .. } => "del",
            Request::Flush {} => "flush",
            Request::Stats {} => "stats",
            Request::History { .. } => "history",
            Request::Reload {} => "reload",
        }
    }

    /// Whether the request changes anything (those are logged with the peer that sent them).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Request::Add(_) | Request::Del { .. } | Request::Flush {} | Request::Reload {}
        )
    }
}

/// One reply, one line: `{"ok":{...}}` or `{"error":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The request was carried out.
    Ok(Payload),
    /// It was not.
    Error(ControlError),
}

impl From<Result<Payload, ControlError>> for Reply {
    fn from(r: Result<Payload, ControlError>) -> Self {
        match r {
            Ok(p) => Reply::Ok(p),
            Err(e) => Reply::Error(e),
        }
    }
}

/// What a successful reply carries, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// For `status`.
    Status(Status),
    /// For `list`.
    Listings {
        /// Ordered by address.
        listings: Vec<Listing>,
    },
    /// For `show`.
    Host(HostReport),
    /// For `add`.
    Added(Added),
    /// For `del`.
    Removed(Removed),
    /// For `flush`.
    Flushed(Flushed),
    /// For `stats`.
    Stats(Stats),
    /// For `history`.
    History(History),
    /// For `reload`.
    Reloaded(Reloaded),
}

impl Payload {
    /// The `kind` tag, for messages about a reply of the wrong kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Status(_) => "status",
            Payload::Listings { .. } => "listings",
            Payload::Host(_) => "host",
            Payload::Added(_) => "added",
            Payload::Removed(_) => "removed",
            Payload::Flushed(_) => "flushed",
            Payload::Stats(_) => "stats",
            Payload::History(_) => "history",
            Payload::Reloaded(_) => "reloaded",
        }
    }
}

/// How a listing came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListingSource {
    /// The policy listed it from log events.
    Policy,
    /// An operator listed it (`tarpitctl add`).
    Manual,
}

/// One listed host or prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The listed host or prefix (IPv6 offenders are listed per /64 or wider).
    pub address: Address,
    /// When this listing began.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When it runs out.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Seconds left at the time of the reply; 0 once run out.
    pub remaining_secs: u64,
    /// Which offence this is (1 for the first listing; escalation counts from it).
    pub offences: u32,
    /// Why, in words ("7 rejections in 38 min: 5× unknown-recipient, 2× relay-denied").
    pub reason: String,
    /// The last few log lines that led to it (capped by the daemon).
    pub evidence: Vec<String>,
    /// Whether the kernel set holds it now (false in dry-run mode, or once run out).
    pub enforced: bool,
    /// Who listed it.
    pub source: ListingSource,
}

impl Listing {
    /// The time left, as a duration.
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.remaining_secs)
    }
}

/// One past offence of a host, newest last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offence {
    /// When it was listed for it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// For how long.
    pub duration_secs: u64,
    /// Why.
    pub reason: String,
    /// Who listed it.
    pub source: ListingSource,
}

/// Whether a host may never be listed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowVerdict {
    /// True when it is allowlisted.
    pub allowed: bool,
    /// What allows it (`"allow: 10.0.0.0/8"`, `"SPF of example.org: ip4:192.0.2.0/24"`,
    /// `"delivered to on 2026-12-01"`, `"loopback"`); absent when not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The reply to `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// What was asked about.
    pub address: Address,
    /// The listing covering it, possibly a wider prefix; absent when not listed.
    pub listing: Option<Listing>,
    /// Its past offences, oldest first.
    pub history: Vec<Offence>,
    /// Whether it is allowlisted.
    pub allowlist: AllowVerdict,
}

/// The reply to `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// The listing as it now stands.
    pub listing: Listing,
    /// True when it was listed already and this extended or replaced that listing.
    pub replaced: bool,
    /// True when it is allowlisted and `force` overrode that.
    pub forced: bool,
}

/// The reply to `del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The listings removed (a host inside a listed prefix removes that prefix).
    pub removed: Vec<Address>,
    /// True when the offence history was cleared too.
    pub forgotten: bool,
}

/// The reply to `flush`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    /// How many listings were removed (0 is a success: nobody is listed either way).
    pub removed: u64,
}

/// The reply to `reload`: the new configuration was accepted. A rejected one is an error
/// with code `config_rejected`, and the old configuration stays in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The file that was read.
    pub config: String,
    /// What changed, in words, one item per entry (may be empty).
    pub changes: Vec<String>,
}

/// `mode:` in the daemon's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonMode {
    /// Listings go into the kernel set.
    Enforce,
    /// Decides and records, enforces nothing.
    DryRun,
}

impl fmt::Display for DaemonMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaemonMode::Enforce => "enforce",
            DaemonMode::DryRun => "dry-run",
        })
    }
}

/// Where a source has read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourcePosition {
    /// A log file: byte offset in the file with that inode.
    File {
        /// Byte offset of the next line to read.
        offset: u64,
        /// The file's inode (changes when the log is rotated).
        inode: u64,
    },
    /// The systemd journal: the cursor of the last entry read.
    Journal {
        /// The journal cursor.
        cursor: String,
    },
}

/// One log source the daemon follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// As the config names it: the file path, or `journald:UNIT,...`.
    pub name: String,
    /// Where it has read up to; absent before the first line.
    pub position: Option<SourcePosition>,
    /// Lines read since the daemon started.
    pub lines: u64,
    /// Rejection events found in them.
    pub events: u64,
    /// The source's current trouble (file missing, permission denied); absent when healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Listings in force (state).
    pub listed: u64,
    /// Elements in the kernel set.
    pub enforced: u64,
    /// Offenders being scored that are not listed.
    pub tracked: u64,
    /// Connections the stall listener holds now.
    pub held: u64,
}

/// The reply to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// Enforcing or dry-run.
    pub mode: DaemonMode,
    /// The configuration file in force.
    pub config: String,
    /// The log sources and where each has read up to.
    pub sources: Vec<SourceStatus>,
    /// The nftables table's name (`inet tarpit`).
    pub table: String,
    /// Whether that table is in the kernel now.
    pub table_present: bool,
    /// Counts.
    pub counts: StatusCounts,
}

/// The number of listings whose duration falls in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationBucket {
    /// The bucket holds durations up to and including this many seconds; absent for the last,
    /// open-ended bucket.
    pub up_to_secs: Option<u64>,
    /// Listings in it.
    pub count: u64,
}

/// The upper bounds of the standard duration buckets: 1 h, 1 d, 1 w, 4 w, then open-ended.
pub const DURATION_BUCKET_BOUNDS: [u64; 4] = [3_600, 86_400, 7 * 86_400, 28 * 86_400];

/// Sorts listing durations into the standard buckets ([`DURATION_BUCKET_BOUNDS`]), so that every
/// daemon reports the same buckets.
pub fn duration_buckets(durations: impl IntoIterator<Item = Duration>) -> Vec<DurationBucket> {
    let mut buckets: Vec<DurationBucket> = DURATION_BUCKET_BOUNDS
        .iter()
        .map(|&b| DurationBucket {
            up_to_secs: Some(b),
            count: 0,
        })
        .chain(std::iter::once(DurationBucket {
            up_to_secs: None,
            count: 0,
        }))
        .collect();
    for d in durations {
        let secs = d.as_secs();
        let i = DURATION_BUCKET_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKET_BOUNDS.len());
        if let Some(bucket) = buckets.get_mut(i) {
            bucket.count += 1;
        }
    }
    buckets
}

/// The stall listener's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StallFigures {
    /// Connections held now.
    pub held_now: u64,
    /// Connections held since the daemon started.
    pub total: u64,
    /// Spammer-seconds wasted: the sum of the time every held connection was held.
    pub seconds_wasted: u64,
}

/// The reply to `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Listings in force by the event class that weighed most in them (`manual` for
    /// `tarpitctl add`), keyed by class name.
    pub listings_by_class: BTreeMap<String, u64>,
    /// Listings in force by duration ([`duration_buckets`]).
    pub listings_by_duration: Vec<DurationBucket>,
    /// Rejection events seen since the daemon started, by class name.
    pub events_by_class: BTreeMap<String, u64>,
    /// Packets the diversion rules matched (for a redirect: one per connection).
    pub diverted_packets: u64,
    /// The stall listener.
    pub stall: StallFigures,
}

/// How many days `history` covers: today (UTC) and the days before it, 1 to
/// [`HistoryDays::MAX`] (the daemon keeps eight days of hourly figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct HistoryDays(u8);

impl HistoryDays {
    /// The most days there are figures for.
    pub const MAX: u8 = 8;
    /// What `history` shows when not told.
    pub const DEFAULT: HistoryDays = HistoryDays(7);

    /// The number of days.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for HistoryDays {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The number of days was 0 or more than [`HistoryDays::MAX`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} days: expected 1 to {max} (the daemon keeps {max} days of hourly figures)", max = HistoryDays::MAX)]
pub struct BadHistoryDays(pub u64);

impl TryFrom<u8> for HistoryDays {
    type Error = BadHistoryDays;

    fn try_from(days: u8) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&days) {
            Ok(HistoryDays(days))
        } else {
            Err(BadHistoryDays(days.into()))
        }
    }
}

impl From<HistoryDays> for u8 {
    fn from(days: HistoryDays) -> u8 {
        days.0
    }
}

impl std::str::FromStr for HistoryDays {
    type Err = BadHistoryDays;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u64 = s.trim().parse().map_err(|_| BadHistoryDays(0))?;
        u8::try_from(n)
            .map_err(|_| BadHistoryDays(n))
            .and_then(HistoryDays::try_from)
    }
}

/// The figures of one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourFigures {
    /// The start of the hour.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Listings made in it (by the policy or by hand).
    pub listings: u64,
    /// Rejection events in it.
    pub events: u64,
    /// The same, by class name (classes without events are absent).
    pub events_by_class: BTreeMap<String, u64>,
    /// Connections the stall listener accepted and held in it.
    pub held_connections: u64,
    /// Seconds it held connections in it: spammer time wasted.
    pub held_seconds: u64,
}

/// The reply to `history`: figures per UTC hour from midnight `days - 1` days ago until now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The start of the first hour asked for (midnight UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// When the figures were read; the last hour is the one this falls in.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// The hours with a record, oldest first. An hour in the window that is absent has no
    /// figures (the daemon was not running), which is not the same as an hour of zeros.
    pub hours: Vec<HourFigures>,
}

/// What went wrong, in a form both a script and a person can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The address is not listed or not known.
    NotFound,
    /// The request was valid but changed nothing.
    NothingDone,
    /// `reload`: the new configuration is invalid; the old one stays in force.
    ConfigRejected,
    /// The daemon could not carry the request out.
    Internal,
    /// Not a valid request, or too long.
    BadRequest,
    /// Too many control connections are open.
    Busy,
    /// Not allowed: the peer's credentials, or an allowlisted address without `force`.
    Refused,
}

impl ErrorCode {
    /// The `tarpitctl` exit status for this error: 1 not found or nothing done, 2 usage,
    /// 3 daemon unreachable, 4 refused.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::NotFound
            | ErrorCode::NothingDone
            | ErrorCode::ConfigRejected
            | ErrorCode::Internal => 1,
            ErrorCode::BadRequest => 2,
            ErrorCode::Busy => 3,
            ErrorCode::Refused => 4,
        }
    }
}

/// An error reply; also what a [`super::handler::ControlHandler`] returns when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened and what to do next, for a person.
    pub message: String,
}

impl ControlError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: message.into(),
        }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `nothing_done`.
    pub fn nothing_done(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NothingDone, message)
    }

    /// `refused`.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Refused, message)
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(line)
    }

    #[test]
    fn requests_read_as_documented() {
        assert_eq!(parse(r#"{"cmd":"status"}"#).unwrap(), Request::Status {});
        assert_eq!(
            parse(r#"{"cmd":"list"}"#).unwrap(),
            Request::List { expired: false }
        );
        assert_eq!(
            parse(
                r#"{"cmd":"add","address":"192.0.2.7","for":"3d","reason":"spam run","force":true}"#
            )
            .unwrap(),
            Request::Add(AddRequest {
                address: "192.0.2.7".parse().unwrap(),
                duration: Some(HumanDuration::parse("3d").unwrap()),
                reason: Some("spam run".into()),
                force: true,
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"del","address":"2001:db8:1:2::/64","forget":true}"#).unwrap(),
            Request::Del {
                address: "2001:db8:1:2::/64".parse().unwrap(),
                forget: true
            }
        );
    }

    #[test]
    fn history_takes_1_to_8_days_and_defaults_to_7() {
        assert_eq!(
            parse(r#"{"cmd":"history"}"#).unwrap(),
            Request::History {
                days: HistoryDays::DEFAULT
            }
        );
        assert_eq!(HistoryDays::DEFAULT.get(), 7);
        assert_eq!(
            parse(r#"{"cmd":"history","days":8}"#).unwrap(),
            Request::History {
                days: HistoryDays::try_from(8).unwrap()
            }
        );
        for line in [
            r#"{"cmd":"history","days":0}"#,
            r#"{"cmd":"history","days":9}"#,
            r#"{"cmd":"history","days":-1}"#,
            r#"{"cmd":"history","days":"7"}"#,
            r#"{"cmd":"history","weeks":1}"#,
        ] {
            assert!(parse(line).is_err(), "accepted {line}");
        }
        assert_eq!("8".parse::<HistoryDays>().unwrap().get(), 8);
        let err = "300".parse::<HistoryDays>().unwrap_err().to_string();
        assert!(err.contains("expected 1 to 8"), "{err}");
        assert!("x".parse::<HistoryDays>().is_err());
    }

    #[test]
    fn unknown_members_commands_and_bad_values_are_refused() {
        for line in [
            r#"{"cmd":"list","expird":true}"#,
            r#"{"cmd":"status","x":1}"#,
            r#"{"cmd":"flush","yes":true}"#,
            r#"{"cmd":"ban","address":"192.0.2.7"}"#,
            r#"{"cmd":"show","address":"example.org"}"#,
            r#"{"cmd":"add","address":"192.0.2.7","for":"10"}"#,
            r#"{"cmd":"add","address":"192.0.2.7","force":true,"extra":1}"#,
            r#"{"address":"192.0.2.7"}"#,
        ] {
            assert!(parse(line).is_err(), "accepted {line}");
        }
    }

    #[test]
    fn every_request_round_trips_through_its_line() {
        let requests = [
            Request::Status {},
            Request::List { expired: true },
            Request::Show {
                address: "198.51.100.0/24".parse().unwrap(),
            },
            Request::Add(AddRequest {
                address: "2001:db8::7".parse().unwrap(),
                duration: None,
                reason: None,
                force: false,
            }),
            Request::Del {
                address: "192.0.2.7".parse().unwrap(),
                forget: false,
            },
            Request::Flush {},
            Request::Stats {},
            Request::History {
                days: HistoryDays::try_from(3).unwrap(),
            },
            Request::Reload {},
        ];
        for r in requests {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(parse(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn replies_are_tagged_ok_or_error() {
        let ok =
            serde_json::to_string(&Reply::Ok(Payload::Flushed(Flushed { removed: 3 }))).unwrap();
        assert_eq!(ok, r#"{"ok":{"kind":"flushed","removed":3}}"#);
        let err = serde_json::to_string(&Reply::Error(ControlError::not_found(
            "192.0.2.7 is not listed",
        )))
        .unwrap();
        assert_eq!(
            err,
            r#"{"error":{"code":"not_found","message":"192.0.2.7 is not listed"}}"#
        );
    }

    #[test]
    fn error_codes_map_to_the_documented_exit_statuses() {
        assert_eq!(ErrorCode::NotFound.exit_code(), 1);
        assert_eq!(ErrorCode::NothingDone.exit_code(), 1);
        assert_eq!(ErrorCode::BadRequest.exit_code(), 2);
        assert_eq!(ErrorCode::Busy.exit_code(), 3);
        assert_eq!(ErrorCode::Refused.exit_code(), 4);
    }

    #[test]
    fn durations_fall_into_the_standard_buckets_inclusive_of_the_bound() {
        let b = duration_buckets([
            Duration::from_secs(3_600),
            Duration::from_secs(3_601),
            Duration::from_secs(60),
            Duration::from_secs(90 * 86_400),
        ]);
        let counts: Vec<u64> = b.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![2, 1, 0, 0, 1]);
        assert_eq!(b[4].up_to_secs, None);
    }
}
