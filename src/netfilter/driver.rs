//! The netfilter driver: ensure, add, remove, list, flush, teardown, check and repair, each
//! one atomic netlink batch (or one dump) against tarpit's own table.
//!
//! It holds no state beyond its configuration: what is listed lives in the kernel, and after
//! damage the caller supplies the live listings to [`Driver::repair`]. It never touches a
//! table other than its own.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use ipnet::IpNet;
use nftnl::ProtoFamily;

use super::config::{Action, NetfilterConfig};
use super::elements::{self, Skipped};
use super::error::NetfilterError;
use super::raw::{self, AlignedBuf, DumpOf, ElemOp};
use super::rules::{self, Finished, Interval, Kind, Layout, Plan, KINDS};
use super::socket::{BatchError, NlSocket};
use super::tarpit_target::TargetProbe;

/// How a listing that is already in the set gets its new timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refresh {
    /// [`Refresh::ReAdd`] on kernels since 6.12, [`Refresh::DeleteAdd`] before.
    #[default]
    Auto,
    /// Add without `NLM_F_EXCL`: since Linux 6.12 the kernel then updates the timeout of an
    /// element that is already there (older kernels accept it but keep the old timeout).
    ReAdd,
    /// Add with `NLM_F_EXCL`; when that fails because some are listed, read the set and
    /// delete and re-add those in one batch. Works on every kernel.
    DeleteAdd,
}

/// What [`Driver::add`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Prefixes now listed with the requested timeout.
    pub added: usize,
    /// Prefixes left out because a wider listed or requested prefix already covers them.
    pub skipped: Vec<Skipped>,
}

/// Whether the kernel still holds everything tarpit put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Tables, sets, chain and rules are all there.
    Intact,
    /// Something is missing; the text says what.
    Damaged(String),
}

/// Packets and bytes that hit the diversion rules since they were (re)created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diverted {
    /// Packets matched (for a redirect: the first packet of each connection).
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
}

/// The netfilter driver.
#[derive(Debug, Clone)]
pub struct Driver {
    layout: Layout,
    refresh: Refresh,
}

impl Driver {
    /// A driver for `config`. Tarpit mode is refused unless the kernel can run `TARPIT`.
    pub fn new(config: &NetfilterConfig) -> Result<Self, NetfilterError> {
        Self::with_probe(config, &TargetProbe::system())
    }

    /// As [`Driver::new`], with the `TARPIT` probe given (tests point it at fixtures).
    pub fn with_probe(
        config: &NetfilterConfig,
        probe: &TargetProbe,
    ) -> Result<Self, NetfilterError> {
        let layout = Layout::new(config)?;
        if layout.action == Action::Tarpit {
            probe.check()?;
        }
        Ok(Self {
            layout,
            refresh: Refresh::Auto,
        })
    }

    /// Chooses how re-listing refreshes a timeout (default [`Refresh::Auto`]).
    pub fn with_refresh(mut self, refresh: Refresh) -> Self {
        self.refresh = refresh;
        self
    }

    /// Creates the table, sets, chain and rules, or adopts them if they exist, in one batch.
    /// Listings already in the sets survive (that is how they outlive a daemon restart); the
    /// diversion rules are replaced by the configured ones, which resets their counters.
    /// Switching `action` deletes the other action's tables, listings included: follow it
    /// with [`Driver::repair`] (or [`Driver::add`]) of the live listings.
    pub fn ensure(&self) -> Result<(), NetfilterError> {
        let mut plan = Plan::new();
        plan.structure(&self.layout);
        let op = format!("create or adopt {}", self.layout.describe_own());
        match self.apply(plan, &op) {
            Err(NetfilterError::Rejected { step, source, .. })
                if source.raw_os_error() == Some(libc::EEXIST)
                    && step.starts_with("create set ") =>
            {
                Err(NetfilterError::Incompatible {
                    what: step.trim_start_matches("create ").to_owned(),
                })
            }
            other => other,
        }
    }

