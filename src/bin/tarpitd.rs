//! `tarpitd`: the daemon.
use clap::Parser;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.teardown {
        let config = tarpit::netfilter::NetfilterConfig::default();
        tarpit::netfilter::Driver::new(&config)?.teardown()?;
        return Ok(());
    }
    Ok(())
}
