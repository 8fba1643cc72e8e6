//! `tarpitctl`: the operator's command. Flags and wiring only; the work is in `tarpit::control`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tarpit::control::replay::{self, ReplayOptions};
use tarpit::parse::MtaChoice;

/// Control the tarpit daemon and try its rules on logs.
#[derive(Debug, Parser)]
#[command(name = "tarpitctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run mail logs through the parser and print what it finds (no root, no kernel).
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Print one JSON object per rejection event (file, line, time, ip, class, mta, service,
    /// sender, recipient, helo, code, rule).
    #[arg(long)]
    events: bool,
    /// Which MTA's lines to look for.
    #[arg(long, default_value = "auto", value_parser = ["auto", "postfix", "exim"])]
    mta: String,
    /// Time zone of timestamps that carry no offset (default: the system's, or $TZ).
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// The time to infer the year of `Dec  4 10:00:00` timestamps against (RFC 3339). Default:
    /// each file's modification time; standard input: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// A rule file (YAML, like rules/postfix.yaml) whose rules are tried before the built-in
    /// ones. May be given more than once.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Log files to read; `-` is standard input; gzip files are read transparently.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tarpitctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay_command(args),
    }
}

fn replay_command(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if !args.events {
        eprintln!(
            "tarpitctl: replay without --events prints listing decisions, which need the policy engine; this build only has --events"
        );
        return Ok(ExitCode::from(2));
    }
    let timezone = args
        .timezone
        .as_deref()
        .map(jiff::tz::TimeZone::get)
        .transpose()
        .context(
            "--timezone: unknown time zone (expected an IANA name such as Europe/Zurich or UTC)",
        )?;
    let now = args
        .now
        .as_deref()
        .map(str::parse::<jiff::Timestamp>)
        .transpose()
        .context("--now: expected an RFC 3339 time such as 2026-12-04T10:00:00Z")?;
    let options = ReplayOptions {
        mta: args.mta.parse::<MtaChoice>().map_err(anyhow::Error::msg)?,
        timezone,
        now,
        extra_rules: args.rules,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut err = io::stderr();
    let summary = match replay::replay_events(&args.files, &options, &mut out, &mut err) {
        Ok(s) => s,
        // The reader went away (`| head`): not an error worth a message.
        Err(replay::ReplayError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(e) => return Err(e.into()),
    };
    drop(out);
    let _ = writeln!(err, "{}", summary.line());
    Ok(if summary.failed_files.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
