//! What tarpit puts into the kernel, as batch messages: the table layout per action, the
//! sets, the diversion chain and its rules, and element messages.
//!
//! Builds batches only; sending them is the driver's job. Every message carries a label so a
//! refused batch can say which step failed.

use std::ffi::{CStr, CString};
use std::net::{Ipv4Addr, Ipv6Addr};

use nftnl::expr::{
    Cmp, CmpOp, Counter, Immediate, Ipv4HeaderField, Ipv6HeaderField, Lookup, Meta,
    NetworkHeaderField, Payload, Register, TcpHeaderField, TransportHeaderField,
};
use nftnl::set::{Set, SetKey};
use nftnl::{
    Batch, Chain, ChainType, FinalizedBatch, Hook, MsgType, NlMsg, ProtoFamily, Rule, Table,
};

use super::config::{Action, NetfilterConfig};
use super::error::NetfilterError;
use super::raw::{self, CompatRule, ElemOp, FlushSet, Redir, XtTarget};

/// The set of listed IPv4 hosts (hash set, flags `timeout`).
pub const SET_V4: &CStr = c"listed_v4";
/// The set of listed IPv4 prefixes shorter than /32 (flags `interval,timeout`).
pub const SET_V4_NETS: &CStr = c"listed_v4_nets";
/// The set of listed IPv6 hosts (/128; hash set, flags `timeout`).
pub const SET_V6: &CStr = c"listed_v6";
/// The set of listed IPv6 prefixes such as /64s (flags `interval,timeout`).
pub const SET_V6_NETS: &CStr = c"listed_v6_nets";
/// The nat chain of stall mode.
pub const STALL_CHAIN: &CStr = c"divert";
/// The filter chain of tarpit mode.
pub const TARPIT_CHAIN: &CStr = c"tarpit";
/// The nat hook priority `dstnat`.
const PRIO_DSTNAT: i32 = -100;
/// Just before the usual `filter` priority (0), so the host's own accept rules come later.
const PRIO_TARPIT: i32 = -10;
/// How many elements are encoded at a time (see [`Plan::elements`]).
const ELEMENT_CHUNK: usize = 8192;
/// `sizeof(struct xt_tarpit_tginfo)` aligned to 8 (`XT_ALIGN`), as iptables sends it.
const TARPIT_INFO_LEN: usize = 8;

/// Where tarpit's objects live for one configuration.
///
/// Stall mode: one table `inet <name>` with both sets and the nat chain. Tarpit mode: the
/// kernel's xtables compat layer finds targets per IPv4/IPv6 family only (it cannot run
/// `TARPIT` from an `inet` table), so it uses `ip <name>` (set `listed_v4`) and
/// `ip6 <name>` (set `listed_v6`), each with a filter chain at the input hook.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) table: CString,
    pub(crate) action: Action,
    pub(crate) ports: Vec<u16>,
    pub(crate) stall_port: u16,
}

/// One of the two address families tarpit lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fam {
    V4,
    V6,
}

/// One of tarpit's four sets: hosts or prefixes, of one family.
///
/// Single hosts live in hash sets and prefixes in interval sets. Both kinds could share one
/// interval set, but the kernel dumps an rbtree (interval) set by walking it from the start
/// again for every 32 KiB reply page, so listing 100,000 hosts from one would cost
/// quadratically more (measured: 0.86 s against a hash set's fraction of it), and an interval
/// set needs two elements per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) fam: Fam,
    pub(crate) nets: bool,
}

/// All four sets.
pub(crate) const KINDS: [Kind; 4] = [
    Kind {
        fam: Fam::V4,
        nets: false,
    },
    Kind {
        fam: Fam::V4,
        nets: true,
    },
    Kind {
        fam: Fam::V6,
        nets: false,
    },
    Kind {
        fam: Fam::V6,
        nets: true,
    },
];

impl Kind {
    /// The set that holds `net`.
    pub(crate) fn of(net: &ipnet::IpNet) -> Self {
        Self {
            fam: match net {
                ipnet::IpNet::V4(_) => Fam::V4,
                ipnet::IpNet::V6(_) => Fam::V6,
            },
            nets: net.prefix_len() < net.max_prefix_len(),
        }
    }

    fn id(self) -> u32 {
        KINDS.iter().position(|k| *k == self).unwrap_or(0) as u32 + 1
    }

    fn flags(self) -> u32 {
        if self.nets {
            (libc::NFT_SET_INTERVAL | libc::NFT_SET_TIMEOUT) as u32
        } else {
            libc::NFT_SET_TIMEOUT as u32
        }
    }
}

