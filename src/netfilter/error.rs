//! The netfilter driver's error type: what was being done, and the kernel's errno.

use std::io;

use ipnet::IpNet;

use super::tarpit_target::TarpitTargetMissing;

/// Everything the netfilter driver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    /// The configuration is unusable; the message names the setting.
    #[error("invalid netfilter configuration: {0}")]
    Config(String),
    /// Tarpit mode was asked for on a kernel without the `TARPIT` target.
    #[error(transparent)]
    TarpitTarget(#[from] TarpitTargetMissing),
    /// The netlink socket could not be opened or configured.
    #[error(
        "cannot open a netfilter netlink socket ({source}); tarpitd needs root or CAP_NET_ADMIN"
    )]
    Socket {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a batch; nothing of it was applied.
    #[error("the kernel refused to {op} ({step}): {source}; nothing was changed")]
    Rejected {
        /// The driver operation, e.g. "add 3 listings to table inet tarpit".
        op: String,
        /// The message of the batch that failed, e.g. "add elements to set listed_v4".
        step: String,
        /// The kernel's errno as an I/O error.
        #[source]
        source: io::Error,
    },
    /// A set of tarpit's name exists with another key type or flags (made by hand, or by
    /// another version of tarpit), so the table cannot be adopted.
    #[error(
        "{what} already exists with another type or flags (made by hand or by another \
         version of tarpit): remove tarpit's table with `tarpitd --teardown`, which drops its \
         listings, and start again; nothing was changed"
    )]
    Incompatible {
        /// The object, e.g. "set inet tarpit listed_v4".
        what: String,
    },
    /// Talking to the kernel failed (send, receive, or an unreadable reply).
    #[error("netlink I/O failed while trying to {op}: {source}")]
    Io {
        /// The driver operation.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A listing had a zero timeout, which the kernel would read as "never expires".
    #[error("cannot list {net} with a zero timeout (the kernel would keep it forever)")]
    ZeroTimeout {
        /// The listing.
        net: IpNet,
    },
}

impl NetfilterError {
    /// The kernel's errno, when the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Rejected { source, .. } | Self::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
