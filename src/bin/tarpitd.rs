//! `tarpitd`: the daemon. Acts on the flags defined in `tarpit::cli::tarpitd`; the work is in
//! `tarpit::daemon`.
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tarpit::cli::tarpitd::Cli;
use tarpit::config::Config;
use tarpit::stall::{load_stall_section, Shutdown, Stall, StallConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Standard error is the daemon's log, so one line says it.
            eprintln!("tarpitd: {}", tarpit::report::one_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// Logs to standard error; under systemd (which stamps each line itself) without timestamps.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.stall_only {
        return run_stall_only(cli.config.as_deref());
    }
    let loaded = Config::load(cli.config.as_deref())?;
    if cli.check_config {
        tarpit::daemon::load_rules(&loaded.config.rules)?;
        let from = loaded.path.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        println!("configuration ok ({from})");
        return Ok(());
    }
    if cli.teardown {
        tarpit::netfilter::Driver::new(&loaded.config.netfilter)?.teardown()?;
        tracing::info!(table = %loaded.config.netfilter.table, "tables removed");
        return Ok(());
    }
    tarpit::daemon::run(loaded)?;
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
