//! The command lines of `tarpitd` and `tarpitctl`, defined once for the binaries and the man
//! pages.
//!
//! Owns the clap definitions ([`tarpitd`], [`tarpitctl`]) and their rendering as man pages
//! ([`man`]). It never carries out a command: the binaries in `src/bin/` do that.

pub mod man;
pub mod tarpitctl;
pub mod tarpitd;
