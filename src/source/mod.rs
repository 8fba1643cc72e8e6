//! Sources: where log lines come from.
//!
//! [`input`] opens a file, a gzip file or standard input; [`lines`] splits what it reads into
//! lines without an allocation per line. Following live logs (rotation, journald, saved
//! positions) builds on these.

pub mod input;
pub mod lines;
