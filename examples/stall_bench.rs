//! Helper for `scripts/bench-stall.sh`: opens many client connections to a stall listener, or runs
//! the listener with the kernel's default socket buffers for comparison.
//!
//! `stall_bench clients --count N --sources S --target ADDR [--send BYTES]` connects N times from
//! S source addresses (by default 127.1.0.1, 127.1.0.2, ...), optionally writes BYTES on each
//! connection, prints `connected=... failed=...` and then holds every connection, never reading,
//! until killed.
//!
//! `stall_bench listen --config FILE [--kernel-default-buffers]` runs the stall listener from the
//! `stall:` section of FILE until SIGTERM/SIGINT; with the flag, without the socket buffer tuning.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use socket2::{Domain, Socket, Type};
use tarpit::stall::{load_stall_section, Shutdown, SocketBuffers, Stall};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open and hold client connections.
    Clients {
        /// Connections to open.
        #[arg(long)]
        count: usize,
        /// Source addresses to spread them over.
        #[arg(long, default_value_t = 32)]
        sources: u32,
        /// Offset of the first source address (so that several client processes use different ones).
        #[arg(long, default_value_t = 0)]
        first_source: u32,
        /// The address before the first source address.
        #[arg(long, default_value = "127.1.0.0")]
        source_base: Ipv4Addr,
        /// The listener.
        #[arg(long)]
        target: SocketAddr,
        /// Bytes to write on each connection right after connecting.
        #[arg(long, default_value_t = 0)]
        send: usize,
    },
    /// Run the listener.
    Listen {
        /// Config file with a `stall:` section.
        #[arg(long)]
        config: PathBuf,
        /// Keep the kernel's default socket buffers (no tuning).
        #[arg(long)]
        kernel_default_buffers: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Clients {
            count,
            sources,
            first_source,
            source_base,
            target,
            send,
        } => {
            let first = u32::from(source_base) + first_source;
            clients(count, sources.max(1), first, target, send)
        }
        Cmd::Listen {
            config,
            kernel_default_buffers,
        } => listen(&config, kernel_default_buffers),
    }
}

fn clients(
    count: usize,
    sources: u32,
    first: u32,
    target: SocketAddr,
    send: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let payload = vec![b'x'; send];
    let mut held = Vec::with_capacity(count);
    let mut failed = 0usize;
    for i in 0..count {
        let src = Ipv4Addr::from(first + 1 + (i as u32 % sources));
        match connect(src, target) {
            Ok(socket) => {
                if send > 0 {
                    socket.set_nonblocking(true)?;
                    // Whatever the kernel takes; the rest stays unsent, as with a stalled peer.
                    let _ = socket.send(&payload);
                }
                held.push(socket);
            }
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("connect {i} from {src}: {e}");
                }
            }
        }
    }
    println!(
        "connected={} failed={failed} seconds={:.2}",
        held.len(),
        started.elapsed().as_secs_f64()
    );
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn connect(src: Ipv4Addr, target: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
    socket.connect(&target.into())?;
    Ok(socket)
}

fn listen(config: &std::path::Path, kernel_default: bool) -> anyhow::Result<()> {
    let config = load_stall_section(config)?;
    let buffers = if kernel_default {
        SocketBuffers::KernelDefault
    } else {
        SocketBuffers::Minimal
    };
    let stall = Stall::bind_with(&config, buffers)?;
    let shutdown = Shutdown::new()?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers")?;
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = stop.trigger();
        }
    });
    stall.run(&shutdown)?;
    Ok(())
}
