//! Opening the listening sockets: dual-stack or not, address reuse, and the minimal socket
//! buffers that every accepted connection inherits.
//!
//! Owns socket set-up only; it never accepts. Buffers are set on the listening socket before
//! `listen()` because the receive window is announced in the handshake: set later, a client could
//! already have been promised a large window.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may queue before we accept them.
const BACKLOG: i32 = 1024;

/// How the socket buffers of held connections are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocketBuffers {
    /// As small as the kernel allows (`SO_RCVBUF`/`SO_SNDBUF` = 1, which the kernel rounds up to
    /// its minimum, about 2.3 KiB / 4.6 KiB): a client that talks anyway soon finds the window
    /// closed, and its data costs us at most that.
    #[default]
    Minimal,
    /// The kernel's defaults (`net.ipv4.tcp_rmem`/`tcp_wmem`). Only for measuring what the
    /// tuning saves.
    KernelDefault,
}

/// Opens a non-blocking listening socket on `addr`. An IPv6 wildcard takes IPv4 too unless
/// `v6_only` (set when IPv4 addresses are listed as well, so both can bind the same port).
pub fn listen(addr: SocketAddr, v6_only: bool, buffers: SocketBuffers) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.set_reuse_address(true)?;
    if buffers == SocketBuffers::Minimal {
        socket.set_recv_buffer_size(1)?;
        socket.set_send_buffer_size(1)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_buffers_are_inherited_by_accepted_sockets() {
        let listener = listen(
            "127.0.0.1:0".parse().unwrap(),
            false,
            SocketBuffers::Minimal,
        )
        .unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let rcv = accepted.recv_buffer_size().unwrap();
        let default = listen(
            "127.0.0.1:0".parse().unwrap(),
            false,
            SocketBuffers::KernelDefault,
        )
        .unwrap()
        .recv_buffer_size()
        .unwrap();
        assert!(
            rcv <= 8192,
            "accepted socket kept a {rcv}-byte receive buffer"
        );
        assert!(rcv < default, "{rcv} vs kernel default {default}");
    }
}
