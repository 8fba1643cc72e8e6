//! `tarpitctl`: the operator's command. Acts on the subcommands defined in
//! `tarpit::cli::tarpitctl`; the work is in `tarpit::control`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use tarpit::cli::tarpitctl::{Cli, Command, ReplayArgs};
use tarpit::control::chart::Glyphs;
use tarpit::control::client::DEFAULT_TIMEOUT;
use tarpit::control::commands::{self, exit, Action, Target};
use tarpit::control::ctl_config;
use tarpit::control::offline;
use tarpit::control::protocol::AddRequest;
use tarpit::control::replay::{self, ReplayOptions};
use tarpit::parse::MtaChoice;
use tarpit::policy::config::{load_policy_section, PolicySection};
use tarpit::policy::engine::Engine;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tarpitctl: {}", tarpit::report::one_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (action, json) = match cli.command {
        // For replay, `--config` sets the policy (`mode`, `policy`, `ban`); without it the
        // built-in defaults judge the log, whatever this host's own configuration says.
        Command::Replay(args) => return replay_command(args, cli.config.as_deref()),
        Command::CheckConfig { file } => return Ok(check_config(&file)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tarpitctl", &mut io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Flush { yes: false, .. } => {
            eprintln!("tarpitctl: flush unlists every host; run `tarpitctl flush --yes` to do it");
            return Ok(ExitCode::from(exit::USAGE));
        }
        Command::Flush { yes: true, json } => (Action::Flush, json.json),
        Command::Status(j) => (Action::Status, j.json),
        Command::List { expired, json } => (Action::List { expired }, json.json),
        Command::Show { address, json } => (Action::Show(address), json.json),
        Command::Add {
            address,
            duration,
            reason,
            force,
            json,
        } => (
            Action::Add(AddRequest {
                address,
                duration,
                reason,
                force,
            }),
            json.json,
        ),
        Command::Del {
            address,
            forget,
            json,
        } => (Action::Del { address, forget }, json.json),
        Command::Stats {
            history: false,
            json,
            ..
        } => (Action::Stats, json.json),
        Command::Stats {
            days, ascii, json, ..
        } => (
            Action::History {
                days,
                glyphs: Glyphs::for_terminal(ascii, |name| std::env::var(name).ok()),
            },
            json.json,
        ),
        Command::Reload(j) => (Action::Reload, j.json),
    };
    let settings = match ctl_config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tarpitctl: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let target = Target {
        socket: cli.socket.unwrap_or(settings.socket),
        state_path: settings.state_path,
        timeout: DEFAULT_TIMEOUT,
        json,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = commands::run(
        &action,
        &target,
        offline::open_state_database,
        &mut out,
        &mut io::stderr(),
    );
    match code {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write output"),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match ctl_config::check_config(file) {
        Ok(report) => {
            let set = if report.sections.is_empty() {
                "built-in defaults throughout".to_owned()
            } else {
                format!("sets {}; the rest are defaults", report.sections.join(", "))
            };
            println!(
                "{}: ok ({set}; {} rule file(s) compiled)",
                file.display(),
                report.rule_files
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tarpitctl: {}", tarpit::report::one_line(&e));
            ExitCode::from(exit::NOTHING)
        }
    }
}

fn replay_command(args: ReplayArgs, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
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
        let section = match config {
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
