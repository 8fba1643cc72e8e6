//! The netfilter stage: tarpit's own nftables table, spoken to over netlink.
//!
//! It owns one table (`inet tarpit` by default; `ip`/`ip6` ones in tarpit mode) with two
//! interval sets of listed prefixes, each element with its own timeout, and the rules that
//! divert listed hosts' SMTP connections: a nat redirect to the stall listener (stall mode)
//! or the kernel's `TARPIT` target (tarpit mode). It never edits any other table, and it
//! never shells out to `nft`.
//!
//! - [`driver`]: the operations (ensure, add, remove, list, flush, teardown, check, repair).
//! - [`watch`]: a thread that notices a flushed or deleted table and repairs it.
//! - [`config`]: the `netfilter:` settings. [`tarpit_target`]: is `TARPIT` available?
//! - `rules`, `elements`, `socket`, `raw`: building batches, element encoding, netlink I/O,
//!   and the few unsafe libnftnl calls.

pub mod config;
pub mod driver;
mod elements;
pub mod error;
mod raw;
pub mod rules;
mod socket;
pub mod tarpit_target;
pub mod watch;

pub use config::{Action, NetfilterConfig};
pub use driver::{AddReport, Diverted, Driver, Health, Refresh};
pub use elements::{Skipped, MAX_TIMEOUT};
pub use error::NetfilterError;
pub use watch::Watcher;
