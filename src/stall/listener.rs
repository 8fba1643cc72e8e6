//! The event loop: accept, refuse over the bounds, trickle one byte per interval to every held
//! connection, notice closes, and release everything on shutdown.
//!
//! One thread, one epoll, one [`TrickleQueue`]. Per connection it keeps a [`Held`] record of a few
//! dozen bytes in a table indexed by file descriptor; it never keeps a buffer per connection and
//! never reads more than [`READ_CAP`] bytes from any client (and in the default strategy nothing
//! at all). Bound checks happen right after `accept`: a connection over a bound is closed at once,
//! never queued. It must never panic and never block: every socket is non-blocking, and an error on
//! one connection closes that connection only.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;
use tracing::{debug, info, warn};

use super::config::Strategy;
use super::lines::Lines;
use super::stats::{Refusal, StallStats};
use super::sys::{self, Epoll, Ready, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLRDHUP};
use super::trickle::{Due, TrickleQueue};

/// Most bytes ever read from one client (reply strategy, while waiting for its first command).
pub const READ_CAP: u64 = 512;

/// Token of the shutdown eventfd; listening sockets use `LISTENER_TOKEN + index`; connections use
/// their file descriptor (always below `LISTENER_TOKEN`).
const SHUTDOWN_TOKEN: u64 = u64::MAX;
const LISTENER_TOKEN: u64 = 1 << 40;

/// Connections accepted per readiness report before timers get their turn again.
const ACCEPT_BATCH: usize = 256;

/// How long accepting pauses after the process or system ran out of descriptors or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Everything the loop needs, fixed at bind time.
pub(crate) struct Plan {
    pub listeners: Vec<(Socket, SocketAddr)>,
    pub interval: Duration,
    pub strategy: Strategy,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// The endless continuation lines (`220-` or `451-`).
    pub lines: Lines,
    /// Reply strategy: the complete greeting sent at once.
    pub banner: Vec<u8>,
}

/// Where a held connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reply strategy: greeting sent, reading (a little of) the first command.
    AwaitCommand,
    /// Being fed one byte per interval.
    Trickle,
}

/// One held connection: its socket and its accounting, nothing more.
#[derive(Debug)]
struct Held {
    socket: Socket,
    peer: SocketAddr,
    /// The destination port the client meant (from `SO_ORIGINAL_DST`); `None` when the kernel
    /// knows no redirect for it.
    orig_port: Option<u16>,
    started: Instant,
    started_ms: u64,
    /// Position in the endless lines.
    pos: u64,
    sent: u64,
    read: u64,
    generation: u32,
    phase: Phase,
}

/// The loop's state.
pub(crate) struct Loop<'a> {
    plan: &'a Plan,
    stats: &'a StallStats,
    epoll: Epoll,
    queue: TrickleQueue,
    held: Vec<Option<Held>>,
    live: usize,
    generation: u32,
    unsent: u64,
    paused_until: Option<Instant>,
    last_accept_warning: Option<Instant>,
}

/// Why a held connection ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Reset,
    WriteFailed,
    Shutdown,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Reset => "client closed or reset",
            End::WriteFailed => "write failed",
            End::Shutdown => "shutdown",
        }
    }
}

