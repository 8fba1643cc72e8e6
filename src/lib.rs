//! tarpit: make spamming a mail domain expensive.
//!
//! The crate's map, one stage per module, data flowing one way:
//!
//! - [`source`]: read log lines (files, gzip, stdin) in big buffers, one line at a time.
//! - [`parse`]: turn a Postfix or Exim log line into a typed [`event::Event`], by rules kept as data.
//! - [`control`]: the user-facing commands that drive the stages (`tarpitctl replay`, ...).
//! - [`state`]: what survives a restart: listings, offender history, source positions.
//! - [`event`]: the event model every stage after parsing speaks.

pub mod control;
pub mod duration;
pub mod event;
pub mod parse;
pub mod source;
pub mod state;
