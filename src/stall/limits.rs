//! Bounds on what the listener holds: the open-file limit raised at start, and `max_connections`
//! lowered to what that limit allows.
//!
//! Owns the arithmetic and the start-up log lines about limits; it never accepts or closes a
//! connection.

use tracing::{info, warn};

use super::sys;

/// Descriptors kept free for everything that is not a held connection: the listening sockets,
/// epoll, the daemon's log files, netlink, control socket, state database.
pub const FD_RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard limit and logs both. Returns the soft limit now in
/// force (the old one if raising failed, which is logged as a warning).
pub fn raise_nofile() -> u64 {
    let (soft, hard) = match sys::nofile_limit() {
        Ok(limits) => limits,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE); assuming 1024");
            return 1024;
        }
    };
    if soft >= hard {
        info!(
            soft,
            hard, "open-file limit (RLIMIT_NOFILE) already at its hard limit"
        );
        return soft;
    }
    match sys::set_nofile_soft(hard, hard) {
        Ok(()) => {
            info!(
                from = soft,
                to = hard,
                "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
            );
            hard
        }
        Err(e) => {
            warn!(soft, hard, error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE)");
            soft
        }
    }
}

/// The connection bound that fits under `nofile` descriptors: `wanted`, or `nofile` minus
/// [`FD_RESERVE`] if that is smaller (at least 1).
pub fn fit_connections(wanted: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(FD_RESERVE).max(1);
    (wanted as u64).min(room) as usize
}

/// Applies [`fit_connections`] and warns, naming `LimitNOFILE=`, when the bound had to be lowered.
pub fn effective_max_connections(wanted: usize, nofile: u64) -> usize {
    let fitted = fit_connections(wanted, nofile);
    if fitted < wanted {
        warn!(
            configured = wanted,
            effective = fitted,
            open_file_limit = nofile,
            "stall.max_connections lowered to fit the open-file limit; to hold more, raise the limit \
             (systemd: LimitNOFILE={} in the tarpitd unit; shell: ulimit -Hn)",
            wanted as u64 + FD_RESERVE
        );
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_configured_bound_when_it_fits() {
        assert_eq!(fit_connections(20_000, 1_048_576), 20_000);
        assert_eq!(fit_connections(100, 1024), 100);
    }

    #[test]
    fn lowers_the_bound_to_the_limit_minus_the_reserve() {
        assert_eq!(
            fit_connections(20_000, 20_000),
            20_000 - FD_RESERVE as usize
        );
        assert_eq!(fit_connections(20_000, 1024), 1024 - FD_RESERVE as usize);
        assert_eq!(fit_connections(20_000, 10), 1);
    }

    #[test]
    fn raising_leaves_soft_at_hard() {
        let now = raise_nofile();
        let (soft, hard) = sys::nofile_limit().unwrap();
        assert_eq!(now, soft);
        assert_eq!(soft, hard);
    }
}