    /// Lists every prefix with its own timeout, in one batch. A prefix already listed gets
    /// the new timeout; a prefix inside a wider listed or requested one is skipped (reported);
    /// a listed prefix inside a wider requested one is replaced by it. Timeouts above the
    /// kernel's limit are clamped; a zero timeout is an error and nothing is changed.
    pub fn add(&self, items: &[(IpNet, Duration)]) -> Result<AddReport, NetfilterError> {
        let (kept, mut skipped) = elements::normalize(items);
        let timed = with_timeouts(&kept)?;
        let op = format!(
            "add {} listing(s) to {}",
            timed.len(),
            self.layout.describe_own()
        );
        let fast = match self.refresh_mode() {
            Refresh::ReAdd => ElemOp::Upsert,
            _ => ElemOp::Create,
        };
        let mut plan = Plan::new();
        self.write_elements(&mut plan, &timed, fast);
        match self.apply(plan, &op) {
            Ok(()) => {
                return Ok(AddReport {
                    added: timed.len(),
                    skipped,
                })
            }
            Err(e) if matches!(e.errno(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {}
            Err(e) => return Err(e),
        }
        // Some of them are listed already, or overlap listed prefixes: read the set and
        // replace exactly those. An element can expire between the read and the batch, so
        // a refusal with ENOENT is retried once.
        let mut last = None;
        for _ in 0..2 {
            let current = self.list()?;
            let (deletes, adds, covered) = reconcile(&current, &timed);
            let mut plan = Plan::new();
            self.write_elements(&mut plan, &deletes, ElemOp::Delete);
            self.write_elements(&mut plan, &adds, ElemOp::Create);
            match self.apply(plan, &op) {
                Ok(()) => {
                    skipped.extend(covered);
                    return Ok(AddReport {
                        added: adds.len(),
                        skipped,
                    });
                }
                Err(e) if e.errno() == Some(libc::ENOENT) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| NetfilterError::Io {
            op,
            source: io::Error::other("set changed while it was being updated"),
        }))
    }

    /// Removes these prefixes (exact matches); ones that are not listed are ignored.
    /// Returns how many were removed.
    pub fn remove(&self, nets: &[IpNet]) -> Result<usize, NetfilterError> {
        let wanted: Vec<IpNet> = {
            let mut v: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
            v.sort();
            v.dedup();
            v
        };
        let op = format!(
            "remove {} listing(s) from {}",
            wanted.len(),
            self.layout.describe_own()
        );
        let all: Vec<(IpNet, Duration)> = wanted.iter().map(|n| (*n, Duration::ZERO)).collect();
        let mut plan = Plan::new();
        self.write_elements(&mut plan, &all, ElemOp::Delete);
        match self.apply(plan, &op) {
            Ok(()) => return Ok(wanted.len()),
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let listed: HashSet<IpNet> = self.list()?.into_iter().map(|(n, _)| n).collect();
        let present: Vec<(IpNet, Duration)> = all
            .into_iter()
            .filter(|(n, _)| listed.contains(n))
            .collect();
        let mut plan = Plan::new();
        self.write_elements(&mut plan, &present, ElemOp::Delete);
        self.apply(plan, &op)?;
        Ok(present.len())
    }

    /// Every listed prefix with its remaining time (`Duration::MAX` for an element added by
    /// hand without a timeout), IPv4 first, each family in address order.
    pub fn list(&self) -> Result<Vec<(IpNet, Duration)>, NetfilterError> {
        let mut socket = open_socket()?;
        let mut out = Vec::new();
        for kind in KINDS {
            let family = self.layout.family_of(kind.fam);
            let op = format!(
                "list set {} {}",
                self.layout.describe(family),
                rules::set_name(kind).to_string_lossy()
            );
            let seq = socket.seq();
            let request = raw::dump_request(
                family,
                &self.layout.table,
                DumpOf::Elements {
                    set: rules::set_name(kind),
                },
                seq,
            );
            let mut elems = Vec::new();
            let mut unreadable = false;
            socket
                .dump(&request, seq, |msg| {
                    unreadable |=
                        !raw::parse_elements(AlignedBuf::copy_of(msg).bytes(), &mut elems);
                })
                .map_err(|source| NetfilterError::Io {
                    op: op.clone(),
                    source,
                })?;
            if unreadable {
                return Err(NetfilterError::Io {
                    op,
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "libnftnl could not parse an element message",
                    ),
                });
            }
            if kind.nets {
                out.extend(elements::pair_intervals(elems));
            } else {
                out.extend(elements::hosts(elems));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes every listing, in one batch; tables, sets and rules stay.
    pub fn flush(&self) -> Result<(), NetfilterError> {
        let mut plan = Plan::new();
        for kind in KINDS {
            plan.flush_set(&self.layout, kind);
        }
        self.apply(
            plan,
            &format!("flush the sets of {}", self.layout.describe_own()),
        )
    }

    /// Deletes tarpit's tables (`inet`, `ip` and `ip6` ones of the configured name) with
    /// everything in them, in one batch. Succeeds when they are already gone.
    pub fn teardown(&self) -> Result<(), NetfilterError> {
        let mut plan = Plan::new();
        for family in [ProtoFamily::Inet, ProtoFamily::Ipv4, ProtoFamily::Ipv6] {
            plan.delete_table(&self.layout, family);
        }
        self.apply(
            plan,
            &format!(
                "delete the tables named {}",
                self.layout.table.to_string_lossy()
            ),
        )
    }

    /// Checks that the tables, both sets and all diversion rules are there (for example
    /// after someone ran `nft flush ruleset`). Cheap: two small dumps per table. Listings
    /// flushed out of an intact set are not detected.
    pub fn check(&self) -> Result<Health, NetfilterError> {
        let mut socket = open_socket()?;
        for family in self.layout.own_families() {
            let family = *family;
            let what = self.layout.describe(family);
            let op = format!("check table {what}");
            let seq = socket.seq();
            let mut names = Vec::new();
            let request = raw::dump_request(family, &self.layout.table, DumpOf::Sets, seq);
            match socket.dump(&request, seq, |m| {
                names.extend(raw::parse_set_name(AlignedBuf::copy_of(m).bytes()))
            }) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Ok(Health::Damaged(format!("table {what} is missing")))
                }
                Err(source) => return Err(NetfilterError::Io { op, source }),
            }
            for fam in self.layout.sets_in(family) {
                let name = rules::set_name(fam).to_string_lossy();
                if !names.iter().any(|n| *n == name) {
                    return Ok(Health::Damaged(format!("set {what} {name} is missing")));
                }
            }
            let rules = self
                .dump_rules(&mut socket, family)
                .map_err(|source| NetfilterError::Io { op, source })?;
            let ours = rules
                .iter()
                .filter(|r| r.chain == self.layout.chain().to_string_lossy())
                .count();
            let want = self.layout.rules_in(family);
            if ours != want {
                return Ok(Health::Damaged(format!(
                    "chain {what} {} holds {ours} of its {want} rule(s)",
                    self.layout.chain().to_string_lossy()
                )));
            }
        }
        Ok(Health::Intact)
    }

    /// Rebuilds tarpit's tables from scratch and lists `live` again, in one batch: whatever
    /// was left of the old tables (and any listing not in `live`) is replaced. Listings with
    /// no time left are left out. Other tables are not touched.
    pub fn repair(&self, live: &[(IpNet, Duration)]) -> Result<(), NetfilterError> {
        let live: Vec<(IpNet, Duration)> =
            live.iter().copied().filter(|(_, d)| !d.is_zero()).collect();
        let (kept, _) = elements::normalize(&live);
        let timed = with_timeouts(&kept)?;
        let mut plan = Plan::new();
        for family in self.layout.own_families() {
            plan.delete_table(&self.layout, *family);
        }
        plan.structure(&self.layout);
        self.write_elements(&mut plan, &timed, ElemOp::Create);
        self.apply(
            plan,
            &format!(
                "rebuild {} with {} listing(s)",
                self.layout.describe_own(),
                timed.len()
            ),
        )
    }

    /// Packets and bytes the diversion rules have matched.
    pub fn diverted(&self) -> Result<Diverted, NetfilterError> {
        let mut socket = open_socket()?;
        let mut total = Diverted::default();
        for family in self.layout.own_families() {
            let op = format!("read the counters of {}", self.layout.describe(*family));
            let rules = self
                .dump_rules(&mut socket, *family)
                .map_err(|source| NetfilterError::Io { op, source })?;
            for r in rules
                .iter()
                .filter(|r| r.chain == self.layout.chain().to_string_lossy())
            {
                total.packets += r.packets;
                total.bytes += r.bytes;
            }
        }
        Ok(total)
    }

    fn dump_rules(
        &self,
        socket: &mut NlSocket,
        family: ProtoFamily,
    ) -> io::Result<Vec<raw::RawRule>> {
        let seq = socket.seq();
        let request = raw::dump_request(family, &self.layout.table, DumpOf::Rules, seq);
        let mut rules = Vec::new();
        socket.dump(&request, seq, |m| {
            rules.extend(raw::parse_rule(AlignedBuf::copy_of(m).bytes()))
        })?;
        Ok(rules)
    }

    fn refresh_mode(&self) -> Refresh {
        match self.refresh {
            Refresh::Auto if kernel_at_least(6, 12) => Refresh::ReAdd,
            Refresh::Auto => Refresh::DeleteAdd,
            other => other,
        }
    }

    fn write_elements(&self, plan: &mut Plan, items: &[(IpNet, Duration)], op: ElemOp) {
        for kind in KINDS {
            let intervals: Vec<Interval> = items
                .iter()
                .filter(|(n, _)| Kind::of(n) == kind)
                .map(|(net, timeout)| {
                    let (start, end) = if kind.nets {
                        elements::interval_keys(net)
                    } else {
                        (elements::key_of(net.addr()), None)
                    };
                    let timeout_ms = match op {
                        ElemOp::Delete => None,
                        _ => elements::timeout_ms(net, *timeout),
                    };
                    Interval {
                        start,
                        end,
                        timeout_ms,
                    }
                })
                .collect();
            plan.elements(&self.layout, kind, &intervals, op);
        }
    }

    /// Sends one plan as one transaction.
    fn apply(&self, plan: Plan, op: &str) -> Result<(), NetfilterError> {
        if plan.is_empty() {
            return Ok(());
        }
        let finished: Finished = plan.finish();
        let mut socket = open_socket()?;
        match socket.send_batch(&finished.batch) {
            Ok(()) => Ok(()),
            Err(BatchError::Refused { seq, source }) => Err(NetfilterError::Rejected {
                op: op.to_owned(),
                step: finished.label(seq),
                source,
            }),
            Err(BatchError::Io(source)) => Err(NetfilterError::Io {
                op: op.to_owned(),
                source,
            }),
        }
    }
}

fn open_socket() -> Result<NlSocket, NetfilterError> {
    NlSocket::open().map_err(|source| NetfilterError::Socket { source })
}

/// Refuses zero timeouts (the kernel would keep such an element forever).
fn with_timeouts(items: &[(IpNet, Duration)]) -> Result<Vec<(IpNet, Duration)>, NetfilterError> {
    match items.iter().find(|(_, d)| d.is_zero()) {
        Some((net, _)) => Err(NetfilterError::ZeroTimeout { net: *net }),
        None => Ok(items.to_vec()),
    }
}

/// Prefixes with a timeout or remaining time.
type Listings = Vec<(IpNet, Duration)>;

/// Against what is listed: which listed entries to delete (the same prefix, or a prefix
/// inside a requested wider one), which requested ones to add, and which requested prefixes
/// a wider listed prefix already covers. Hosts sit in their own set and never conflict with
/// prefixes, so only prefixes are compared for containment.
fn reconcile(
    current: &[(IpNet, Duration)],
    wanted: &[(IpNet, Duration)],
) -> (Listings, Listings, Vec<Skipped>) {
    let is_net = |n: &IpNet| Kind::of(n).nets;
    let mut deletes = Vec::new();
    let mut adds = Vec::new();
    let mut covered = Vec::new();
    let mut doomed: HashSet<IpNet> = HashSet::new();
    for (net, _) in wanted {
        for (cur, d) in current {
            let replaced = cur == net || (is_net(net) && is_net(cur) && net.contains(cur));
            if replaced && doomed.insert(*cur) {
                deletes.push((*cur, *d));
            }
        }
    }
    for (net, timeout) in wanted {
        let wider = current.iter().find(|(cur, _)| {
            is_net(net) && is_net(cur) && cur != net && cur.contains(net) && !doomed.contains(cur)
        });
        match wider {
            Some((cur, _)) => covered.push(Skipped {
                net: *net,
                covered_by: *cur,
            }),
            None => adds.push((*net, *timeout)),
        }
    }
    (deletes, adds, covered)
}

/// True when the running kernel's version is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let found = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    );
    match found {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn reconcile_replaces_same_and_narrower_prefixes_and_skips_covered_ones_but_not_hosts() {
        let h = Duration::from_secs(3600);
        let current = vec![
            (net("192.0.2.4/30"), h),
            (net("192.0.2.9/32"), h),
            (net("198.51.100.0/24"), h),
            (net("203.0.113.7/32"), h),
        ];
        let wanted = vec![
            (net("192.0.2.0/24"), h),
            (net("198.51.100.8/29"), h),
            (net("198.51.100.9/32"), h),
            (net("203.0.113.7/32"), h * 2),
        ];
        let (deletes, adds, covered) = reconcile(&current, &wanted);
        let d: Vec<IpNet> = deletes.iter().map(|x| x.0).collect();
        assert_eq!(d, vec![net("192.0.2.4/30"), net("203.0.113.7/32")]);
        assert_eq!(
            adds,
            vec![
                (net("192.0.2.0/24"), h),
                (net("198.51.100.9/32"), h),
                (net("203.0.113.7/32"), h * 2)
            ]
        );
        assert_eq!(
            covered,
            vec![Skipped {
                net: net("198.51.100.8/29"),
                covered_by: net("198.51.100.0/24")
            }]
        );
    }

    #[test]
    fn tarpit_mode_without_the_target_is_refused_before_anything_is_sent() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("targets"), "REDIRECT\n").unwrap();
        let probe = TargetProbe {
            targets_file: d.path().join("targets"),
            modules_dir: d.path().join("none"),
        };
        let config = NetfilterConfig {
            action: Action::Tarpit,
            ..NetfilterConfig::default()
        };
        let err = Driver::with_probe(&config, &probe).unwrap_err();
        assert!(matches!(err, NetfilterError::TarpitTarget(_)), "{err}");
        assert!(err.to_string().contains("xtables-addons-dkms"));
    }
}