impl Layout {
    /// The layout of a validated configuration.
    pub(crate) fn new(config: &NetfilterConfig) -> Result<Self, NetfilterError> {
        config.validate()?;
        let table = raw::c_name(&config.table)
            .ok_or_else(|| NetfilterError::Config("netfilter.table holds a NUL byte".to_owned()))?;
        Ok(Self {
            table,
            action: config.action,
            ports: config.unique_ports(),
            stall_port: config.stall_port,
        })
    }

    /// The family of the table that holds `fam`'s set.
    pub(crate) fn family_of(&self, fam: Fam) -> ProtoFamily {
        match (self.action, fam) {
            (Action::Stall, _) => ProtoFamily::Inet,
            (Action::Tarpit, Fam::V4) => ProtoFamily::Ipv4,
            (Action::Tarpit, Fam::V6) => ProtoFamily::Ipv6,
        }
    }

    /// The tables this action uses.
    pub(crate) fn own_families(&self) -> &'static [ProtoFamily] {
        match self.action {
            Action::Stall => &[ProtoFamily::Inet],
            Action::Tarpit => &[ProtoFamily::Ipv4, ProtoFamily::Ipv6],
        }
    }

    /// The tables the other action would use (left over after switching actions).
    pub(crate) fn other_families(&self) -> &'static [ProtoFamily] {
        match self.action {
            Action::Stall => &[ProtoFamily::Ipv4, ProtoFamily::Ipv6],
            Action::Tarpit => &[ProtoFamily::Inet],
        }
    }

    /// The diversion chain's name.
    pub(crate) fn chain(&self) -> &'static CStr {
        match self.action {
            Action::Stall => STALL_CHAIN,
            Action::Tarpit => TARPIT_CHAIN,
        }
    }

    /// The sets that live in the table of `family`.
    pub(crate) fn sets_in(&self, family: ProtoFamily) -> Vec<Kind> {
        KINDS
            .into_iter()
            .filter(|k| self.family_of(k.fam) == family)
            .collect()
    }

    /// How many rules the diversion chain of the table of `family` holds.
    pub(crate) fn rules_in(&self, family: ProtoFamily) -> usize {
        self.sets_in(family).len() * self.ports.len()
    }

    /// "inet tarpit", for messages.
    pub(crate) fn describe(&self, family: ProtoFamily) -> String {
        format!("{} {}", family_name(family), self.table.to_string_lossy())
    }

    /// "tables inet tarpit" or "tables ip tarpit and ip6 tarpit", for messages.
    pub(crate) fn describe_own(&self) -> String {
        let names: Vec<String> = self
            .own_families()
            .iter()
            .map(|f| self.describe(*f))
            .collect();
        format!("table {}", names.join(" and "))
    }
}

/// The nft keyword of a family.
pub(crate) fn family_name(family: ProtoFamily) -> &'static str {
    match family {
        ProtoFamily::Inet => "inet",
        ProtoFamily::Ipv4 => "ip",
        ProtoFamily::Ipv6 => "ip6",
        _ => "?",
    }
}

/// The name of a set.
pub(crate) fn set_name(kind: Kind) -> &'static CStr {
    match (kind.fam, kind.nets) {
        (Fam::V4, false) => SET_V4,
        (Fam::V4, true) => SET_V4_NETS,
        (Fam::V6, false) => SET_V6,
        (Fam::V6, true) => SET_V6_NETS,
    }
}

/// A batch under construction, with a label per message.
pub(crate) struct Plan {
    batch: Batch,
    labels: Vec<String>,
}

/// A finalized batch and its labels.
pub(crate) struct Finished {
    pub(crate) batch: FinalizedBatch,
    labels: Vec<String>,
}

impl Finished {
    /// The label of the message with sequence number `seq`.
    pub(crate) fn label(&self, seq: u32) -> String {
        let seqs = self.batch.sequence_numbers();
        // The batch's begin and end messages take a sequence number each on kernels that
        // acknowledge them; the labelled messages sit in between.
        let framing = (seqs.len().saturating_sub(self.labels.len())) / 2;
        let index = (seq.wrapping_sub(seqs.start) as usize).wrapping_sub(framing);
        self.labels
            .get(index)
            .cloned()
            .unwrap_or_else(|| "batch framing".to_owned())
    }
}

impl Plan {
    pub(crate) fn new() -> Self {
        Self {
            batch: Batch::new(),
            labels: Vec::new(),
        }
    }

