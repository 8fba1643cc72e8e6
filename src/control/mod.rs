//! Control: the commands that drive the stages for an operator, and the daemon's control socket.
//!
//! - [`replay`] runs logs through the parser offline, for checking rules against real logs.
//! - [`protocol`]: the line-delimited JSON requests and replies (the reference is there).
//! - [`address`]: a host or prefix as operators write it.
//! - [`config`]: the `control:` settings.
//! - [`server`]: the daemon's socket (bind, admit peers, bounded framing in [`connection`],
//!   identities in [`peer`]) dispatching to a [`handler::ControlHandler`] the daemon implements.
//! - [`client`]: one request, one reply, for `tarpitctl`; [`commands`] runs its daemon commands
//!   (with the read-only fallback in [`offline`]), [`mod@format`] prints them ([`chart`] draws
//!   `stats --history`), [`ctl_config`] reads the socket and state paths from the daemon's file
//!   and checks that file.

pub mod address;
pub mod chart;
pub mod client;
pub mod commands;
pub mod config;
pub mod connection;
pub mod ctl_config;
pub mod format;
pub mod handler;
pub mod offline;
pub mod peer;
pub mod protocol;
pub mod replay;
pub mod replay_parallel;
pub mod server;
pub mod views;
