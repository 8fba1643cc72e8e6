//! `tarpitctl`'s command line: the subcommands, their flags and help text, nothing else.
//!
//! The binary parses it and the man page generator ([`super::man`]) renders it (one page per
//! subcommand), so both read the one definition. It must never act on a flag;
//! `src/bin/tarpitctl.rs` does that.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::control::address::Address;
use crate::control::protocol::HistoryDays;
use crate::duration::HumanDuration;

/// Control the tarpit daemon and try its rules on logs.
///
/// Exit status: 0 done, 1 not found or nothing done, 2 usage, 3 daemon unreachable, 4 refused.
#[derive(Debug, Parser)]
#[command(name = "tarpitctl", version, about, propagate_version = true)]
pub struct Cli {
    /// The daemon's configuration file: `control.socket` and `state.path` for the commands
    /// that talk to the daemon; `mode`, `policy`, `ban` and `rules` for `replay` [default:
    /// /etc/tarpit/tarpit.yaml; built-in defaults when that file is absent; `replay` uses
    /// the built-in policy unless this is given].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The control socket (overrides `control.socket` from the configuration).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each has a man page of its own, `tarpitctl-NAME(8)`.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Check a configuration file as tarpitd would load it, rule files included (exit 1 when it
    /// is invalid).
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

/// `--json`, taken by every command that talks to the daemon.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JsonFlag {
    /// Print JSON (stable, for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `tarpitctl replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Print one JSON object per rejection event (file, line, time, ip, class, mta, service,
    /// sender, recipient, helo, code, rule). Without it, the policy engine runs on the events
    /// and each listing decision is printed as a JSON line (time, ip, action, until,
    /// duration_s, offence, reason).
    #[arg(long)]
    pub events: bool,
    /// Which MTA's lines to look for.
    #[arg(long, default_value = "auto", value_parser = ["auto", "postfix", "exim"])]
    pub mta: String,
    /// Time zone of timestamps that carry no offset (default: the system's, or $TZ).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// The time to infer the year of `Dec  4 10:00:00` timestamps against (RFC 3339). Default:
    /// each file's modification time; standard input: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// A rule file (YAML, like rules/postfix.yaml) whose rules are tried before the built-in
    /// ones. May be given more than once.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Log files to read; `-` is standard input; gzip files are read transparently.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}
