//! tarpit: make spamming a mail domain expensive.
//!
//! The crate's map, one stage per module, data flowing one way:
//!
//! - [`source`]: read log lines (files, gzip, stdin, followed live logs, the journal) with positions to resume from.
//! - [`parse`]: turn a Postfix or Exim log line into a typed [`event::Event`], by rules kept as data.
//! - [`control`]: the user-facing commands (`tarpitctl`) and the daemon's control socket.
//! - [`stall`]: the listener that holds diverted SMTP connections open, one byte per interval.
//! - [`state`]: what survives a restart: listings, offender history, source positions.
//! - [`cli`]: the command lines of `tarpitd` and `tarpitctl`, and their man pages.
//! - [`config`]: the daemon's configuration file, every section typed.
//! - [`daemon`]: `tarpitd`: builds the stages, restores state, runs until stopped.
//! - [`event`]: the event model every stage after parsing speaks.
//! - [`netfilter`]: tarpit's own nftables table over netlink: listed prefixes with timeouts, diversion rules.
//! - [`policy`]: the pure engine that turns events into listing decisions, and its config.
//! - [`report`]: how the binaries word an error for a person.
//! - [`metrics`]: the optional Prometheus endpoint (`GET /metrics`).

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod duration;
pub mod event;
pub mod metrics;
pub mod netfilter;
pub mod parse;
pub mod policy;
pub mod report;
pub mod source;
pub mod stall;
pub mod state;
