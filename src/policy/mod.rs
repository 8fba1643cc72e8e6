//! Policy: who gets listed, for how long, and why.
//!
//! - [`config`]: the `mode`, `policy` and `ban` settings and their defaults.
//! - [`engine`]: the pure engine, events in, [`decision::Decision`]s out.
//! - [`decision`]: a listing decision and its JSON line.
//! - [`allow`]: who is never listed.
//! - [`spf`]: the hosts the `allow_spf` domains' SPF records authorise.
//! - [`key`], [`evidence`]: offender keys and the shared evidence ring.
//!
//! Nothing here touches the kernel, the disk (except reading a config file) or the clock.

pub mod allow;
pub mod config;
pub mod decision;
pub mod engine;
pub mod evidence;
pub mod key;
pub mod spf;
pub mod spf_dns;
