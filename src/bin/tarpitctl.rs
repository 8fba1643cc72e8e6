//! `tarpitctl`: the operator's command.
use clap::Parser;

/// Control the tarpit daemon.
#[derive(Debug, Parser)]
#[command(name = "tarpitctl", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
