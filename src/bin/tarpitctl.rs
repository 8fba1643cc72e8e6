//! `tarpitctl`: the operator's command. Flags and wiring only; the work is in `tarpit::control`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tarpit::control::replay::{self, ReplayOptions};
use tarpit::parse::MtaChoice;
use tarpit::policy::config::{load_policy_section, PolicySection};
use tarpit::policy::engine::Engine;

/// Control the tarpit daemon and try its rules on logs.
#[derive(Debug, Parser)]
#[command(name = "tarpitctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run mail logs through the parser (and the policy) and print what they find (no root, no
    /// kernel).
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Print one JSON object per rejection event (file, line, time, ip, class, mta, service,
    /// sender, recipient, helo, code, rule). Without it, the policy engine runs on the events
    /// and each listing decision is printed as a JSON line (time, ip, action, until,
    /// duration_s, offence, reason).
    #[arg(long)]
    events: bool,
    /// The daemon's config (YAML); its `mode`, `policy` and `ban` keys set the policy. Default:
    /// the built-in defaults.
    #[arg(long, value_name = "FILE", conflicts_with = "events")]
    config: Option<PathBuf>,
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
    let mut engine = None;
    let result = if args.events {
        replay::replay_events(&args.files, &options, &mut out, &mut err)
    } else {
        let section = match &args.config {
            Some(path) => load_policy_section(path)?,
            None => PolicySection::default(),
        };
        // Replays judge someone else's log: this host's own addresses play no part.
        let engine = engine.insert(Engine::new(&section, Vec::new()));
        replay::replay_decisions(&args.files, &options, engine, &mut out, &mut err)
    };
    let summary = match result {
        Ok(s) => s,
        // The reader went away (`| head`): not an error worth a message.
        Err(replay::ReplayError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(e) => return Err(e.into()),
    };
    drop(out);
    match &engine {
        Some(engine) => {
            let stats = engine.stats();
            let _ = writeln!(
                err,
                "{} decisions={} allowed={} suppressed={}",
                summary.line(),
                stats.decisions,
                stats.allowed,
                stats.suppressed
            );
        }
        None => {
            let _ = writeln!(err, "{}", summary.line());
        }
    }
    Ok(if summary.failed_files.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
