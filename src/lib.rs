//! tarpit: make spamming a mail domain expensive.
//!
//! The crate's map, one stage per module, data flowing one way:
//!
//! - [`source`]: read log lines (files, gzip, stdin) in big buffers, one line at a time.
//! - [`parse`]: turn a Postfix or Exim log line into a typed [`event::Event`], by rules kept as data.
//! - [`control`]: the user-facing commands that drive the stages (`tarpitctl replay`, ...).
//! - [`event`]: the event model every stage after parsing speaks.
//! - [`policy`]: the pure engine that turns events into listing decisions, and its config.

pub mod control;
pub mod duration;
pub mod event;
pub mod parse;
pub mod policy;
pub mod source;
