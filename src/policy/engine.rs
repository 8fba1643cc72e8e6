//! The policy engine: events in, listing decisions out. Pure and deterministic.
//!
//! Owns the per-offender scores (a bucketed sliding window), the hard-fail repeat counters, the
//! escalation history, IPv6 prefix aggregation and /48 widening, and the expiry of stale state.
//! Time is always the event's own (log time), never the wall clock, so a replay of the same log
//! gives the same decisions. It never touches the kernel, the disk or the network: SPF answers
//! and the host's own addresses are handed in.
//!
//! Memory: each offender is one fixed-size record in a slab plus one index entry (about 200
//! bytes in all; see `benches/policy.rs`), and its evidence is one number into a shared ring of
//! recent lines capped in bytes.

use std::net::IpAddr;
use std::time::Duration;

use std::collections::VecDeque;

use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use time::{OffsetDateTime, UtcOffset};

use super::allow::{AllowReason, Allowlist, Glob};
use super::config::{BanConfig, Mode, PolicyConfig, PolicySection};
use super::decision::{ip_text, Action, Decision};
use super::evidence::{EvidenceRing, Seq};
use super::key::Key;
use crate::event::{Delivery, Event, EventClass};

/// The window is measured in this many steps; an event counts for at least `window` and at most
/// `window` plus one step.
pub const STEPS: u32 = 4;
const RING: usize = STEPS as usize + 1;
/// Categories counted: the event classes, then backscatter and protected recipients.
const CATS: usize = EventClass::ALL.len() + 2;
const BACKSCATTER: usize = EventClass::ALL.len();
const PROTECTED: usize = EventClass::ALL.len() + 1;
/// At most this many log lines are given as a decision's evidence.
pub const EVIDENCE_LINES: usize = 5;
/// The evidence ring's default size in bytes of line text.
pub const EVIDENCE_BYTES: usize = 16 << 20;
/// How many queue ids of our own bounces are remembered (oldest forgotten first).
const BOUNCE_IDS: usize = 100_000;
/// How many stored offenders each event checks for staleness.
const SWEEP_PER_EVENT: usize = 2;

fn cat_name(cat: usize) -> &'static str {
    match cat {
        BACKSCATTER => "backscatter",
        PROTECTED => "protected-recipient",
        c => EventClass::ALL.get(c).map_or("other", |c| c.as_str()),
    }
}

/// One recipient a client was refused with a 5xx for, and how often since `first`.
#[derive(Debug, Clone, Copy, Default)]
struct Hardfail {
    rcpt: u32,
    first: u32,
    count: u16,
}

/// Everything remembered about one offender: fixed size, no heap.
#[derive(Debug, Clone)]
struct Offender {
    key: (u64, u64),
    /// The step number of the newest bucket.
    newest: u32,
    /// The first event counted since the window was last empty.
    episode: u32,
    last_event: u32,
    /// End of the latest listing; 0 when never listed.
    listed_until: u32,
    offence: u16,
    evidence: Seq,
    scores: [u16; RING],
    counts: [[u8; CATS]; RING],
    hardfail: [Hardfail; 2],
}

impl Offender {
    fn new(key: (u64, u64)) -> Self {
        Offender {
            key,
            newest: 0,
            episode: 0,
            last_event: 0,
            listed_until: 0,
            offence: 0,
            evidence: 0,
            scores: [0; RING],
            counts: [[0; CATS]; RING],
            hardfail: [Hardfail::default(); 2],
        }
    }

    fn score(&self) -> u32 {
        self.scores.iter().map(|&s| u32::from(s)).sum()
    }

    fn clear_window(&mut self) {
        self.scores = [0; RING];
        self.counts = [[0; CATS]; RING];
        self.hardfail = [Hardfail::default(); 2];
    }
}

/// A /48 whose /64s are being listed: the listed members and the /48's own history.
#[derive(Debug, Clone, Default)]
struct Wide {
    members: Vec<(u128, u32)>,
    listed_until: u32,
    offence: u16,
}

/// Counts of what the engine did, for logs and `tarpitctl`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events seen.
    pub events: u64,
    /// Events from never-listed hosts, ignored.
    pub allowed: u64,
    /// Listings not made because the prefix holds a never-listed host.
    pub suppressed: u64,
    /// Decisions made.
    pub decisions: u64,
    /// Offender records dropped as stale.
    pub expired: u64,
    /// Deliveries of our own bounces, which allowlist nobody.
    pub bounce_deliveries: u64,
}

