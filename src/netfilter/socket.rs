//! The netfilter netlink socket: sends a finalized batch as one datagram and reads back every
//! acknowledgement, and runs dumps.
//!
//! It knows netlink framing and nothing about tables or listings.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use nftnl::FinalizedBatch;

use super::raw::{self, AlignedBuf};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
/// Room for the largest datagram the kernel sends us (dump pages are at most 64 KiB + a page).
const RECV_BUF: usize = 1 << 20;
/// Receive buffer in the kernel: a batch of a million elements is answered by ~450 acks.
const RCVBUF: libc::c_int = 16 << 20;
/// A lost reply must not hang the daemon.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a batch failed.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The kernel refused the message with this sequence number.
    Refused { seq: u32, source: io::Error },
    /// Sending or receiving failed.
    Io(io::Error),
}

/// One netfilter netlink socket.
pub(crate) struct NlSocket {
    socket: mnl::Socket,
    fd: RawFd,
    buf: AlignedBuf,
    next_seq: u32,
}

impl NlSocket {
    /// Opens and binds a socket with room for large replies.
    pub(crate) fn open() -> io::Result<Self> {
        let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let fd = raw::socket_fd(&socket);
        if raw::set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            raw::set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)?;
        }
        // Errors then carry only the failing message's header, not its (up to 64 KiB) body.
        raw::set_int_option(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1)?;
        raw::set_recv_timeout(fd, REPLY_TIMEOUT)?;
        Ok(Self {
            socket,
            fd,
            buf: AlignedBuf::new(RECV_BUF),
            next_seq: 0x4000_0000,
        })
    }

    /// Sends the whole batch as ONE datagram (nfnetlink treats every datagram as its own
    /// transaction, so `mnl::Socket::send_all`'s one datagram per page breaks large batches)
    /// and reads one acknowledgement per sequence number. On failure the kernel has applied
    /// nothing; the error names the first refused message.
    pub(crate) fn send_batch(&mut self, batch: &FinalizedBatch) -> Result<(), BatchError> {
        let pages: Vec<&[u8]> = batch.iter().collect();
        let len: usize = pages.iter().map(|p| p.len()).sum();
        self.ensure_sndbuf(len).map_err(BatchError::Io)?;
        let sent = raw::send_datagram(self.fd, &pages).map_err(BatchError::Io)?;
        if sent != len {
            return Err(BatchError::Io(io::Error::other(format!(
                "the kernel took {sent} of the batch's {len} bytes"
            ))));
        }

        let seqs = batch.sequence_numbers();
        let mut pending = vec![true; seqs.len()];
        let mut left = pending.len();
        let mut refused: Option<(u32, i32)> = None;
        while left > 0 {
            // After a refusal the kernel may not answer every message; everything it does
            // answer is queued by the time `send` returned, so drain without waiting.
            let wait = refused.is_none();
            let Some(n) = raw::recv(self.fd, self.buf.bytes_mut(), wait).map_err(BatchError::Io)?
            else {
                break;
            };
            for msg in Messages::new(&self.buf.bytes()[..n]) {
                if msg.kind != NLMSG_ERROR || !seqs.contains(&msg.seq) {
                    continue;
                }
                let slot = (msg.seq - seqs.start) as usize;
                if pending[slot] {
                    pending[slot] = false;
                    left -= 1;
                }
                let code = msg.error_code().unwrap_or(-libc::EPROTO);
                if code != 0 && refused.is_none() {
                    refused = Some((msg.seq, -code));
                }
            }
        }
        match refused {
            Some((seq, errno)) => Err(BatchError::Refused {
                seq,
                source: io::Error::from_raw_os_error(errno),
            }),
            None => Ok(()),
        }
    }

    /// Sends a dump request built by [`raw::dump_request`] with the sequence number from
    /// [`NlSocket::seq`] and hands every reply message (header included) to `on_msg`.
    pub(crate) fn dump(
        &mut self,
        request: &[u8],
        seq: u32,
        mut on_msg: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        self.socket.send(request)?;
        loop {
            let Some(n) = raw::recv(self.fd, self.buf.bytes_mut(), true)? else {
                continue;
            };
            for msg in Messages::new(&self.buf.bytes()[..n]) {
                if msg.seq != seq {
                    continue;
                }
                match msg.kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = msg.error_code().unwrap_or(-libc::EPROTO);
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    _ => on_msg(msg.bytes),
                }
            }
        }
    }

    /// A fresh sequence number for a dump.
    pub(crate) fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// Grows the send buffer to hold a datagram of `len` bytes. `SO_SNDBUFFORCE` (root or
    /// CAP_NET_ADMIN, as nft does) ignores `net.core.wmem_max`; `SO_SNDBUF` is the fallback.
    fn ensure_sndbuf(&self, len: usize) -> io::Result<()> {
        let want = libc::c_int::try_from(len + (64 << 10)).unwrap_or(libc::c_int::MAX / 2);
        if raw::set_int_option(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want).is_err() {
            raw::set_int_option(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF, want)?;
        }
        Ok(())
    }
}

/// One netlink message inside a datagram.
pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) seq: u32,
    /// The whole message, header included.
    pub(crate) bytes: &'a [u8],
}

impl Message<'_> {
    /// The `error` field of an `NLMSG_ERROR` message (0 for an acknowledgement).
    fn error_code(&self) -> Option<i32> {
        let b = self.bytes.get(16..20)?;
        Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Splits a datagram (or a finalized batch) into netlink messages; stops at the first
/// malformed header.
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let h = self.rest.get(..16)?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < 16 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let msg = Message {
            kind: u16::from_ne_bytes([h[4], h[5]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            bytes: &self.rest[..len],
        };
        let advance = len.next_multiple_of(4).min(self.rest.len());
        self.rest = &self.rest[advance..];
        Some(msg)
    }
}