    fn add(&mut self, msg: &impl NlMsg, kind: MsgType, label: impl Into<String>) {
        self.batch.add(msg, kind);
        self.labels.push(label.into());
    }

    /// True when no message was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub(crate) fn finish(self) -> Finished {
        Finished {
            batch: self.batch.finalize(),
            labels: self.labels,
        }
    }

    /// Deletes the table of `family` if it exists: "add" adopts or creates it, so the
    /// following "delete" always succeeds, all in one transaction.
    pub(crate) fn delete_table(&mut self, layout: &Layout, family: ProtoFamily) {
        let table = Table::new(&layout.table, family);
        let what = layout.describe(family);
        self.add(
            &table,
            MsgType::Add,
            format!("adopt table {what} to delete it"),
        );
        self.add(&table, MsgType::Del, format!("delete table {what}"));
    }

    /// Creates or adopts the tables, sets, chains and rules of `layout`, replacing the
    /// diversion rules with the configured ones, and deletes the other action's tables.
    /// Elements already in the sets stay.
    pub(crate) fn structure(&mut self, layout: &Layout) {
        for family in layout.other_families() {
            self.delete_table(layout, *family);
        }
        for family in layout.own_families() {
            let family = *family;
            let what = layout.describe(family);
            let table = Table::new(&layout.table, family);
            self.add(&table, MsgType::Add, format!("create table {what}"));
            for kind in layout.sets_in(family) {
                self.set(&table, layout, kind, |plan, set| {
                    set.push_set(&mut plan.batch);
                    plan.labels
                        .push(format!("create set {}", set_label(&what, kind)));
                });
            }
            let mut chain = Chain::new(layout.chain(), &table);
            match layout.action {
                Action::Stall => {
                    chain.set_hook(Hook::PreRouting, PRIO_DSTNAT);
                    chain.set_type(ChainType::Nat);
                }
                Action::Tarpit => {
                    chain.set_hook(Hook::In, PRIO_TARPIT);
                    chain.set_type(ChainType::Filter);
                }
            }
            let chain_what = format!("chain {what} {}", layout.chain().to_string_lossy());
            self.add(&chain, MsgType::Add, format!("create {chain_what}"));
            // A delete-rule message without a handle flushes the chain, so re-running ensure
            // never duplicates rules.
            self.add(
                &Rule::new(&chain),
                MsgType::Del,
                format!("flush {chain_what}"),
            );
            for kind in layout.sets_in(family) {
                self.set(&table, layout, kind, |plan, set| {
                    for port in &layout.ports {
                        plan.rule(layout, &chain, set, kind, *port, &chain_what);
                    }
                });
            }
        }
    }

    /// Calls `f` with the object of set `kind` (in `table`), flags included.
    fn set(
        &mut self,
        table: &Table,
        layout: &Layout,
        kind: Kind,
        f: impl FnOnce(&mut Self, &dyn SetRef),
    ) {
        let family = layout.family_of(kind.fam);
        let name = set_name(kind);
        match kind.fam {
            Fam::V4 => {
                let set = Set::<Ipv4Addr>::new_named(name, kind.id(), table, family);
                raw::set_flags(&set, kind.flags());
                f(self, &set);
            }
            Fam::V6 => {
                let set = Set::<Ipv6Addr>::new_named(name, kind.id(), table, family);
                raw::set_flags(&set, kind.flags());
                f(self, &set);
            }
        }
    }

    /// One diversion rule: listed source, TCP, destination `port`, counter, then the action.
    fn rule(
        &mut self,
        layout: &Layout,
        chain: &Chain,
        set: &dyn SetRef,
        kind: Kind,
        port: u16,
        chain_what: &str,
    ) {
        let fam = kind.fam;
        let mut rule = Rule::new(chain);
        if layout.family_of(fam) == ProtoFamily::Inet {
            rule.add_expr(&Meta::NfProto);
            let proto = match fam {
                Fam::V4 => libc::NFPROTO_IPV4,
                Fam::V6 => libc::NFPROTO_IPV6,
            };
            rule.add_expr(&Cmp::new(CmpOp::Eq, proto as u8));
        }
        rule.add_expr(&Meta::L4Proto);
        rule.add_expr(&Cmp::new(CmpOp::Eq, libc::IPPROTO_TCP as u8));
        let saddr = match fam {
            Fam::V4 => NetworkHeaderField::Ipv4(Ipv4HeaderField::Saddr),
            Fam::V6 => NetworkHeaderField::Ipv6(Ipv6HeaderField::Saddr),
        };
        rule.add_expr(&Payload::Network(saddr));
        set.add_lookup(&mut rule);
        rule.add_expr(&Payload::Transport(TransportHeaderField::Tcp(
            TcpHeaderField::Dport,
        )));
        rule.add_expr(&Cmp::new(CmpOp::Eq, port.to_be()));
        rule.add_expr(&Counter);
        let label = format!(
            "add rule to {chain_what} for {} port {port}",
            set_name(kind).to_string_lossy()
        );
        match layout.action {
            Action::Stall => {
                rule.add_expr(&Immediate::new(layout.stall_port.to_be(), Register::Reg1));
                rule.add_expr(&Redir {
                    port_register: Register::Reg1,
                });
                self.add(&rule, MsgType::Add, label);
            }
            Action::Tarpit => {
                rule.add_expr(&XtTarget {
                    name: c"TARPIT",
                    info_len: TARPIT_INFO_LEN,
                });
                let compat = CompatRule {
                    rule,
                    l4proto: libc::IPPROTO_TCP as u32,
                };
                self.add(&compat, MsgType::Add, label);
            }
        }
    }

    /// Element messages for set `kind`: every key of `items` (with its timeout in
    /// milliseconds, `None` for a delete) and, for prefixes, the interval's end key.
    pub(crate) fn elements(&mut self, layout: &Layout, kind: Kind, items: &[Interval], op: ElemOp) {
        if items.is_empty() {
            return;
        }
        let family = layout.family_of(kind.fam);
        let table = Table::new(&layout.table, family);
        let verb = match op {
            ElemOp::Create | ElemOp::Upsert => "add",
            ElemOp::Delete => "delete",
        };
        let what = set_label(&layout.describe(family), kind);
        let label = format!("{verb} {} element(s) of set {what}", items.len());
        // libnftnl keeps a few hundred bytes per element object; writing them in chunks
        // (all into the same batch, so still one transaction) bounds that memory.
        for chunk in items.chunks(ELEMENT_CHUNK) {
            self.set(&table, layout, kind, |plan, set| {
                for item in chunk {
                    set.add_element(&item.start, item.timeout_ms, false);
                    if let Some(end) = &item.end {
                        set.add_element(end, None, true);
                    }
                }
                let written = set.push(&mut plan.batch, op);
                plan.labels
                    .extend(std::iter::repeat_n(label.clone(), written));
            });
        }
    }

    /// Empties set `kind`.
    pub(crate) fn flush_set(&mut self, layout: &Layout, kind: Kind) {
        let family = layout.family_of(kind.fam);
        let table = Table::new(&layout.table, family);
        let what = set_label(&layout.describe(family), kind);
        self.set(&table, layout, kind, |plan, set| {
            set.push_flush(&mut plan.batch);
            plan.labels.push(format!("flush set {what}"));
        });
    }
}