/// Why a listing is made.
enum Why<'a> {
    Score,
    Trap(&'a str),
    Hardfail(&'a str, u16, u32),
}

/// The settings in the form the hot path wants.
#[derive(Debug, Clone)]
struct Compiled {
    step: u32,
    threshold: u32,
    weights: [u16; CATS],
    traps: Vec<Glob>,
    protected: Vec<Glob>,
    hardfail_after: u16,
    ipv6_prefix: u8,
    widen_after: usize,
    first: f64,
    factor: f64,
    max: f64,
    forget: u32,
    jitter: f64,
    enforced: bool,
}

impl Compiled {
    fn new(p: &PolicyConfig, b: &BanConfig, mode: Mode) -> Self {
        let window = u32::try_from(p.window.get().as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let mut weights = [0u16; CATS];
        for (i, class) in EventClass::ALL.iter().enumerate() {
            weights[i] = clamp16(p.weight(*class));
        }
        weights[BACKSCATTER] = clamp16(p.backscatter_weight);
        weights[PROTECTED] = clamp16(p.protected_weight());
        Compiled {
            step: window.div_ceil(STEPS),
            threshold: p.threshold,
            weights,
            traps: p.traps.iter().map(|t| Glob::new(t)).collect(),
            protected: p.protected.iter().map(|t| Glob::new(t)).collect(),
            hardfail_after: clamp16(p.repeat_after_hardfail),
            ipv6_prefix: p.ipv6_prefix,
            widen_after: usize::try_from(p.ipv6_widen_after).unwrap_or(usize::MAX),
            first: b.first.get().as_secs_f64(),
            factor: b.factor,
            max: b.max.get().as_secs_f64(),
            forget: u32::try_from(b.forget_after.get().as_secs()).unwrap_or(u32::MAX),
            jitter: b.jitter,
            enforced: mode == Mode::Enforce,
        }
    }

    fn window(&self) -> u32 {
        self.step.saturating_mul(STEPS)
    }

    /// `first × factor^(offence−1)`, jittered, capped at `max`, in whole seconds.
    fn ban_secs(&self, addr: u128, offence: u16) -> u32 {
        let exp = i32::from(offence.saturating_sub(1).min(64));
        let mut d = (self.first * self.factor.powi(exp)).min(self.max);
        if self.jitter > 0.0 {
            // Derived from the address and offence, not from a random source: replays repeat.
            let h = rcpt_hash(&format!("{addr:x}/{offence}"));
            let frac = f64::from(h) / f64::from(u32::MAX) * 2.0 - 1.0;
            d = (d * (1.0 + self.jitter * frac)).min(self.max);
        }
        d.round().clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

fn clamp16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn split(a: u128) -> (u64, u64) {
    ((a >> 64) as u64, a as u64)
}

fn join((hi, lo): (u64, u64)) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

fn secs(t: OffsetDateTime) -> u32 {
    u32::try_from(t.unix_timestamp().max(0)).unwrap_or(u32::MAX)
}

/// A stable 32-bit hash of a recipient, ignoring ASCII case (FNV-1a).
fn rcpt_hash(r: &str) -> u32 {
    r.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
    })
}

/// A span in words: `45 s`, `38 min`, `5 h 10 min`, `3 d 4 h`.
pub fn span_text(s: u32) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// The policy engine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Engine {
    c: Compiled,
    allow: Allowlist,
    index: FxHashMap<(u64, u64), u32>,
    slab: Vec<Offender>,
    wide: FxHashMap<u128, Wide>,
    wide_cleaned_at: usize,
    evidence: EvidenceRing,
    cursor: usize,
    bounce_ids: VecDeque<Box<str>>,
    bounce_set: FxHashSet<Box<str>>,
    stats: Stats,
}

impl Engine {
    /// An engine for `config`; `own` are the host's own addresses (never listed).
    pub fn new(config: &PolicySection, own: Vec<IpAddr>) -> Self {
        Engine::with_evidence_bytes(config, own, EVIDENCE_BYTES)
    }

    /// As [`Engine::new`], with the evidence ring capped at `evidence_bytes` of line text.
    pub fn with_evidence_bytes(
        config: &PolicySection,
        own: Vec<IpAddr>,
        evidence_bytes: usize,
    ) -> Self {
        let p = &config.policy;
        let delivered_for =
            i64::try_from(p.allow_delivered_for.get().as_secs()).unwrap_or(i64::MAX);
        Engine {
            c: Compiled::new(p, &config.ban, config.mode),
            allow: Allowlist::new(own, &p.allow, delivered_for, p.ipv6_prefix),
            index: FxHashMap::default(),
            slab: Vec::new(),
            wide: FxHashMap::default(),
            wide_cleaned_at: 64,
            evidence: EvidenceRing::new(evidence_bytes),
            cursor: 0,
            bounce_ids: VecDeque::new(),
            bounce_set: FxHashSet::default(),
            stats: Stats::default(),
        }
    }

    /// Replaces the SPF-authorised networks (from [`super::spf::SpfAllow::networks`]).
    pub fn set_spf(&mut self, nets: Vec<(ipnet::IpNet, String)>) {
        self.allow.set_spf(nets);
    }

    /// Why `ip` is never listed at `at`, if it is not (for `tarpitctl show` and `add`).
    pub fn allowed(&self, ip: IpAddr, at: OffsetDateTime) -> Option<AllowReason> {
        self.allow.allows(ip, at.unix_timestamp())
    }

    /// How many offenders are tracked now.
    pub fn tracked(&self) -> usize {
        self.slab.len()
    }

    /// What the engine has done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Our MTA delivered to a server: it is never listed for `allow_delivered_for`, unless the
    /// message was one of our own bounces (see [`Engine::observe_sender`]).
    ///
    /// Why bounces are excluded: a bounce of spam goes to the spammer's forged sender domain, so
    /// counting it would make the spammer's MX our "correspondent". Deliveries whose queue id
    /// was never reported with its sender still count (the parser does not yet report senders).
    pub fn observe_delivery(&mut self, d: &Delivery) {
        if d.queue_id
            .as_deref()
            .is_some_and(|q| self.bounce_set.contains(q))
        {
            self.stats.bounce_deliveries += 1;
            return;
        }
        self.allow.delivered(d.ip, d.time.unix_timestamp());
    }

    /// Our MTA queued message `queue_id` with envelope sender `sender` (Postfix qmgr `from=<…>`,
    /// Exim `<=`): a null sender marks it as a bounce, whose deliveries allowlist nobody. The
    /// last 100,000 bounce ids are remembered.
    pub fn observe_sender(&mut self, queue_id: &str, sender: &str) {
        if !sender.is_empty() || self.bounce_set.contains(queue_id) {
            return;
        }
        let id: Box<str> = queue_id.into();
        self.bounce_set.insert(id.clone());
        self.bounce_ids.push_back(id);
        if self.bounce_ids.len() > BOUNCE_IDS {
            if let Some(old) = self.bounce_ids.pop_front() {
                self.bounce_set.remove(&old);
            }
        }
    }

    /// Counts one rejection event; returns the listings it causes (usually none).
    pub fn observe_event(&mut self, e: &Event) -> Vec<Decision> {
        self.stats.events += 1;
        let now = secs(e.time);
        self.sweep(now, SWEEP_PER_EVENT);
        if self.allow.allows(e.ip, i64::from(now)).is_some() {
            self.stats.allowed += 1;
            return Vec::new();
        }
        let key = Key::of(e.ip, self.c.ipv6_prefix);
        let idx = self.index_of(key);
        let c = &self.c;
        let o = &mut self.slab[idx];
        o.evidence = self.evidence.push(o.evidence, &e.line);
        o.last_event = o.last_event.max(now);
        if o.listed_until > now {
            return Vec::new();
        }
        if key.v6 && key.len > 48 {
            let wide = key.widened(48).addr;
            if self.wide.get(&wide).is_some_and(|w| w.listed_until > now) {
                return Vec::new();
            }
        }
        let recipient = e.recipient.as_deref().unwrap_or("");
        let globs = !(c.traps.is_empty() && c.protected.is_empty());
        let lower = if globs && !recipient.is_empty() {
            recipient.to_lowercase()
        } else {
            String::new()
        };
        if !lower.is_empty() && c.traps.iter().any(|g| g.matches(&lower)) {
            return self.list(idx, e, now, Why::Trap(recipient));
        }
        let cat = if !lower.is_empty() && c.protected.iter().any(|g| g.matches(&lower)) {
            PROTECTED
        } else if e.sender.as_deref() == Some("") {
            BACKSCATTER
        } else {
            // `EventClass::ALL` lists the classes in declaration order, so this is its index.
            e.class as usize
        };
        // Advance the window to this event's step.
        let step = now / c.step;
        if step > o.newest || o.score() == 0 {
            let gap = step.saturating_sub(o.newest);
            if gap as usize >= RING || o.score() == 0 {
                o.scores = [0; RING];
                o.counts = [[0; CATS]; RING];
            } else {
                for s in o.newest + 1..=step {
                    let slot = s as usize % RING;
                    o.scores[slot] = 0;
                    o.counts[slot] = [0; CATS];
                }
            }
            if o.score() == 0 {
                o.episode = now;
            }
            o.newest = o.newest.max(step);
        }
        // A late event (logs interleaved out of order) counts in its own step if still held.
        if o.newest - step < RING as u32 {
            let slot = step as usize % RING;
            o.scores[slot] = o.scores[slot].saturating_add(c.weights[cat]);
            o.counts[slot][cat] = o.counts[slot][cat].saturating_add(1);
            o.episode = o.episode.min(now);
        }
        if c.hardfail_after > 0
            && e.code.is_some_and(|x| (500..600).contains(&x))
            && !recipient.is_empty()
        {
            let h = rcpt_hash(recipient);
            let window = c.window();
            let slot = match o.hardfail.iter().position(|s| s.count > 0 && s.rcpt == h) {
                Some(i) => i,
                None => {
                    let i = usize::from(o.hardfail[1].first < o.hardfail[0].first);
                    o.hardfail[i] = Hardfail {
                        rcpt: h,
                        first: now,
                        count: 0,
                    };
                    i
                }
            };
            let s = &mut o.hardfail[slot];
            if now.saturating_sub(s.first) > window {
                *s = Hardfail {
                    rcpt: h,
                    first: now,
                    count: 0,
                };
            }
            s.count = s.count.saturating_add(1);
            if s.count >= c.hardfail_after {
                let (count, span) = (s.count, now.saturating_sub(s.first));
                return self.list(idx, e, now, Why::Hardfail(recipient, count, span));
            }
        }
        if o.score() >= c.threshold {
            return self.list(idx, e, now, Why::Score);
        }
        Vec::new()
    }

    /// Forgets every listing and offence number the engine concluded, keeping the counters: after
    /// the warm-up read of old lines, the state store alone says who is listed and how often (an
    /// operator may have ended a listing, or forgotten a host, since those lines were written);
    /// [`Engine::restore`] then brings back what it remembers.
    pub fn forget_listings(&mut self) {
        for o in &mut self.slab {
            o.listed_until = 0;
            o.offence = 0;
        }
        for w in self.wide.values_mut() {
            w.listed_until = 0;
            w.offence = 0;
        }
    }

    /// Restores what the state store remembers of an offender (at start, or on reload): its
    /// latest offence number and when its latest listing ends, so that escalation and "already
    /// listed" carry over a restart. Nets the engine does not count by (an operator's IPv4 CIDR)
    /// are skipped.
    pub fn restore(&mut self, net: IpNet, offence: u32, listed_until: OffsetDateTime) {
        let offence = u16::try_from(offence).unwrap_or(u16::MAX);
        let until = secs(listed_until);
        let key = Key::of(net.network(), self.c.ipv6_prefix);
        match net {
            IpNet::V4(n) if n.prefix_len() != 32 => {}
            IpNet::V6(n) if n.prefix_len() == 48 && self.c.ipv6_prefix > 48 => {
                let w = self.wide.entry(key.widened(48).addr).or_default();
                w.offence = w.offence.max(offence);
                w.listed_until = w.listed_until.max(until);
            }
            IpNet::V6(n) if n.prefix_len() != self.c.ipv6_prefix => {}
            _ => {
                let idx = self.index_of(key);
                let o = &mut self.slab[idx];
                o.offence = o.offence.max(offence);
                o.listed_until = o.listed_until.max(until);
                o.last_event = o.last_event.max(secs(listed_until));
            }
        }
    }

    /// An operator ended the listing of `net` at `at` (`tarpitctl del`): it may be listed again
    /// from now on; with `forget`, its next listing counts as the first offence.
    pub fn unlisted(&mut self, net: IpNet, at: OffsetDateTime, forget: bool) {
        let now = secs(at);
        let key = Key::of(net.network(), self.c.ipv6_prefix);
        if let Some(w) = self.wide.get_mut(&key.widened(48).addr) {
            if net.prefix_len() <= 48 {
                w.listed_until = w.listed_until.min(now);
                w.members.clear();
                if forget {
                    w.offence = 0;
                }
            }
        }
        if let Some(&i) = self.index.get(&split(key.addr)) {
            let o = &mut self.slab[i as usize];
            o.listed_until = o.listed_until.min(now);
            o.clear_window();
            if forget {
                o.offence = 0;
                o.listed_until = 0;
            }
        }
    }

    /// Drops every stale offender record now (the daemon may call this from a timer; events
    /// also drop a few each).
    pub fn expire(&mut self, at: OffsetDateTime) {
        let now = secs(at);
        let mut i = 0;
        while i < self.slab.len() {
            if self.is_stale(&self.slab[i], now) {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        self.clean_wide(now);
    }

    fn index_of(&mut self, key: Key) -> usize {
        let k = split(key.addr);
        if let Some(&i) = self.index.get(&k) {
            return i as usize;
        }
        let i = self.slab.len();
        self.slab.push(Offender::new(k));
        self.index.insert(k, u32::try_from(i).unwrap_or(u32::MAX));
        i
    }

    fn is_stale(&self, o: &Offender, now: u32) -> bool {
        let span = self.c.step.saturating_mul(RING as u32);
        o.listed_until <= now
            && now >= o.last_event.saturating_add(span)
            && (o.listed_until == 0 || now >= o.listed_until.saturating_add(self.c.forget))
    }

    fn remove(&mut self, i: usize) {
        let gone = self.slab.swap_remove(i);
        self.index.remove(&gone.key);
        if let Some(moved) = self.slab.get(i) {
            self.index
                .insert(moved.key, u32::try_from(i).unwrap_or(u32::MAX));
        }
        self.stats.expired += 1;
    }

    fn sweep(&mut self, now: u32, n: usize) {
        for _ in 0..n {
            if self.slab.is_empty() {
                return;
            }
            if self.cursor >= self.slab.len() {
                self.cursor = 0;
            }
            if self.is_stale(&self.slab[self.cursor], now) {
                self.remove(self.cursor);
            } else {
                self.cursor += 1;
            }
        }
    }

    fn clean_wide(&mut self, now: u32) {
        let forget = self.c.forget;
        self.wide.retain(|_, w| {
            w.members.retain(|&(_, until)| until > now);
            !w.members.is_empty()
                || (w.listed_until != 0 && now < w.listed_until.saturating_add(forget))
        });
        self.wide_cleaned_at = self.wide.len().max(64);
    }

    fn ban_secs(&self, addr: u128, offence: u16) -> u32 {
        self.c.ban_secs(addr, offence)
    }

    fn next_offence(previous: u16, listed_until: u32, now: u32, forget: u32) -> u16 {
        if listed_until != 0 && now >= listed_until.saturating_add(forget) {
            1
        } else {
            previous.saturating_add(1)
        }
    }

    fn list(&mut self, idx: usize, e: &Event, now: u32, why: Why<'_>) -> Vec<Decision> {
        let o = &self.slab[idx];
        let key = Key {
            addr: join(o.key),
            len: if e.ip.is_ipv6() {
                self.c.ipv6_prefix
            } else {
                32
            },
            v6: e.ip.is_ipv6(),
        };
        let net = key.net();
        let reason = match why {
            Why::Trap(r) => format!("rejected attempt to spam trap {r}"),
            Why::Hardfail(r, n, span) => format!(
                "{n} attempts to {r} in {} after a 5xx refusal",
                span_text(span)
            ),
            Why::Score => self.score_reason(o, now),
        };
        let evidence = self.evidence.chain(o.evidence, EVIDENCE_LINES);
        let o = &mut self.slab[idx];
        o.clear_window();
        if self.allow.allows_some_of(&net, i64::from(now)).is_some() {
            self.stats.suppressed += 1;
            return Vec::new();
        }
        let offence = Self::next_offence(o.offence, o.listed_until, now, self.c.forget);
        o.offence = offence;
        let secs_ = self.ban_secs(key.addr, offence);
        let until = now.saturating_add(secs_);
        self.slab[idx].listed_until = until;
        let decision = self.decision(e, net, secs_, offence, reason, evidence);
        if key.v6 && key.len > 48 && self.c.widen_after > 0 {
            if let Some(wide) = self.widen(key, until, now, &decision) {
                return vec![wide];
            }
        }
        self.stats.decisions += 1;
        vec![decision]
    }

    /// Records a listed IPv6 prefix under its /48; lists the /48 instead when enough are listed.
    fn widen(&mut self, key: Key, until: u32, now: u32, by: &Decision) -> Option<Decision> {
        if self.wide.len() >= self.wide_cleaned_at * 2 {
            self.clean_wide(now);
        }
        let w48 = key.widened(48);
        let forget = self.c.forget;
        let w = self.wide.entry(w48.addr).or_default();
        w.members.retain(|&(a, u)| u > now && a != key.addr);
        w.members.push((key.addr, until));
        if w.members.len() < self.c.widen_after {
            return None;
        }
        let net = w48.net();
        if self.allow.allows_some_of(&net, i64::from(now)).is_some() {
            self.stats.suppressed += 1;
            return None;
        }
        let c = &self.c;
        let w = self.wide.get_mut(&w48.addr)?;
        let mut members: Vec<u128> = w.members.iter().map(|m| m.0).collect();
        members.sort_unstable();
        let longest = w
            .members
            .iter()
            .map(|m| m.1.saturating_sub(now))
            .max()
            .unwrap_or(0);
        let offence = Self::next_offence(w.offence, w.listed_until, now, forget);
        w.offence = offence;
        let secs_ = c.ban_secs(w48.addr, offence).max(longest);
        w.listed_until = now.saturating_add(secs_);
        w.members.clear();
        let list: Vec<String> = members
            .iter()
            .map(|&a| ip_text(&Key { addr: a, ..key }.net()))
            .collect();
        let reason = format!(
            "{} /{} prefixes inside {} listed at once: {}",
            list.len(),
            key.len,
            net,
            list.join(", ")
        );
        self.stats.decisions += 1;
        Some(Decision {
            ip: net,
            until: by.time + Duration::from_secs(u64::from(secs_)),
            duration: Duration::from_secs(u64::from(secs_)),
            offence: u32::from(offence),
            reason,
            ..by.clone()
        })
    }

    fn score_reason(&self, o: &Offender, now: u32) -> String {
        let mut per = [0u32; CATS];
        let mut oldest_step = o.newest;
        for back in 0..RING as u32 {
            let Some(s) = o.newest.checked_sub(back) else {
                break;
            };
            let slot = s as usize % RING;
            if o.scores[slot] > 0 {
                oldest_step = s;
            }
            for (p, &n) in per.iter_mut().zip(&o.counts[slot]) {
                *p += u32::from(n);
            }
        }
        let total: u32 = per.iter().sum();
        let start = o.episode.max(oldest_step.saturating_mul(self.c.step));
        let mut parts: Vec<(u32, &str)> = per
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(cat, &n)| (n, cat_name(cat)))
            .collect();
        parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let list: Vec<String> = parts
            .iter()
            .map(|(n, name)| format!("{n}× {name}"))
            .collect();
        let span = now.saturating_sub(start);
        format!(
            "{total} rejection{}{}: {} (score {} of {})",
            if total == 1 { "" } else { "s" },
            if span == 0 {
                String::new()
            } else {
                format!(" in {}", span_text(span))
            },
            list.join(", "),
            o.score(),
            self.c.threshold
        )
    }

    fn decision(
        &self,
        e: &Event,
        ip: ipnet::IpNet,
        secs_: u32,
        offence: u16,
        reason: String,
        evidence: Vec<String>,
    ) -> Decision {
        let time = e.time.to_offset(UtcOffset::UTC);
        let duration = Duration::from_secs(u64::from(secs_));
        Decision {
            time,
            ip,
            action: Action::List,
            until: time + duration,
            duration,
            offence: u32::from(offence),
            reason,
            evidence,
            enforced: self.c.enforced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Mta;
    use crate::policy::config::parse_policy_section;

    const T0: i64 = 1_764_849_600;

    fn ev(t: i64, ip: &str, class: EventClass, rcpt: &str) -> Event {
        Event {
            time: OffsetDateTime::from_unix_timestamp(t).unwrap(),
            ip: ip.parse().unwrap(),
            class,
            mta: Mta::Postfix,
            service: "smtpd".into(),
            sender: Some("x@example.com".into()),
            recipient: Some(rcpt.into()),
            helo: None,
            code: Some(550),
            rule: "t".into(),
            line: format!("line at {t} from {ip} to {rcpt}"),
        }
    }

    fn engine(yaml: &str) -> Engine {
        Engine::new(&parse_policy_section("t", yaml).unwrap(), Vec::new())
    }

    #[test]
    fn the_reason_counts_each_class_and_the_evidence_is_the_last_lines() {
        let mut e = engine("");
        let mut out = Vec::new();
        for i in 0..5 {
            let class = if i < 1 {
                EventClass::RelayDenied
            } else {
                EventClass::UnknownRecipient
            };
            out.extend(e.observe_event(&ev(
                T0 + 60 * i,
                "198.51.100.7",
                class,
                &format!("u{i}@example.org"),
            )));
        }
        // 5 (relay-denied) + 2 + 2 + 2 (unknown-recipient) = 11: listed on the 4th event.
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(
            d.reason,
            "4 rejections in 3 min: 3× unknown-recipient, 1× relay-denied (score 11 of 10)"
        );
        assert_eq!(d.evidence.len(), 4);
        assert_eq!(
            d.evidence[3],
            format!("line at {} from 198.51.100.7 to u3@example.org", T0 + 180)
        );
        assert_eq!(d.time.unix_timestamp(), T0 + 180);
        assert_eq!(d.until.unix_timestamp(), T0 + 180 + 3600);
    }

    #[test]
    fn evidence_is_capped() {
        let mut e = engine("policy: { threshold: 100, repeat_after_hardfail: 0 }");
        let mut out = Vec::new();
        for i in 0..60 {
            out.extend(e.observe_event(&ev(
                T0 + i,
                "198.51.100.7",
                EventClass::RblListed,
                "a@example.org",
            )));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence.len(), EVIDENCE_LINES);
        assert!(out[0].evidence[EVIDENCE_LINES - 1].starts_with(&format!("line at {}", T0 + 19)));
    }

    #[test]
    fn a_score_older_than_the_window_and_a_step_no_longer_counts() {
        let mut e = engine("policy: { repeat_after_hardfail: 0 }");
        let w = 3600 + 900;
        for i in 0..4 {
            assert!(e
                .observe_event(&ev(
                    T0 + i,
                    "192.0.2.9",
                    EventClass::UnknownRecipient,
                    "a@x"
                ))
                .is_empty());
        }
        assert!(e
            .observe_event(&ev(
                T0 + w + 1,
                "192.0.2.9",
                EventClass::UnknownRecipient,
                "a@x"
            ))
            .is_empty());
        // Inside the window the same fifth event lists.
        let mut e = engine("policy: { repeat_after_hardfail: 0 }");
        for i in 0..4 {
            e.observe_event(&ev(
                T0 + i,
                "192.0.2.9",
                EventClass::UnknownRecipient,
                "a@x",
            ));
        }
        assert_eq!(
            e.observe_event(&ev(
                T0 + 3599,
                "192.0.2.9",
                EventClass::UnknownRecipient,
                "a@x"
            ))
            .len(),
            1
        );
    }

    #[test]
    fn durations_are_capped_and_jitter_is_bounded_and_repeatable() {
        let mut e = engine("ban: { first: 1d, factor: 10, max: 28d }");
        let mut durations = Vec::new();
        for round in 0..4 {
            let t = T0 + round * 40 * 86400;
            for i in 0..5 {
                for d in e.observe_event(&ev(
                    t + i,
                    "192.0.2.9",
                    EventClass::UnknownRecipient,
                    &format!("{i}@x"),
                )) {
                    durations.push(d.duration.as_secs() / 86400);
                }
            }
        }
        assert_eq!(durations, vec![1, 10, 28, 28]);
        let run = || {
            let mut e = engine("ban: { jitter: 0.2 }");
            (0..5)
                .flat_map(|i| {
                    e.observe_event(&ev(
                        T0 + i,
                        "192.0.2.9",
                        EventClass::UnknownRecipient,
                        &format!("{i}@x"),
                    ))
                })
                .map(|d| d.duration.as_secs())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!((2880..=4320).contains(&a[0]), "{a:?}");
    }

    #[test]
    fn after_forget_listings_only_restored_listings_hold() {
        let mut e = engine("policy: { traps: [\"trap@x\"] }");
        let trap = |e: &mut Engine, t: i64, ip: &str| {
            e.observe_event(&ev(t, ip, EventClass::UnknownRecipient, "trap@x"))
        };
        assert_eq!(trap(&mut e, T0, "198.51.100.7").len(), 1);
        assert_eq!(trap(&mut e, T0, "198.51.100.8").len(), 1);
        assert!(
            trap(&mut e, T0 + 60, "198.51.100.7").is_empty(),
            "still listed"
        );
        e.forget_listings();
        let until = OffsetDateTime::from_unix_timestamp(T0 + 3600).unwrap();
        e.restore("198.51.100.8/32".parse().unwrap(), 1, until);
        // The store did not keep .7's listing (ended by hand): its next trap hit lists it anew.
        let again = trap(&mut e, T0 + 120, "198.51.100.7");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].offence, 1);
        // .8's listing, restored, still holds.
        assert!(trap(&mut e, T0 + 120, "198.51.100.8").is_empty());
    }

    #[test]
    fn stale_offenders_are_dropped_and_listed_ones_kept() {
        let mut e = engine("policy: { repeat_after_hardfail: 0 }");
        for n in 0..100u32 {
            let ip = format!("198.51.100.{}", n % 250);
            e.observe_event(&ev(T0, &ip, EventClass::UnknownRecipient, "a@x"));
        }
        for i in 0..5 {
            e.observe_event(&ev(
                T0 + i,
                "203.0.113.1",
                EventClass::UnknownRecipient,
                &format!("{i}@x"),
            ));
        }
        assert_eq!(e.tracked(), 101);
        e.expire(OffsetDateTime::from_unix_timestamp(T0 + 2 * 3600).unwrap());
        assert_eq!(e.tracked(), 1, "only the listed host's history is kept");
        e.expire(OffsetDateTime::from_unix_timestamp(T0 + 92 * 86400).unwrap());
        assert_eq!(e.tracked(), 0);
        // Events alone also sweep: a quiet day later, new events drop the stale records.
        let mut e = engine("");
        for n in 0..50u32 {
            e.observe_event(&ev(
                T0,
                &format!("192.0.2.{n}"),
                EventClass::AuthFailed,
                "a@x",
            ));
        }
        for n in 0..50u32 {
            e.observe_event(&ev(
                T0 + 86400,
                &format!("198.51.100.{n}"),
                EventClass::AuthFailed,
                "a@x",
            ));
        }
        assert_eq!(e.tracked(), 50);
        assert_eq!(e.stats().expired, 50);
    }

    #[test]
    fn a_delivery_of_our_own_bounce_allowlists_nobody() {
        let mut e = engine("");
        let delivery = |id: &str, ip: &str| Delivery {
            time: OffsetDateTime::from_unix_timestamp(T0).unwrap(),
            ip: ip.parse().unwrap(),
            mta: Mta::Postfix,
            queue_id: Some(id.into()),
            rule: "t".into(),
            line: "sent".into(),
        };
        e.observe_sender("AAA111", "");
        e.observe_sender("BBB222", "alice@example.org");
        e.observe_delivery(&delivery("AAA111", "198.51.100.66"));
        e.observe_delivery(&delivery("BBB222", "198.51.100.77"));
        let at = OffsetDateTime::from_unix_timestamp(T0 + 60).unwrap();
        assert!(e.allowed("198.51.100.66".parse().unwrap(), at).is_none());
        assert!(e.allowed("198.51.100.77".parse().unwrap(), at).is_some());
        assert_eq!(e.stats().bounce_deliveries, 1);
    }

    #[test]
    fn the_engine_can_move_to_the_daemons_policy_task() {
        fn send<T: Send + 'static>() {}
        send::<Engine>();
    }

    #[test]
    fn a_prefix_holding_our_own_address_is_never_listed() {
        let section = parse_policy_section("t", "").unwrap();
        let mut e = Engine::new(&section, vec!["2001:db8:1:1::25".parse().unwrap()]);
        let mut out = Vec::new();
        for i in 0..10 {
            out.extend(e.observe_event(&ev(
                T0 + i,
                "2001:db8:1:1::99",
                EventClass::RelayDenied,
                &format!("{i}@x"),
            )));
        }
        assert!(out.is_empty());
        assert!(e.stats().suppressed > 0);
    }
}
