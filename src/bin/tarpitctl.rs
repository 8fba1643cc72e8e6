//! `tarpitctl`: the operator's command. Flags and wiring only; the work is in `tarpit::control`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use tarpit::control::address::Address;
use tarpit::control::chart::Glyphs;
use tarpit::control::client::DEFAULT_TIMEOUT;
use tarpit::control::commands::{self, exit, Action, Target};
use tarpit::control::ctl_config;
use tarpit::control::offline;
use tarpit::control::protocol::{AddRequest, HistoryDays};
use tarpit::control::replay::{self, ReplayOptions};
use tarpit::duration::HumanDuration;
use tarpit::parse::MtaChoice;
use tarpit::policy::config::{load_policy_section, PolicySection};
use tarpit::policy::engine::Engine;

/// Control the tarpit daemon and try its rules on logs.
///
/// Exit status: 0 done, 1 not found or nothing done, 2 usage, 3 daemon unreachable, 4 refused.
#[derive(Debug, Parser)]
#[command(name = "tarpitctl", version, about, propagate_version = true)]
struct Cli {
    /// The daemon's configuration file, for `control.socket` and `state.path` [default:
    /// /etc/tarpit/tarpit.yaml; built-in defaults when that file is absent].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The control socket (overrides `control.socket` from the configuration).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Is the daemon up: mode, sources and their positions, table present, counts.
    Status(JsonFlag),
    /// The listed hosts: address, since, until, remaining, offence, reason. Falls back to the
    /// state database (read only) when the daemon is down.
    List {
        /// Also listings that have run out but are still remembered.
        #[arg(long)]
        expired: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Everything about one host: listing, reason, evidence, offence history, allowlist.
    /// A host inside a listed prefix finds it. Exits 1 when the host is not listed.
    Show {
        /// An IPv4 or IPv6 address, or a CIDR prefix.
        address: Address,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List a host or prefix by hand (refused for an allowlisted one unless --force).
    Add {
        /// An IPv4 or IPv6 address, or a CIDR prefix.
        address: Address,
        /// How long (90m, 12h, 3d, 2w); default: the daemon's escalation.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<HumanDuration>,
        /// Why, in your words.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// List it even if it is allowlisted.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Unlist a host or prefix from the kernel set and the state at once. Exits 1 when it was
    /// not listed.
    #[command(visible_alias = "unlist")]
    Del {
        /// An IPv4 or IPv6 address, or a CIDR prefix.
        address: Address,
        /// Also forget its offence history, so its next listing starts from ban.first.
        #[arg(long)]
        forget: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Unlist everybody. Always needs --yes, so that it never happens by accident.
    Flush {
        /// Yes, unlist every host.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Figures: listings by class and duration, events per class, diverted packets, stall.
    ///
    /// With --history: rejection events, new listings and held connections per UTC hour over
    /// the last days, as a chart (also when the daemon is down, from the state database).
    Stats {
        /// Draw rejection events, new listings and held connections per hour, a row per day.
        #[arg(long)]
        history: bool,
        /// With --history: how many days, today included (1 to 8).
        #[arg(long, value_name = "N", default_value = "7", requires = "history")]
        days: HistoryDays,
        /// With --history: draw with ASCII only (the default when the locale is not UTF-8).
        #[arg(long, requires = "history")]
        ascii: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Re-read the daemon's configuration (like SIGHUP); exits 1 if the new one is rejected.
    Reload(JsonFlag),
    /// Check a configuration file's structure (exit 1 when it is invalid).
    CheckConfig {
        /// The YAML file.
        file: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Run mail logs through the parser (and the policy) and print what they find (no root, no
    /// kernel).
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, Copy, clap::Args)]
struct JsonFlag {
    /// Print JSON (stable, for scripts) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Print one JSON object per rejection event (file, line, time, ip, class, mta, service,
    /// sender, recipient, helo, code, rule). Without it, the policy engine runs on the events
    /// and each listing decision is printed as a JSON line (time, ip, action, until,
    /// duration_s, offence, reason).
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
            println!(
                "{}: structure ok (checked: {})",
                file.display(),
                report.checked.join(", ")
            );
            if !report.unchecked.is_empty() {
                println!(
                    "  not checked by this build: {}",
                    report.unchecked.join(", ")
                );
            }
            for key in &report.unknown {
                println!("  warning: unknown top-level key {key:?} (a typo?)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tarpitctl: {e}");
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
