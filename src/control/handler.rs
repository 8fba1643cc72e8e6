//! The seam between the control socket and the daemon: one method per request.
//!
//! Owns the [`ControlHandler`] trait and the dispatch from a [`Request`] to it. The daemon
//! implements the trait; this module never holds state of its own.

use std::future::Future;

use super::address::Address;
use super::protocol::{
    AddRequest, Added, ControlError, Flushed, History, HistoryDays, HostReport, Listing, Payload,
    Reloaded, Removed, Reply, Request, Stats, Status,
};

/// What the daemon does for each control request. The server calls these from tokio tasks,
/// one per request, and a request runs to its end even when its client has gone away or its
/// reply timed out, so a change is never left half-done by the socket.
///
/// Return a [`ControlError`] whose code says what went wrong: `not_found` when the address is
/// not listed, `refused` for an allowlisted address without `force`, `config_rejected` when a
/// reload finds the new file invalid, `internal` when state or kernel fail. Its message is
/// shown to the operator as is, so it should say what to do next.
pub trait ControlHandler: Send + Sync + 'static {
    /// `status`: daemon up, mode, sources and positions, table present, counts.
    fn status(&self) -> impl Future<Output = Result<Status, ControlError>> + Send;

    /// `list`: the listings in force, ordered by address; with `expired`, also those that have
    /// run out and are still remembered.
    fn list(
        &self,
        expired: bool,
    ) -> impl Future<Output = Result<Vec<Listing>, ControlError>> + Send;

    /// `show`: the listing covering `address` (a host inside a listed /64 finds the /64), its
    /// offence history and its allowlist verdict. An address that is neither listed nor has a
    /// history is still a report (listing absent, history empty), not an error.
    fn show(
        &self,
        address: Address,
    ) -> impl Future<Output = Result<HostReport, ControlError>> + Send;

    /// `add`: list by hand; refuse an allowlisted address unless `request.force`.
    fn add(&self, request: AddRequest) -> impl Future<Output = Result<Added, ControlError>> + Send;

    /// `del`: remove from the kernel set and the state at once; with `forget`, also clear the
    /// offence history. `not_found` when nothing covered `address`.
    fn del(
        &self,
        address: Address,
        forget: bool,
    ) -> impl Future<Output = Result<Removed, ControlError>> + Send;

    /// `flush`: unlist everybody.
    fn flush(&self) -> impl Future<Output = Result<Flushed, ControlError>> + Send;

    /// `stats`: figures.
    fn stats(&self) -> impl Future<Output = Result<Stats, ControlError>> + Send;

    /// `history`: figures per UTC hour from midnight `days - 1` days ago until now; hours
    /// without figures (the daemon was not running) are left out.
    fn history(
        &self,
        days: HistoryDays,
    ) -> impl Future<Output = Result<History, ControlError>> + Send;

    /// `reload`: re-read the configuration as on SIGHUP; `config_rejected` (old config kept)
    /// when the new one is invalid.
    fn reload(&self) -> impl Future<Output = Result<Reloaded, ControlError>> + Send;
}

/// Calls the handler's method for `request` and wraps its answer as a reply.
pub async fn dispatch<H: ControlHandler>(handler: &H, request: Request) -> Reply {
    let result = match request {
        Request::Status {} => handler.status().await.map(Payload::Status),
        Request::List { expired } => handler
            .list(expired)
            .await
            .map(|listings| Payload::Listings { listings }),
        Request::Show { address } => handler.show(address).await.map(Payload::Host),
        Request::Add(add) => handler.add(add).await.map(Payload::Added),
        Request::Del { address, forget } => {
            handler.del(address, forget).await.map(Payload::Removed)
        }
        Request::Flush {} => handler.flush().await.map(Payload::Flushed),
        Request::Stats {} => handler.stats().await.map(Payload::Stats),
        Request::History { days } => handler.history(days).await.map(Payload::History),
        Request::Reload {} => handler.reload().await.map(Payload::Reloaded),
    };
    Reply::from(result)
}