fn set_label(table: &str, kind: Kind) -> String {
    format!("{table} {}", set_name(kind).to_string_lossy())
}

/// One element: its key (with the timeout for an add) and, for a prefix, the end key of
/// its interval (`None` for a host, or for a prefix that reaches the top of the space).
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Option<Vec<u8>>,
    pub(crate) timeout_ms: Option<u64>,
}

/// What the plan needs from a set object, whatever its key type.
trait SetRef {
    fn add_lookup(&self, rule: &mut Rule);
    fn add_element(&self, key: &[u8], timeout_ms: Option<u64>, interval_end: bool);
    fn push(&self, batch: &mut Batch, op: ElemOp) -> usize;
    fn push_flush(&self, batch: &mut Batch);
    fn push_set(&self, batch: &mut Batch);
}

impl<K: SetKey> SetRef for Set<'_, K> {
    fn add_lookup(&self, rule: &mut Rule) {
        rule.add_expr(&Lookup::new(self));
    }
    fn add_element(&self, key: &[u8], timeout_ms: Option<u64>, interval_end: bool) {
        raw::add_element(self, key, timeout_ms, interval_end);
    }
    fn push(&self, batch: &mut Batch, op: ElemOp) -> usize {
        raw::push_elements(batch, self, op)
    }
    fn push_flush(&self, batch: &mut Batch) {
        batch.add(&FlushSet(self), MsgType::Del);
    }
    fn push_set(&self, batch: &mut Batch) {
        batch.add(self, MsgType::Add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::raw::{parse_rule, AlignedBuf};
    use crate::netfilter::socket::Messages;

    /// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`.
    fn nft_type(msg: libc::c_int) -> u16 {
        (10 << 8) | msg as u16
    }

    fn layout(action: Action, ports: Vec<u16>) -> Layout {
        Layout::new(&NetfilterConfig {
            action,
            ports,
            ..NetfilterConfig::default()
        })
        .unwrap()
    }

    /// The rules of a structure batch, as libnftnl renders them.
    fn rules_of(layout: &Layout) -> Vec<raw::RawRule> {
        let mut plan = Plan::new();
        plan.structure(layout);
        let done = plan.finish();
        let bytes: Vec<u8> = done.batch.iter().flatten().copied().collect();
        Messages::new(&bytes)
            .filter(|m| m.kind == nft_type(libc::NFT_MSG_NEWRULE))
            .filter_map(|m| parse_rule(AlignedBuf::copy_of(m.bytes).bytes()))
            .collect()
    }

    #[test]
    fn tarpit_batch_hands_listed_smtp_packets_to_the_tarpit_target() {
        let rules = rules_of(&layout(Action::Tarpit, vec![25, 587]));
        assert_eq!(rules.len(), 8, "four sets, two ports each: {rules:#?}");
        for r in &rules {
            assert_eq!(r.chain, "tarpit");
            assert_eq!(
                r.compat_proto,
                Some(libc::IPPROTO_TCP as u32),
                "xt targets need the compat proto"
            );
            assert!(r.text.contains("target name TARPIT rev 0"), "{}", r.text);
            assert!(r.text.contains("counter"), "{}", r.text);
            assert!(!r.text.contains("redir"), "{}", r.text);
        }
        assert!(
            rules[0].text.contains("lookup reg 1 set listed_v4"),
            "{}",
            rules[0].text
        );
        assert!(
            rules[0].text.contains("0x00001900"),
            "port 25 big-endian: {}",
            rules[0].text
        );
        assert!(
            rules[1].text.contains("0x00004b02"),
            "port 587 big-endian: {}",
            rules[1].text
        );
        let sets: Vec<&str> = rules
            .iter()
            .map(|r| {
                r.text
                    .split("set ")
                    .nth(1)
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(
            sets,
            [
                "listed_v4",
                "listed_v4",
                "listed_v4_nets",
                "listed_v4_nets",
                "listed_v6",
                "listed_v6",
                "listed_v6_nets",
                "listed_v6_nets"
            ]
        );
    }

    #[test]
    fn tarpit_batch_uses_ip_and_ip6_tables_and_removes_the_inet_one() {
        let layout = layout(Action::Tarpit, vec![25]);
        let mut plan = Plan::new();
        plan.structure(&layout);
        let done = plan.finish();
        let bytes: Vec<u8> = done.batch.iter().flatten().copied().collect();
        let tables: Vec<(u16, u8)> = Messages::new(&bytes)
            .filter(|m| {
                m.kind == nft_type(libc::NFT_MSG_NEWTABLE)
                    || m.kind == nft_type(libc::NFT_MSG_DELTABLE)
            })
            .map(|m| (m.kind & 0xff, m.bytes[16]))
            .collect();
        let (new, del) = (libc::NFT_MSG_NEWTABLE as u16, libc::NFT_MSG_DELTABLE as u16);
        let (inet, ip, ip6) = (
            libc::NFPROTO_INET as u8,
            libc::NFPROTO_IPV4 as u8,
            libc::NFPROTO_IPV6 as u8,
        );
        assert_eq!(
            tables,
            vec![(new, inet), (del, inet), (new, ip), (new, ip6)]
        );
    }

    #[test]
    fn stall_batch_redirects_to_the_stall_port_in_one_inet_table() {
        let rules = rules_of(&layout(Action::Stall, vec![25]));
        assert_eq!(rules.len(), 4);
        for r in &rules {
            assert_eq!(r.chain, "divert");
            assert_eq!(r.compat_proto, None);
            assert!(r.text.contains("redir proto_min reg 1"), "{}", r.text);
            assert!(
                r.text.contains("immediate reg 1 0x0000dd09"),
                "port 2525 big-endian: {}",
                r.text
            );
        }
    }

    #[test]
    fn a_refused_message_is_named_by_its_label() {
        let mut plan = Plan::new();
        plan.flush_set(&layout(Action::Stall, vec![25]), KINDS[3]);
        let done = plan.finish();
        let seqs = done.batch.sequence_numbers();
        let labelled = seqs.start + (seqs.len() as u32 - 1) / 2;
        assert_eq!(done.label(labelled), "flush set inet tarpit listed_v6_nets");
    }
}
