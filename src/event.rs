//! The typed rejection event: what every stage after parsing speaks.
//!
//! An [`Event`] is one log line that says a remote client was refused (or misbehaved in a way the
//! MTA logged). It owns copies of the few fields later stages need, so it can travel down channels
//! without borrowing the read buffer. It must never carry an address taken from text the remote
//! client controls: `ip` comes only from the MTA-written client field (see `parse`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Why a line counts against a client. The vocabulary is fixed; it is printed in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventClass {
    /// The client is on a DNS blocklist the MTA consulted.
    RblListed,
    /// The client tried to relay through us to a foreign domain.
    RelayDenied,
    /// The recipient does not exist here.
    UnknownRecipient,
    /// The envelope sender was refused (access table, unknown domain, sender verification).
    SenderRejected,
    /// The client host itself was refused (no rDNS, access table on the client).
    ClientRejected,
    /// The HELO/EHLO name was refused.
    HeloRejected,
    /// Any other verdict of a policy: a policy service, greylisting, a plain access rule.
    PolicyRejected,
    /// The message content was refused after DATA: header/body checks, milters, spam filters.
    ContentRejected,
    /// The client broke the SMTP protocol: pregreet, pipelining, bare newlines, non-SMTP commands.
    ProtocolViolation,
    /// Authentication failed or was abandoned.
    AuthFailed,
    /// A connection or message rate limit, or too many errors or connections.
    RateLimited,
}

impl EventClass {
    /// Every class, in declaration order.
    pub const ALL: [EventClass; 11] = [
        EventClass::RblListed,
        EventClass::RelayDenied,
        EventClass::UnknownRecipient,
        EventClass::SenderRejected,
        EventClass::ClientRejected,
        EventClass::HeloRejected,
        EventClass::PolicyRejected,
        EventClass::ContentRejected,
        EventClass::ProtocolViolation,
        EventClass::AuthFailed,
        EventClass::RateLimited,
    ];

    /// The kebab-case name used in rules, configs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::RblListed => "rbl-listed",
            EventClass::RelayDenied => "relay-denied",
            EventClass::UnknownRecipient => "unknown-recipient",
            EventClass::SenderRejected => "sender-rejected",
            EventClass::ClientRejected => "client-rejected",
            EventClass::HeloRejected => "helo-rejected",
            EventClass::PolicyRejected => "policy-rejected",
            EventClass::ContentRejected => "content-rejected",
            EventClass::ProtocolViolation => "protocol-violation",
            EventClass::AuthFailed => "auth-failed",
            EventClass::RateLimited => "rate-limited",
        }
    }
}

impl fmt::Display for EventClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the class names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event class {0:?}; expected one of: rbl-listed, relay-denied, unknown-recipient, sender-rejected, client-rejected, helo-rejected, policy-rejected, content-rejected, protocol-violation, auth-failed, rate-limited")]
pub struct UnknownClass(pub String);

impl FromStr for EventClass {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownClass(s.to_owned()))
    }
}

/// Which MTA wrote the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mta {
    /// Postfix (any daemon: smtpd, postscreen, cleanup, ...).
    Postfix,
    /// Exim (mainlog, rejectlog or syslog).
    Exim,
}

impl Mta {
    /// The lowercase name used in rules and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Mta::Postfix => "postfix",
            Mta::Exim => "exim",
        }
    }
}

impl fmt::Display for Mta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejection (or misbehaviour) of one client, as the MTA logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When the MTA logged it (UTC offset as resolved from the log's own time zone).
    pub time: OffsetDateTime,
    /// The client's address, taken only from the MTA-written client field.
    pub ip: IpAddr,
    /// Why it counts.
    pub class: EventClass,
    /// Which MTA wrote it.
    pub mta: Mta,
    /// The daemon that wrote it: `smtpd`, `postscreen`, `cleanup`, `submission/smtpd`, `exim`, ...
    pub service: String,
    /// The envelope sender; `Some("")` for the null sender `<>` (bounces).
    pub sender: Option<String>,
    /// The envelope recipient, when the line names one.
    pub recipient: Option<String>,
    /// The HELO/EHLO name the client gave, when logged.
    pub helo: Option<String>,
    /// The SMTP reply code, when the line gives one (550, 450, ...).
    pub code: Option<u16>,
    /// The name of the rule that matched (for `show` and debugging).
    pub rule: String,
    /// The whole log line (lossily decoded, without its line end).
    pub line: String,
}

/// Our MTA delivered mail to a remote server: a correspondent, not an offender.
///
/// Postfix `smtp` lines with `status=sent` and Exim `=>` lines; the address is the one the MTA
/// connected to (`relay=name[addr]:port`, `H=name [addr]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When the MTA logged it.
    pub time: OffsetDateTime,
    /// The server our MTA delivered to.
    pub ip: IpAddr,
    /// Which MTA wrote it.
    pub mta: Mta,
    /// The queue id (Postfix) or message id (Exim), when logged, to tie it to its sender.
    pub queue_id: Option<String>,
    /// The name of the rule that matched.
    pub rule: String,
    /// The whole log line.
    pub line: String,
}
