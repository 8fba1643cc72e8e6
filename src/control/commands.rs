//! The daemon-facing `tarpitctl` commands: ask the daemon, print the reply, pick the exit status.
//!
//! Owns the behaviour the operator sees: human output or `--json`, the fallback of `list` and
//! `show` to the state database when the daemon is down, and the exit statuses (0 ok, 1 not
//! found or nothing done, 2 usage, 3 daemon unreachable, 4 refused). Flag parsing stays in the
//! binary; the wire format in [`super::protocol`].

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::address::Address;
use super::chart::{self, Glyphs};
use super::client::{self, ClientError};
use super::format;
use super::offline::OpenOffline;
use super::protocol::{
    AddRequest, ControlError, History, HistoryDays, HostReport, Listing, Payload, Reply, Request,
};

/// Exit statuses of `tarpitctl`.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Not found, or nothing done.
    pub const NOTHING: u8 = 1;
    /// Bad usage.
    pub const USAGE: u8 = 2;
    /// The daemon cannot be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Refused.
    pub const REFUSED: u8 = 4;
}

/// A command that talks to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `status`.
    Status,
    /// `list [--expired]`.
    List {
        /// Also run-out listings.
        expired: bool,
    },
    /// `show ADDRESS`.
    Show(Address),
    /// `add ADDRESS [--for D] [--reason T] [--force]`.
    Add(AddRequest),
    /// `del ADDRESS [--forget]`.
    Del {
        /// The host or prefix.
        address: Address,
        /// Also clear the history.
        forget: bool,
    },
    /// `flush --yes`.
    Flush,
    /// `stats`.
    Stats,
    /// `stats --history [--days N] [--ascii]`.
    History {
        /// How many days, today included.
        days: HistoryDays,
        /// What the chart is drawn with.
        glyphs: Glyphs,
    },
    /// `reload`.
    Reload,
}

impl Action {
    fn request(&self) -> Request {
        match self {
            Action::Status => Request::Status {},
            Action::List { expired } => Request::List { expired: *expired },
            Action::Show(address) => Request::Show { address: *address },
            Action::Add(a) => Request::Add(a.clone()),
            Action::Del { address, forget } => Request::Del {
                address: *address,
                forget: *forget,
            },
            Action::Flush => Request::Flush {},
            Action::Stats => Request::Stats {},
            Action::History { days, .. } => Request::History { days: *days },
            Action::Reload => Request::Reload {},
        }
    }
}

/// Where the daemon and its state are.
#[derive(Debug, Clone)]
pub struct Target {
    /// The control socket.
    pub socket: PathBuf,
    /// The state database, for the read-only fallback.
    pub state_path: PathBuf,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Print JSON instead of tables.
    pub json: bool,
}

/// Runs `action` against the daemon at `target` and returns the exit status. Output goes to
/// `out`, messages to `err`. `open_offline` is how `list`/`show` reach the state database when
/// the daemon is down.
pub fn run(
    action: &Action,
    target: &Target,
    open_offline: OpenOffline,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    match client::ask(&target.socket, &action.request(), target.timeout) {
        Ok(Reply::Ok(payload)) => print_payload(action, &payload, target.json, out, err),
        Ok(Reply::Error(e)) => report_error(&e, err),
        Err(e) if e.is_unreachable() => match action {
            Action::List { .. } | Action::Show(_) | Action::History { .. } => {
                offline(action, target, &e, open_offline, out, err)
            }
            Action::Status | Action::Stats => {
                writeln!(
                    err,
                    "tarpitctl: {e}\ntarpitctl: these figures are the running daemon's; start it (systemctl start tarpitd), or see `tarpitctl list` and `stats --history`, which read the state database"
                )?;
                Ok(exit::UNREACHABLE)
            }
            _ => {
                writeln!(
                    err,
                    "tarpitctl: {e}\ntarpitctl: changes go through the daemon; start it (systemctl start tarpitd) and try again"
                )?;
                Ok(exit::UNREACHABLE)
            }
        },
        Err(e) => {
            writeln!(err, "tarpitctl: {e}")?;
            Ok(e.exit_code())
        }
    }
}

fn report_error(e: &ControlError, err: &mut dyn Write) -> io::Result<u8> {
    writeln!(err, "tarpitctl: {}", e.message)?;
    Ok(e.code.exit_code())
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
    writeln!(out)
}

/// `show` exits 1 when the address is not listed (the report is printed either way), so that
/// `tarpitctl show ADDRESS >/dev/null` answers "is it listed?".
fn show_exit(report: &HostReport) -> u8 {
    if report.listing.is_some() {
        exit::OK
    } else {
        exit::NOTHING
    }
}