impl<'a> Loop<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        stats: &'a StallStats,
        wake: &sys::EventFd,
    ) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        epoll.add(wake.raw(), EPOLLIN, SHUTDOWN_TOKEN)?;
        for (i, (socket, _)) in plan.listeners.iter().enumerate() {
            epoll.add(socket.as_raw_fd(), EPOLLIN, LISTENER_TOKEN + i as u64)?;
        }
        Ok(Loop {
            plan,
            stats,
            epoll,
            queue: TrickleQueue::new(),
            held: Vec::new(),
            live: 0,
            generation: 0,
            unsent: 0,
            paused_until: None,
            last_accept_warning: None,
        })
    }

    /// Runs until the wake eventfd is signalled, then closes every held connection.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        // Writes due within `slack` are done together, so the loop wakes a few times per second
        // rather than once per connection; a byte a little early harms no one.
        let slack = (self.plan.interval / 50).min(Duration::from_millis(200));
        let mut raw = Vec::with_capacity(1024);
        let mut ready: Vec<Ready> = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            self.resume_accepting(now);
            while let Some(due) = self.queue.pop_due(now + slack) {
                self.on_due(due, now);
            }
            self.flush_sent();
            self.compact_queue();
            let timeout = [self.queue.next_at(), self.paused_until]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()));
            self.epoll.wait(&mut raw, &mut ready, timeout)?;
            for r in ready.iter().copied() {
                match r.token {
                    SHUTDOWN_TOKEN => {
                        self.release_all();
                        return Ok(());
                    }
                    t if t >= LISTENER_TOKEN => self.accept_from((t - LISTENER_TOKEN) as usize),
                    fd => self.on_ready(fd as usize, r.events),
                }
            }
        }
    }

    fn accept_from(&mut self, index: usize) {
        let Some((listener, bound)) = self.plan.listeners.get(index) else {
            return;
        };
        let port = bound.port();
        for _ in 0..ACCEPT_BATCH {
            match listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
                Ok((socket, addr)) => match addr.as_socket() {
                    Some(peer) => self.admit(socket, peer, port),
                    None => debug!("accepted a connection without an IP peer address; closed"),
                },
                Err(e) => match e.raw_os_error() {
                    _ if e.kind() == io::ErrorKind::WouldBlock => return,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.pause_accepting(e);
                        return;
                    }
                    // The client went away between SYN and accept, or a signal: try the next one.
                    _ => debug!(error = %e, "accept failed; continuing"),
                },
            }
        }
    }

    /// Holds a new connection accepted on `port`, or closes it at once if a bound is reached.
    fn admit(&mut self, socket: Socket, peer: SocketAddr, port: u16) {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let now = Instant::now();
        let now_ms = self.stats.millis(now);
        if let Err(refusal) = self.stats.admit(
            peer.ip(),
            now_ms,
            self.plan.max_connections,
            self.plan.max_per_ip,
        ) {
            let bound = match refusal {
                Refusal::Full => "max_connections",
                Refusal::PerIp => "max_per_ip",
            };
            debug!(%peer, bound, "refused: bound reached, closed at once");
            return;
        }
        let fd = socket.as_raw_fd();
        let phase = match self.plan.strategy {
            Strategy::Greeting => Phase::Trickle,
            Strategy::Reply => Phase::AwaitCommand,
        };
        let interest = match phase {
            Phase::Trickle => EPOLLRDHUP | EPOLLET,
            Phase::AwaitCommand => EPOLLIN | EPOLLRDHUP | EPOLLET,
        };
        let slot = fd as usize;
        if fd < 0 || slot as u64 >= LISTENER_TOKEN {
            self.stats.closed(peer.ip(), now_ms, now_ms);
            return;
        }
        if let Err(e) = self.epoll.add(fd, interest, slot as u64) {
            warn!(%peer, error = %e, "cannot watch an accepted connection; closed");
            self.stats.closed(peer.ip(), now_ms, now_ms);
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        let held = Held {
            orig_port: original_port(&socket, peer.ip()),
            socket,
            peer,
            started: now,
            started_ms: now_ms,
            pos: 0,
            sent: 0,
            read: 0,
            generation: self.generation,
            phase,
        };
        if held.orig_port.is_none_or(|p| p == port) {
            self.stats.direct();
        }
        debug!(%peer, orig_port = ?held.orig_port, "holding connection");
        if self.held.len() <= slot {
            self.held
                .resize_with((slot + 1).next_multiple_of(1024), || None);
        }
        let generation = held.generation;
        if let Some(entry) = self.held.get_mut(slot) {
            *entry = Some(held);
        }
        self.live += 1;
        match phase {
            Phase::Trickle => self.on_due(
                Due {
                    at: now,
                    slot: slot as u32,
                    generation,
                },
                now,
            ),
            Phase::AwaitCommand => self.send_banner(slot),
        }
    }

    /// Reply strategy: the whole greeting at once (it fits any send buffer).
    fn send_banner(&mut self, slot: usize) {
        let Some(Some(held)) = self.held.get_mut(slot) else {
            return;
        };
        match held
            .socket
            .send_with_flags(&self.plan.banner, libc::MSG_NOSIGNAL)
        {
            Ok(n) => {
                held.sent += n as u64;
                self.unsent += n as u64;
            }
            Err(_) => self.release(slot, End::WriteFailed, Instant::now()),
        }
    }

    /// A connection's write is due: one byte, then back in the queue.
    fn on_due(&mut self, due: Due, now: Instant) {
        let slot = due.slot as usize;
        let Some(Some(held)) = self.held.get_mut(slot) else {
            return;
        };
        if held.generation != due.generation || held.phase != Phase::Trickle {
            return;
        }
        let byte = [self.plan.lines.byte_at(held.pos)];
        match held.socket.send_with_flags(&byte, libc::MSG_NOSIGNAL) {
            Ok(n) => {
                held.pos += n as u64;
                held.sent += n as u64;
                self.unsent += n as u64;
            }
            // Send buffer full: the client reads nothing; try again next time.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.release(slot, End::WriteFailed, now);
                return;
            }
        }
        self.queue.push(Due {
            at: now + self.plan.interval,
            ..due
        });
    }

    fn on_ready(&mut self, slot: usize, events: u32) {
        if events & (EPOLLERR | EPOLLHUP) != 0 {
            self.release(slot, End::Reset, Instant::now());
            return;
        }
        if events & EPOLLIN != 0 {
            self.read_command(slot);
        }
        // EPOLLRDHUP alone: the client half-closed. It may still be waiting for our reply, so it
        // stays held; the next writes fail once it is really gone.
    }

    /// Reply strategy: read (and discard) up to the end of the first command line, at most
    /// [`READ_CAP`] bytes, then start the endless reply.
    fn read_command(&mut self, slot: usize) {
        let Some(Some(held)) = self.held.get_mut(slot) else {
            return;
        };
        if held.phase != Phase::AwaitCommand {
            return;
        }
        match read_line_end(held) {
            Ok(false) => return,
            Ok(true) => held.phase = Phase::Trickle,
            Err(_) => {
                self.release(slot, End::Reset, Instant::now());
                return;
            }
        }
        let generation = held.generation;
        let now = Instant::now();
        self.on_due(
            Due {
                at: now,
                slot: slot as u32,
                generation,
            },
            now,
        );
    }

    fn release(&mut self, slot: usize, end: End, now: Instant) {
        let Some(held) = self.held.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.live = self.live.saturating_sub(1);
        let now_ms = self.stats.millis(now);
        self.stats.closed(held.peer.ip(), held.started_ms, now_ms);
        let held_s = now.saturating_duration_since(held.started).as_secs();
        if matches!(end, End::Shutdown) {
            debug!(peer = %held.peer, held_s, "released at shutdown");
        } else {
            info!(
                peer = %held.peer,
                orig_port = ?held.orig_port,
                held_s,
                bytes_sent = held.sent,
                bytes_read = held.read,
                reason = end.as_str(),
                "stalled connection ended"
            );
        }
        // Dropping `held.socket` closes it, which also removes it from the epoll set.
    }

    fn release_all(&mut self) {
        let now = Instant::now();
        let count = self.live;
        for slot in 0..self.held.len() {
            self.release(slot, End::Shutdown, now);
        }
        self.flush_sent();
        info!(
            released = count,
            "stall listener shut down; closed every held connection"
        );
    }

    fn flush_sent(&mut self) {
        if self.unsent > 0 {
            self.stats.sent(self.unsent);
            self.unsent = 0;
        }
    }

    /// Entries of closed connections stay queued until due; drop them when they outnumber the live
    /// ones by far (a client that connects and disconnects fast).
    fn compact_queue(&mut self) {
        if self.queue.len() <= 2 * self.live + 4096 {
            return;
        }
        let held = &self.held;
        self.queue.compact(
            |d| matches!(held.get(d.slot as usize), Some(Some(h)) if h.generation == d.generation),
        );
    }

    fn pause_accepting(&mut self, error: io::Error) {
        let now = Instant::now();
        if self
            .last_accept_warning
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            warn!(error = %error, held = self.live, "cannot accept more connections now; pausing accept briefly");
            self.last_accept_warning = Some(now);
        }
        for (i, (socket, _)) in self.plan.listeners.iter().enumerate() {
            // Level-triggered with no events: the backlog stays queued in the kernel meanwhile.
            let _ = self
                .epoll
                .modify(socket.as_raw_fd(), 0, LISTENER_TOKEN + i as u64);
        }
        self.paused_until = Some(now + ACCEPT_PAUSE);
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
            for (i, (socket, _)) in self.plan.listeners.iter().enumerate() {
                if let Err(e) =
                    self.epoll
                        .modify(socket.as_raw_fd(), EPOLLIN, LISTENER_TOKEN + i as u64)
                {
                    warn!(error = %e, "cannot resume accepting on a listening socket");
                }
            }
        }
    }
}

/// Reads and discards what the client sent, up to [`READ_CAP`] bytes in all. `Ok(true)` when the
/// first line has ended (or the client stopped sending, or the cap is reached): time to reply.
fn read_line_end(held: &mut Held) -> io::Result<bool> {
    let mut buf = [0u8; 64];
    while held.read < READ_CAP {
        let want = buf.len().min((READ_CAP - held.read) as usize);
        match (&held.socket).read(&mut buf[..want]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                held.read += n as u64;
                if buf[..n].contains(&b'\n') {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The destination port the client originally connected to, as recorded by the kernel's NAT when
/// an nft `redirect` sent it here; `None` when there was no redirect (or no connection tracking).
fn original_port(socket: &Socket, peer: IpAddr) -> Option<u16> {
    let addr = match peer {
        IpAddr::V4(_) => socket.original_dst_v4(),
        IpAddr::V6(_) => socket.original_dst_v6(),
    };
    addr.ok().and_then(|a| a.as_socket()).map(|a| a.port())
}
