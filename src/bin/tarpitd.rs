//! `tarpitd`: the daemon.
use clap::Parser;

/// The tarpit daemon.
#[derive(Debug, Parser)]
#[command(name = "tarpitd", version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