fn print_listings(out: &mut dyn Write, listings: &[Listing], as_json: bool) -> io::Result<()> {
    if as_json {
        json(out, &listings)
    } else {
        format::listings(out, listings)
    }
}

fn print_host(out: &mut dyn Write, report: &HostReport, as_json: bool) -> io::Result<u8> {
    if as_json {
        json(out, report)?;
    } else {
        format::host(out, report)?;
    }
    Ok(show_exit(report))
}

fn print_history(
    out: &mut dyn Write,
    history: &History,
    action: &Action,
    as_json: bool,
) -> io::Result<()> {
    match action {
        _ if as_json => json(out, history),
        Action::History { glyphs, .. } => chart::history(out, history, *glyphs),
        _ => chart::history(out, history, Glyphs::ASCII),
    }
}

fn print_payload(
    action: &Action,
    payload: &Payload,
    as_json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    match payload {
        Payload::Status(s) if as_json => json(out, s)?,
        Payload::Status(s) => format::status(out, s)?,
        Payload::Listings { listings } => print_listings(out, listings, as_json)?,
        Payload::Host(r) => return print_host(out, r, as_json),
        Payload::Added(a) if as_json => json(out, a)?,
        Payload::Added(a) => format::added(out, a)?,
        Payload::Removed(r) if as_json => json(out, r)?,
        Payload::Removed(r) => format::removed(out, r)?,
        Payload::Flushed(f) if as_json => json(out, f)?,
        Payload::Flushed(f) => writeln!(out, "unlisted {} listing(s)", f.removed)?,
        Payload::Stats(s) if as_json => json(out, s)?,
        Payload::Stats(s) => format::stats(out, s)?,
        Payload::History(h) => print_history(out, h, action, as_json)?,
        Payload::Reloaded(r) if as_json => json(out, r)?,
        Payload::Reloaded(r) => {
            writeln!(out, "reloaded {}: accepted", r.config)?;
            for c in &r.changes {
                writeln!(out, "  {c}")?;
            }
        }
    }
    let expected = match action.request() {
        Request::Status {} => "status",
        Request::List { .. } => "listings",
        Request::Show { .. } => "host",
        Request::Add(_) => "added",
        Request::Del { .. } => "removed",
        Request::Flush {} => "flushed",
        Request::Stats {} => "stats",
        Request::History { .. } => "history",
        Request::Reload {} => "reloaded",
    };
    if payload.kind() != expected {
        writeln!(
            err,
            "tarpitctl: the daemon answered {} with a {} reply; are tarpitd and tarpitctl the same version?",
            action.request().name(),
            payload.kind()
        )?;
        return Ok(exit::NOTHING);
    }
    Ok(exit::OK)
}

