//! `tarpitd`'s command line: the flags, their help text, nothing else.
//!
//! The binary parses it and the man page generator ([`super::man`]) renders it, so both read the
//! one definition. It must never act on a flag; `src/bin/tarpitd.rs` does that.

use std::path::PathBuf;

use clap::Parser;

/// The tarpit daemon: follows the mail logs, lists MTAs that keep sending unwanted mail in an
/// nftables set, and holds their SMTP connections stuck.
#[derive(Debug, Parser)]
#[command(name = "tarpitd", version, about)]
pub struct Cli {
    /// The configuration file [default: /etc/tarpit/tarpit.yaml when it exists, else the
    /// built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (and the rule files it names), say what is wrong, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Remove tarpit's nftables tables (`inet`, `ip` and `ip6` tables named by
    /// `netfilter.table`) with every listing in them, then exit. Other tables are not touched.
    #[arg(long)]
    pub teardown: bool,

    /// Run only the stall listener: reads only the `stall:` section of the config, needs no root
    /// and no nftables; stops on SIGTERM or SIGINT.
    #[arg(long)]
    pub stall_only: bool,
}
