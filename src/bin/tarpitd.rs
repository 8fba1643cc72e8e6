//! `tarpitd`: the daemon.
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use tarpit::stall::{load_stall_section, Shutdown, Stall, StallConfig};

/// The tarpit daemon.
#[derive(Debug, Parser)]
#[command(name = "tarpitd", version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Remove tarpit's nftables tables (`inet`, `ip` and `ip6` tables named `tarpit`) with
    /// every listing in them, then exit. Other tables are not touched.
    #[arg(long)]
    teardown: bool,

    /// Run only the stall listener: reads only the `stall:` section of the config, needs no root
    /// and no nftables; stops on SIGTERM or SIGINT.
    #[arg(long)]
    stall_only: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if cli.teardown {
        let config = tarpit::netfilter::NetfilterConfig::default();
        tarpit::netfilter::Driver::new(&config)?.teardown()?;
        return Ok(());
    }
    if cli.stall_only {
        return run_stall_only(cli.config.as_deref());
    }
    Ok(())
}

/// `--stall-only`: the listener alone, until SIGTERM or SIGINT.
fn run_stall_only(config: Option<&Path>) -> anyhow::Result<()> {
    let config = match config {
        Some(path) => load_stall_section(path)?,
        None => StallConfig::default(),
    };
    let stall = Stall::bind(&config)?;
    let shutdown = Shutdown::new()?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install the SIGTERM/SIGINT handlers")?;
    let trigger = shutdown.clone();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            tracing::info!(signal, "stopping: closing every held connection");
            if let Err(e) = trigger.trigger() {
                tracing::error!(error = %e, "cannot stop the stall listener");
            }
        }
    });
    stall.run(&shutdown)?;
    Ok(())
}
