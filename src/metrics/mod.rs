//! The optional Prometheus endpoint: `GET /metrics` on the address in `metrics.listen`.
//!
//! - [`config`]: the `metrics:` section (off unless it names an address).
//! - [`snapshot`]: the figures of one scrape, as plain data filled by the daemon's core.
//! - [`render`]: the snapshot in OpenMetrics or Prometheus text, via `prometheus-client`.
//! - [`http`]: the little HTTP/1.x a scrape needs, bounded.
//! - [`server`]: the listener on its own thread, with its limits.
//!
//! The endpoint only reads: it never changes a listing, and it counts nothing the daemon does
//! not count already for `tarpitctl stats`.

pub mod config;
pub mod http;
pub mod render;
pub mod server;
pub mod snapshot;

pub use config::MetricsConfig;
pub use render::{render, Format};
pub use server::{Collect, Limits, MetricsError, MetricsHandle, MetricsServer};
pub use snapshot::Snapshot;