fn offline(
    action: &Action,
    target: &Target,
    why: &ClientError,
    open_offline: OpenOffline,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<u8> {
    let state = match open_offline(&target.state_path) {
        Ok(Some(state)) => state,
        Ok(None) => {
            writeln!(
                err,
                "tarpitctl: {why}\ntarpitctl: and there is no state database at {} to read instead (has tarpitd run with this configuration?)",
                target.state_path.display()
            )?;
            return Ok(exit::UNREACHABLE);
        }
        Err(e) => {
            writeln!(err, "tarpitctl: {why}\ntarpitctl: {e}")?;
            return Ok(exit::UNREACHABLE);
        }
    };
    writeln!(
        err,
        "tarpitctl: {why}\ntarpitctl: read from the state database {} instead; the kernel set was not consulted",
        target.state_path.display()
    )?;
    let result = match action {
        Action::List { expired } => state
            .list(*expired)
            .map(|l| print_listings(out, &l, target.json).map(|()| exit::OK)),
        Action::Show(address) => state
            .show(*address)
            .map(|r| print_host(out, &r, target.json)),
        Action::History { days, .. } => state
            .history(*days)
            .map(|h| print_history(out, &h, action, target.json).map(|()| exit::OK)),
        _ => return Ok(exit::UNREACHABLE),
    };
    match result {
        Ok(printed) => printed,
        Err(e) => {
            writeln!(err, "tarpitctl: {e}")?;
            Ok(exit::UNREACHABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::offline::{OfflineError, OfflineState};
    use crate::control::protocol::{AllowVerdict, ListingSource};
    use std::path::Path;

    struct Recorded;

    impl OfflineState for Recorded {
        fn list(&self, _expired: bool) -> Result<Vec<Listing>, OfflineError> {
            Ok(vec![Listing {
                address: "192.0.2.7".parse().unwrap(),
                since: time::macros::datetime!(2026-12-04 10:00 UTC),
                until: time::macros::datetime!(2026-12-04 11:00 UTC),
                remaining_secs: 0,
                offences: 1,
                reason: "recorded".into(),
                evidence: vec![],
                enforced: false,
                source: ListingSource::Policy,
            }])
        }

        fn show(&self, address: Address) -> Result<HostReport, OfflineError> {
            Ok(HostReport {
                address,
                listing: None,
                history: vec![],
                allowlist: AllowVerdict {
                    allowed: false,
                    reason: Some("unknown without the daemon".into()),
                },
            })
        }

        fn history(&self, _days: HistoryDays) -> Result<History, OfflineError> {
            Ok(Recorded::figures())
        }
    }

    impl Recorded {
        fn figures() -> History {
            let from = time::macros::datetime!(2026-12-04 00:00 UTC);
            History {
                from,
                now: time::macros::datetime!(2026-12-04 01:30 UTC),
                hours: vec![crate::control::protocol::HourFigures {
                    start: from + time::Duration::hours(1),
                    listings: 1,
                    events: 3,
                    events_by_class: [("relay-denied".to_owned(), 3)].into(),
                    held_connections: 0,
                    held_seconds: 0,
                }],
            }
        }
    }

    fn with_state(_: &Path) -> Result<Option<Box<dyn OfflineState>>, OfflineError> {
        Ok(Some(Box::new(Recorded)))
    }

    fn without_state(_: &Path) -> Result<Option<Box<dyn OfflineState>>, OfflineError> {
        Ok(None)
    }

    fn nowhere(json: bool) -> Target {
        Target {
            socket: PathBuf::from("/nonexistent/tarpit-test/control.sock"),
            state_path: PathBuf::from("/nonexistent/state.db"),
            timeout: Duration::from_secs(1),
            json,
        }
    }

    fn run_to_strings(action: &Action, target: &Target, open: OpenOffline) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(action, target, open, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn list_falls_back_to_the_state_database_and_says_so() {
        let (code, out, err) =
            run_to_strings(&Action::List { expired: false }, &nowhere(true), with_state);
        assert_eq!(code, exit::OK);
        assert!(
            err.contains("read from the state database /nonexistent/state.db"),
            "{err}"
        );
        let listings: Vec<Listing> = serde_json::from_str(&out).unwrap();
        assert_eq!(listings[0].reason, "recorded");
    }

    #[test]
    fn show_falls_back_too_and_exits_1_when_not_listed() {
        let action = Action::Show("192.0.2.9".parse().unwrap());
        let (code, out, err) = run_to_strings(&action, &nowhere(false), with_state);
        assert_eq!(code, exit::NOTHING);
        assert!(out.contains("listed:     no"), "{out}");
        assert!(err.contains("state database"), "{err}");
    }

    #[test]
    fn without_a_state_reader_list_reports_the_daemon_unreachable() {
        let (code, out, err) = run_to_strings(
            &Action::List { expired: false },
            &nowhere(false),
            without_state,
        );
        assert_eq!(code, exit::UNREACHABLE);
        assert!(out.is_empty());
        assert!(err.contains("daemon unreachable"), "{err}");
    }

    #[test]
    fn history_falls_back_to_the_state_database_as_json_and_as_a_chart() {
        let action = Action::History {
            days: HistoryDays::DEFAULT,
            glyphs: Glyphs::ASCII,
        };
        let (code, out, err) = run_to_strings(&action, &nowhere(true), with_state);
        assert_eq!(code, exit::OK);
        assert!(err.contains("read from the state database"), "{err}");
        let got: History = serde_json::from_str(&out).unwrap();
        assert_eq!(got, Recorded::figures());
        let (code, out, _) = run_to_strings(&action, &nowhere(false), with_state);
        assert_eq!(code, exit::OK);
        // Midnight has no figures, 01:00 has the busiest hour of events.
        assert!(out.contains("  Fri 12-04  ?@\n"), "{out}");
        assert!(out.contains("rejection events: 3 in all"), "{out}");
    }

    #[test]
    fn changes_refuse_with_3_and_a_hint_when_the_daemon_is_down() {
        let (code, _, err) = run_to_strings(&Action::Flush, &nowhere(false), with_state);
        assert_eq!(code, exit::UNREACHABLE);
        assert!(err.contains("start it"), "{err}");
    }
}
