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

/// The set of listed IPv4 prefixes.
pub const SET_V4: &CStr = c"listed_v4";
/// The set of listed IPv6 prefixes.
pub const SET_V6: &CStr = c"listed_v6";
/// The nat chain of stall mode.
pub const STALL_CHAIN: &CStr = c"divert";
/// The filter chain of tarpit mode.
pub const TARPIT_CHAIN: &CStr = c"tarpit";
/// The nat hook priority `dstnat`.
const PRIO_DSTNAT: i32 = -100;
/// Just before the usual `filter` priority (0), so the host's own accept rules come later.
const PRIO_TARPIT: i32 = -10;
/// `sizeof(struct xt_tarpit_tginfo)` aligned to 8 (`XT_ALIGN`), as iptables sends it.
const TARPIT_INFO_LEN: usize = 8;
const SET_ID_V4: u32 = 1;
const SET_ID_V6: u32 = 2;

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
    pub(crate) fn sets_in(&self, family: ProtoFamily) -> Vec<Fam> {
        [Fam::V4, Fam::V6]
            .into_iter()
            .filter(|f| self.family_of(*f) == family)
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

/// The name of `fam`'s set.
pub(crate) fn set_name(fam: Fam) -> &'static CStr {
    match fam {
        Fam::V4 => SET_V4,
        Fam::V6 => SET_V6,
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
            for fam in layout.sets_in(family) {
                self.set(&table, layout, fam, |plan, set| {
                    set.push_set(&mut plan.batch);
                    plan.labels
                        .push(format!("create set {}", set_label(&what, fam)));
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
            for fam in layout.sets_in(family) {
                self.set(&table, layout, fam, |plan, set| {
                    for port in &layout.ports {
                        plan.rule(layout, &chain, set, fam, *port, &chain_what);
                    }
                });
            }
        }
    }

    /// Calls `f` with `fam`'s set object (flags `interval,timeout`) in `table`.
    fn set(
        &mut self,
        table: &Table,
        layout: &Layout,
        fam: Fam,
        f: impl FnOnce(&mut Self, &dyn SetRef),
    ) {
        let family = layout.family_of(fam);
        match fam {
            Fam::V4 => {
                let set = Set::<Ipv4Addr>::new_named(SET_V4, SET_ID_V4, table, family);
                raw::set_flags(
                    &set,
                    (libc::NFT_SET_INTERVAL | libc::NFT_SET_TIMEOUT) as u32,
                );
                f(self, &set);
            }
            Fam::V6 => {
                let set = Set::<Ipv6Addr>::new_named(SET_V6, SET_ID_V6, table, family);
                raw::set_flags(
                    &set,
                    (libc::NFT_SET_INTERVAL | libc::NFT_SET_TIMEOUT) as u32,
                );
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
        fam: Fam,
        port: u16,
        chain_what: &str,
    ) {
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
            set_name(fam).to_string_lossy()
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

    /// Element messages for `fam`'s set: every `(start, end)` interval of `items`, starts
    /// with their timeout in milliseconds (`None` for a delete).
    pub(crate) fn elements(&mut self, layout: &Layout, fam: Fam, items: &[Interval], op: ElemOp) {
        if items.is_empty() {
            return;
        }
        let family = layout.family_of(fam);
        let table = Table::new(&layout.table, family);
        let verb = match op {
            ElemOp::Create | ElemOp::Upsert => "add",
            ElemOp::Delete => "delete",
        };
        let what = set_label(&layout.describe(family), fam);
        let label = format!("{verb} {} element(s) of set {what}", items.len());
        self.set(&table, layout, fam, |plan, set| {
            for item in items {
                set.add_element(&item.start, item.timeout_ms, false);
                if let Some(end) = &item.end {
                    set.add_element(end, None, true);
                }
            }
            let written = set.push(&mut plan.batch, op);
            plan.labels.extend(std::iter::repeat_n(label, written));
        });
    }

    /// Empties `fam`'s set.
    pub(crate) fn flush_set(&mut self, layout: &Layout, fam: Fam) {
        let family = layout.family_of(fam);
        let table = Table::new(&layout.table, family);
        let what = set_label(&layout.describe(family), fam);
        self.set(&table, layout, fam, |plan, set| {
            set.push_flush(&mut plan.batch);
            plan.labels.push(format!("flush set {what}"));
        });
    }
}

fn set_label(table: &str, fam: Fam) -> String {
    format!("{table} {}", set_name(fam).to_string_lossy())
}

/// One interval element pair: start key (with timeout for an add) and end key.
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
