//! tarpit: make spamming a mail domain expensive.
//!
//! The crate's map, one stage per module, data flowing one way:
//!
//! - [`source`]: read log lines (files, gzip, stdin, followed live logs, the journal) with positions to resume from.
//! - [`parse`]: turn a Postfix or Exim log line into a typed [`event::Event`], by rules kept as data.
//! - [`control`]: the user-facing commands that drive the stages (`tarpitctl replay`, ...).
//! - [`event`]: the event model every stage after parsing speaks.

pub mod control;
pub mod duration;
pub mod event;
pub mod parse;
pub mod source;
