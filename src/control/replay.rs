//! `tarpitctl replay`: parse logs and print one JSON object per event (`--events`), or drive the
//! policy engine from the logs' own timestamps and print one JSON line per decision.
//!
//! Streams: one line is in memory at a time, so a log of any size replays in bounded memory.
//! Touches no kernel state and needs no privileges. Lines that could not be used are counted by
//! reason for the summary; lines that are simply not events print nothing.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::event::{Event, Mta};
use crate::parse::clock::Clock;
use crate::parse::rules::{RuleSet, RulesError};
use crate::parse::{MtaChoice, Outcome, Parser};
use crate::policy::engine::Engine;
use crate::source::input::{self, OpenError};
use crate::source::lines::LineReader;

/// What to replay and how.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Which MTA's lines to look for.
    pub mta: MtaChoice,
    /// Time zone of stamps without an offset; the system's when `None`.
    pub timezone: Option<TimeZone>,
    /// The instant years of RFC 3164 stamps are inferred against; each file's modification time
    /// (standard input: now) when `None`.
    pub now: Option<Timestamp>,
    /// Operator rule files tried before the built-in rules (each names its MTA).
    pub extra_rules: Vec<PathBuf>,
}

/// Why a replay failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A rule file is broken.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A rule file could not be read.
    #[error("cannot read rule file {path}: {source}")]
    RuleFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the output failed (other than the reader going away).
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Events printed.
    pub events: u64,
    /// Lines that could not be used, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Files that could not be read (each already reported).
    pub failed_files: Vec<String>,
}

impl Summary {
    /// All skipped lines.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// `lines=… events=… skipped=…`, with the reasons for skipped lines after it.
    pub fn line(&self) -> String {
        let mut s = format!(
            "lines={} events={} skipped={}",
            self.lines,
            self.events,
            self.skipped_total()
        );
        for (reason, n) in &self.skipped {
            s.push_str(&format!(" {reason}={n}"));
        }
        if !self.failed_files.is_empty() {
            s.push_str(&format!(" unreadable_files={}", self.failed_files.len()));
        }
        s
    }
}

/// Builds the rule sets: built-in, with the operator's files in front.
pub fn load_rules(extra: &[PathBuf]) -> Result<(RuleSet, RuleSet), ReplayError> {
    let mut postfix = RuleSet::builtin(Mta::Postfix)?;
    let mut exim = RuleSet::builtin(Mta::Exim)?;
    for path in extra {
        let text = std::fs::read_to_string(path).map_err(|source| ReplayError::RuleFile {
            path: path.clone(),
            source,
        })?;
        let label = path.display().to_string();
        // The file says which MTA it is for; try the one it names.
        match RuleSet::file_mta(&label, &text)? {
            Mta::Postfix => postfix.extend_from_yaml(&label, &text)?,
            Mta::Exim => exim.extend_from_yaml(&label, &text)?,
        }
    }
    Ok((postfix, exim))
}

/// Replays `files` in order, writing events to `out` and problems with files to `err`.
pub fn replay_events(
    files: &[PathBuf],
    options: &ReplayOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    replay_files(files, options, out, err, None)
}

/// Replays `files` in order through `engine`, writing each decision as a JSON line to `out`
/// (in log order, so the output is the same on every run) and problems with files to `err`.
/// `Summary::events` counts events; the engine's own [`Engine::stats`] count the decisions.
pub fn replay_decisions(
    files: &[PathBuf],
    options: &ReplayOptions,
    engine: &mut Engine,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    replay_files(
        files,
        options,
        out,
        err,
        Some(&mut |out, _, _, outcome| match outcome {
            Outcome::Event(event) => {
                let decisions = engine.observe_event(&event);
                for d in &decisions {
                    out.write_all(d.json_line().as_bytes())?;
                    out.write_all(b"\n")?;
                }
                Ok(true)
            }
            Outcome::Delivered(delivery) => {
                engine.observe_delivery(&delivery);
                Ok(false)
            }
            Outcome::Sender { queue_id, sender } => {
                engine.observe_sender(&queue_id, &sender);
                Ok(false)
            }
            _ => Ok(false),
        }),
    )
}

/// What to do with each line's outcome: returns whether it counts as an event.
type Sink<'a> = dyn FnMut(&mut dyn Write, &str, u64, Outcome) -> io::Result<bool> + 'a;

