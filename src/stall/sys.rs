//! The few raw Linux calls the stall listener needs that `std` and `socket2` do not offer: epoll,
//! an eventfd to wake the loop, and the open-file limit.
//!
//! Owns every `unsafe` block of the stall module; each wraps one system call whose arguments are
//! owned values or stack buffers of the right size. Nothing here knows about SMTP.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readiness flags used by the listener (see `epoll_ctl(2)`).
pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
/// The peer shut down its sending side.
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Error on the socket (always reported).
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
/// Both directions closed (always reported).
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// Edge-triggered: report a change once, not while the condition lasts.
pub const EPOLLET: u32 = libc::EPOLLET as u32;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// One readiness report: the token given at registration and the flags.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// The registration's token.
    pub token: u64,
    /// `EPOLL*` flags.
    pub events: u32,
}

impl Epoll {
    /// A new epoll instance (close-on-exec).
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call with a flag argument; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Registers `fd` for `events`, reporting `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes the events `fd` is registered for.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid, initialised struct that outlives the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (forever if `None`) and fills `out` with what is ready; an
    /// interrupted wait returns no events.
    pub fn wait(
        &self,
        buf: &mut Vec<libc::epoll_event>,
        out: &mut Vec<Ready>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        out.clear();
        let ms = match timeout {
            None => -1,
            // Round up so that a wake-up never comes before the deadline it waits for.
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        let cap = buf.capacity().clamp(1, i32::MAX as usize);
        buf.clear();
        // SAFETY: the kernel writes at most `cap` events into `buf`'s spare capacity.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr(),
                cap as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: epoll_wait initialised the first `n` (≤ cap) entries.
        unsafe { buf.set_len(n as usize) };
        out.extend(buf.iter().map(|e| Ready {
            token: e.u64,
            events: e.events,
        }));
        Ok(())
    }
}

/// An eventfd: a counter another thread can bump to wake the loop.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the eventfd readable. Safe from any thread and from a signal handler's thread.
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            // A full counter already means "signalled".
            if err.kind() != io::ErrorKind::WouldBlock {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Whether the eventfd has been signalled (does not reset it).
    pub fn is_signalled(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut poll, 1, 0) };
        n > 0 && poll.revents & libc::POLLIN != 0
    }

    /// The descriptor, for registering with epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The open-file limit: (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid struct the kernel fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft open-file limit (the hard limit is left as it is).
pub fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid, initialised struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_wakes_epoll() {
        let ep = Epoll::new().unwrap();
        let ev = EventFd::new().unwrap();
        ep.add(ev.raw(), EPOLLIN, 42).unwrap();
        let mut buf = Vec::with_capacity(4);
        let mut out = Vec::new();
        ep.wait(&mut buf, &mut out, Some(Duration::from_millis(1)))
            .unwrap();
        assert!(out.is_empty());
        assert!(!ev.is_signalled());
        ev.signal().unwrap();
        ep.wait(&mut buf, &mut out, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].token, 42);
        assert!(ev.is_signalled());
    }
}