/// With a `sink` (the policy replay), each line's outcome goes to it in order, with deliveries
/// parsed. Without one (the events listing), only events are wanted: lines are independent, so
/// they are parsed on every core and written in order.
fn replay_files(
    files: &[PathBuf],
    options: &ReplayOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    mut sink: Option<&mut Sink<'_>>,
) -> Result<Summary, ReplayError> {
    let (postfix, exim) = load_rules(&options.extra_rules)?;
    let tz = options.timezone.clone().unwrap_or_else(TimeZone::system);
    let mut summary = Summary::default();
    for path in files {
        let label = path.display().to_string();
        let opened = match input::open(path) {
            Ok(i) => i,
            Err(e) => {
                report(err, &e.to_string())?;
                summary.failed_files.push(label);
                continue;
            }
        };
        let reference = options
            .now
            .or_else(|| opened.modified.and_then(|m| Timestamp::try_from(m).ok()))
            .unwrap_or_else(Timestamp::now);
        let parser = Parser::new(
            postfix.clone(),
            exim.clone(),
            options.mta,
            Clock::new(tz.clone(), reference),
        )
        .with_deliveries(sink.is_some());
        let result = if let Some(sink) = sink.as_deref_mut() {
            replay_one(&parser, &label, opened.reader, out, sink, &mut summary)
        } else {
            super::replay_parallel::replay_events_parallel(
                &parser,
                &label,
                opened.reader,
                out,
                &mut summary,
            )
        };
        if let Err(e) = result {
            match e {
                FileError::Read(source, line) => {
                    let e = OpenError {
                        path: Path::new(&label).to_owned(),
                        source,
                    };
                    report(err, &format!("{e} (after line {line})"))?;
                    summary.failed_files.push(label);
                }
                FileError::Write(e) => return Err(ReplayError::Output(e)),
            }
        }
    }
    out.flush().map_err(ReplayError::Output)?;
    Ok(summary)
}

/// Why one file's replay stopped.
pub(crate) enum FileError {
    Read(io::Error, u64),
    Write(io::Error),
}

fn replay_one(
    parser: &Parser,
    label: &str,
    reader: Box<dyn io::Read + Send>,
    out: &mut dyn Write,
    sink: &mut Sink<'_>,
    summary: &mut Summary,
) -> Result<(), FileError> {
    let mut lines = LineReader::new(reader);
    let mut number = 0u64;
    while let Some(line) = lines.next_line().map_err(|e| FileError::Read(e, number))? {
        number += 1;
        summary.lines += 1;
        match parser.parse(line) {
            Outcome::Malformed(why) => *summary.skipped.entry(why.as_str()).or_default() += 1,
            outcome => {
                if sink(out, label, number, outcome).map_err(FileError::Write)? {
                    summary.events += 1;
                }
            }
        }
    }
    Ok(())
}

/// One event as a JSON line. Written field by field (no intermediate strings): with a tenth of
/// a busy log being events, this is a good part of a replay's time.
pub(crate) fn write_event(out: &mut dyn Write, file: &str, line: u64, e: &Event) -> io::Result<()> {
    fn text(out: &mut dyn Write, s: &str) -> io::Result<()> {
        serde_json::to_writer(&mut *out, s).map_err(io::Error::other)
    }
    fn optional(out: &mut dyn Write, s: Option<&str>) -> io::Result<()> {
        match s {
            Some(s) => text(out, s),
            None => out.write_all(b"null"),
        }
    }
    out.write_all(b"{\"file\":")?;
    text(out, file)?;
    write!(out, ",\"line\":{line},\"time\":\"")?;
    write_rfc3339(out, e.time)?;
    write!(
        out,
        "\",\"ip\":\"{}\",\"class\":\"{}\",\"mta\":\"{}\",\"service\":",
        e.ip,
        e.class.as_str(),
        e.mta.as_str()
    )?;
    text(out, &e.service)?;
    out.write_all(b",\"sender\":")?;
    optional(out, e.sender.as_deref())?;
    out.write_all(b",\"recipient\":")?;
    optional(out, e.recipient.as_deref())?;
    out.write_all(b",\"helo\":")?;
    optional(out, e.helo.as_deref())?;
    match e.code {
        Some(c) => write!(out, ",\"code\":{c},\"rule\":")?,
        None => out.write_all(b",\"code\":null,\"rule\":")?,
    }
    text(out, &e.rule)?;
    out.write_all(b"}\n")
}

/// RFC 3339, as the `time` crate writes it: fractional seconds only when there are some
/// (trailing zeros dropped), `Z` for UTC.
fn write_rfc3339(out: &mut dyn Write, t: time::OffsetDateTime) -> io::Result<()> {
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )?;
    let nanos = t.nanosecond();
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        write!(out, ".{}", digits.trim_end_matches('0'))?;
    }
    let offset = t.offset();
    if offset.is_utc() {
        out.write_all(b"Z")
    } else {
        let (h, m, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        write!(out, "{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    }
}

fn report(err: &mut dyn Write, message: &str) -> Result<(), ReplayError> {
    writeln!(err, "tarpitctl: {message}").map_err(ReplayError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    #[test]
    fn rfc3339_is_written_as_the_time_crate_writes_it() {
        for t in [
            datetime!(2026-12-04 10:00:00 UTC),
            datetime!(2026-12-04 10:00:00.5 +01:00),
            datetime!(2026-07-01 23:59:59.123456 -05:30),
            datetime!(1999-01-02 03:04:05.000000001 +00:00),
        ] {
            let mut ours = Vec::new();
            write_rfc3339(&mut ours, t).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                t.format(&Rfc3339).unwrap()
            );
        }
    }
}
