//! Parsing: one log line in, at most one typed [`Event`] out.
//!
//! The line's header is split first ([`header`]), which says which MTA and daemon wrote it; the
//! MTA's rules ([`rules`]) are then tried in order, each behind a cheap literal pre-filter, so the
//! common line (connect, disconnect, queue manager, delivery) costs a few byte comparisons and no
//! allocation. The client address is taken only from the group a rule captures from the MTA's own
//! client field; a guard refuses lines where that field is ambiguous. Parsing never touches the
//! kernel, the disk or the network.

pub mod clock;
pub mod fields;
pub mod header;
pub mod matcher;
pub mod rules;

use std::net::IpAddr;
use std::str::FromStr;

use crate::event::{Delivery, Event, Mta};
use clock::Clock;
use fields::Field;
use header::Stamp;
use matcher::{Attempt, Matched};
use rules::{Rule, RuleSet, RulesError, Verdict};

/// Lines longer than this are not parsed (no MTA writes them; a file with one is damaged).
pub const MAX_LINE: usize = 64 * 1024;

/// Which MTA's lines to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtaChoice {
    /// Both, told apart by each line's program name (or Exim's own log format).
    #[default]
    Auto,
    /// Postfix lines only.
    Postfix,
    /// Exim lines only.
    Exim,
}

impl MtaChoice {
    fn allows(self, mta: Mta) -> bool {
        match self {
            MtaChoice::Auto => true,
            MtaChoice::Postfix => mta == Mta::Postfix,
            MtaChoice::Exim => mta == Mta::Exim,
        }
    }
}

impl FromStr for MtaChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(MtaChoice::Auto),
            "postfix" => Ok(MtaChoice::Postfix),
            "exim" => Ok(MtaChoice::Exim),
            other => Err(format!(
                "unknown MTA {other:?}; expected auto, postfix or exim"
            )),
        }
    }
}

/// Why a line could not be used although it looked like it might be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// Holds a NUL byte (a damaged file; leading NULs alone are skipped).
    Nul,
    /// Neither a timestamp nor a program name where a header should be.
    NoHeader,
    /// A rule matched but its address is not an IP address.
    BadAddress,
    /// A rule matched but the date does not exist.
    BadDate,
    /// A rule matched but client-shaped text carries another address: refused, not guessed.
    Ambiguous,
}

impl Malformed {
    /// A short name for counts and debug logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TooLong => "too-long",
            Malformed::Nul => "nul-byte",
            Malformed::NoHeader => "no-header",
            Malformed::BadAddress => "bad-address",
            Malformed::BadDate => "bad-date",
            Malformed::Ambiguous => "ambiguous-client",
        }
    }
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A rejection event.
    Event(Box<Event>),
    /// A successful delivery by our MTA to a remote server.
    Delivered(Box<Delivery>),
    /// The envelope sender of a message in our queue (only null senders, i.e. our bounces,
    /// are reported), so that the delivery of a bounce allowlists nobody.
    Sender {
        /// The queue id (Postfix) or message id (Exim).
        queue_id: String,
        /// The sender (empty for `<>`).
        sender: String,
    },
    /// A well-formed line that is not an event (most lines).
    NotAnEvent,
    /// A line that could not be used; counted and skipped.
    Malformed(Malformed),
}

/// Turns log lines into events. Cheap to clone; holds compiled rules and the clock.
#[derive(Debug, Clone)]
pub struct Parser {
    postfix: RuleSet,
    exim: RuleSet,
    choice: MtaChoice,
    clock: Clock,
    /// Postfix rule indexes per daemon name, so a line only meets the rules for its daemon.
    postfix_daemons: Vec<(Vec<u8>, Vec<usize>)>,
    postfix_any_daemon: Vec<usize>,
    /// Whether delivery lines are parsed (the policy needs them; `replay --events` does not).
    deliveries: bool,
}

impl Parser {
    /// A parser with the built-in rules.
    pub fn builtin(choice: MtaChoice, clock: Clock) -> Result<Self, RulesError> {
        Ok(Parser::new(
            RuleSet::builtin(Mta::Postfix)?,
            RuleSet::builtin(Mta::Exim)?,
            choice,
            clock,
        ))
    }

    /// A parser with the given rules.
    pub fn new(postfix: RuleSet, exim: RuleSet, choice: MtaChoice, clock: Clock) -> Self {
        let mut daemons: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for rule in postfix.rules() {
            for service in &rule.services {
                if !daemons.iter().any(|(d, _)| d == service) {
                    daemons.push((service.clone(), Vec::new()));
                }
            }
        }
        for (daemon, indexes) in &mut daemons {
            *indexes = (0..postfix.rules().len())
                .filter(|&i| postfix.rules()[i].applies_to(daemon))
                .collect();
        }
        let any = (0..postfix.rules().len())
            .filter(|&i| postfix.rules()[i].services.is_empty())
            .collect();
        Parser {
            postfix,
            exim,
            choice,
            clock,
            postfix_daemons: daemons,
            postfix_any_daemon: any,
            deliveries: true,
        }
    }

    /// Whether to parse our MTA's delivery lines ([`Outcome::Delivered`]); on by default. A
    /// caller that only wants rejection events turns this off and saves their cost.
    pub fn with_deliveries(mut self, on: bool) -> Self {
        self.deliveries = on;
        self
    }

    /// The clock lines are resolved with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Parses one line (with or without its line end).
    pub fn parse(&self, raw: &[u8]) -> Outcome {
        let line = trim_line(raw);
        if line.len() > MAX_LINE {
            return Outcome::Malformed(Malformed::TooLong);
        }
        if memchr::memchr(0, line).is_some() {
            return Outcome::Malformed(Malformed::Nul);
        }
        let head = header::split(line);
        let (mta, program) = match head.program {
            Some(p) if p.starts_with(b"postfix") => (Mta::Postfix, p),
            Some(p) if p.starts_with(b"exim") => (Mta::Exim, p),
            // Another daemon (dovecot, opendkim, kernel, ...) or a rejectlog continuation.
            Some(_) => (Mta::Exim, &b""[..]),
            None => match head.stamp {
                Some(s) if s.year.is_some() => (Mta::Exim, &b""[..]),
                Some(_) => return Outcome::Malformed(Malformed::NoHeader),
                None if line.is_empty() || line[0].is_ascii_whitespace() => {
                    return Outcome::NotAnEvent
                }
                None => return Outcome::Malformed(Malformed::NoHeader),
            },
        };
        if head.program.is_some() && program.is_empty() {
            return self.exim_without_tag(line, head);
        }
        if !self.choice.allows(mta) {
            return Outcome::NotAnEvent;
        }
        match mta {
            Mta::Postfix => self.postfix_line(line, head.stamp, program, head.body),
            Mta::Exim => self.exim_line(line, head.stamp, head.body),
        }
    }

    /// A line whose tag is not an MTA's: only an Exim mainlog line can still be one (Exim's
    /// own format has no tag, and its message may begin with a word and a colon).
    fn exim_without_tag(&self, line: &[u8], head: header::Header<'_>) -> Outcome {
        match head.stamp {
            Some(s) if s.year.is_some() && self.choice.allows(Mta::Exim) => {
                let body = header::leading_stamp(line)
                    .map(|(_, used)| trim_spaces(&line[used..]))
                    .unwrap_or(head.body);
                self.exim_line(line, head.stamp, body)
            }
            _ => Outcome::NotAnEvent,
        }
    }

    fn postfix_line(
        &self,
        line: &[u8],
        stamp: Option<Stamp>,
        program: &[u8],
        body: &[u8],
    ) -> Outcome {
        // postfix/smtpd, postfix-in/submission/smtpd: the service is what follows the first
        // slash, the daemon is the last part.
        let Some(slash) = memchr::memchr(b'/', program) else {
            return Outcome::NotAnEvent;
        };
        let service = &program[slash + 1..];
        let daemon = match memchr::memrchr(b'/', service) {
            Some(i) => &service[i + 1..],
            None => service,
        };
        let indexes = self
            .postfix_daemons
            .iter()
            .find(|(d, _)| d == daemon)
            .map_or(&self.postfix_any_daemon, |(_, i)| i);
        let rules = self.postfix.rules();
        let candidates = indexes.iter().map(|&i| &rules[i]);
        self.apply(candidates, Mta::Postfix, service, line, stamp, body)
    }

    fn exim_line(&self, line: &[u8], stamp: Option<Stamp>, body: &[u8]) -> Outcome {
        // Exim splits long or multi-line syslog records into `[1\3] …`, `[2\3] …` pieces; only
        // the first holds the host field, and the others are text the client may have written.
        let body = match split_record(body) {
            Some((1, rest)) => rest,
            Some(_) => return Outcome::NotAnEvent,
            None => body,
        };
        // Exim through syslog or the journal may carry its own timestamp, with a year.
        let (stamp, body) = match header::leading_stamp(body) {
            Some((own, used)) if own.year.is_some() => (Some(own), trim_spaces(&body[used..])),
            _ => (stamp, body),
        };
        self.apply(
            self.exim.rules().iter(),
            Mta::Exim,
            b"exim",
            line,
            stamp,
            body,
        )
    }

    fn apply<'r>(
        &self,
        rules: impl Iterator<Item = &'r Rule>,
        mta: Mta,
        service: &[u8],
        line: &[u8],
        stamp: Option<Stamp>,
        body: &[u8],
    ) -> Outcome {
        for rule in rules {
            if !self.deliveries && matches!(rule.class, Verdict::Delivered | Verdict::QueueSender) {
                continue;
            }
            if !rule.prefilter(body) {
                continue;
            }
            match rule.attempt(body) {
                Attempt::No => continue,
                Attempt::Ambiguous => return Outcome::Malformed(Malformed::Ambiguous),
                Attempt::Yes(m) => return self.build(&m, mta, service, line, stamp),
            }
        }
        Outcome::NotAnEvent
    }

    fn build(
        &self,
        m: &Matched<'_, '_>,
        mta: Mta,
        service: &[u8],
        line: &[u8],
        stamp: Option<Stamp>,
    ) -> Outcome {
        if m.rule().class == Verdict::QueueSender {
            return match (m.get(Field::Queue), m.get(Field::Sender)) {
                (Some(q), Some(s)) => Outcome::Sender {
                    queue_id: lossy(q),
                    sender: lossy(s),
                },
                _ => Outcome::NotAnEvent,
            };
        }
        let Some(ip) = m.get(Field::Ip).and_then(parse_ip) else {
            return Outcome::Malformed(Malformed::BadAddress);
        };
        let verdict = classify(m.rule(), m);
        if verdict == Verdict::Ignore {
            return Outcome::NotAnEvent;
        }
        let time = match &stamp {
            Some(s) => match self.clock.resolve(s) {
                Some(t) => t,
                None => return Outcome::Malformed(Malformed::BadDate),
            },
            None => self.clock.reference(),
        };
        let class = match verdict {
            Verdict::Class(class) => class,
            Verdict::Ignore | Verdict::QueueSender => return Outcome::NotAnEvent,
            Verdict::Delivered => {
                return Outcome::Delivered(Box::new(Delivery {
                    time,
                    ip,
                    mta,
                    queue_id: m.get(Field::Queue).map(lossy),
                    rule: m.rule().name.clone(),
                    line: lossy(line),
                }))
            }
        };
        let text = |field| m.get(field).map(lossy);
        Outcome::Event(Box::new(Event {
            time,
            ip,
            class,
            mta,
            service: lossy(service),
            sender: text(Field::Sender),
            recipient: text(Field::Recipient),
            helo: text(Field::Helo),
            code: m
                .get(Field::Code)
                .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok()),
            rule: m.rule().name.clone(),
            line: lossy(line),
        }))
    }
}

/// The first condition whose every test matches decides; else the rule's own class.
/// Each tested field is scanned once, by its set of patterns.
fn classify(rule: &Rule, m: &Matched<'_, '_>) -> Verdict {
    let c = &rule.classify;
    if c.conditions.is_empty() {
        return rule.class;
    }
    let matched: Vec<Option<regex::bytes::SetMatches>> = c
        .sets
        .iter()
        .map(|(field, set)| m.get(*field).map(|text| set.matches(text)))
        .collect();
    c.conditions
        .iter()
        .find(|(_, tests)| {
            tests.iter().all(|&(set, pattern)| {
                matched
                    .get(set)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.matched(pattern))
            })
        })
        .map_or(rule.class, |(verdict, _)| *verdict)
}

/// Whether two address texts name the same address (`::ffff:192.0.2.1` is `192.0.2.1`).
/// Text that is not an address is never the same.
pub(crate) fn same_address(a: &[u8], b: &[u8]) -> bool {
    matches!((parse_ip(a), parse_ip(b)), (Some(x), Some(y)) if x == y)
}

/// An address as the MTA wrote it; IPv4-mapped IPv6 becomes IPv4.
fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_prefix("IPv6:").unwrap_or(text);
    let ip: IpAddr = text.parse().ok()?;
    let ip = ip.to_canonical();
    (!ip.is_unspecified()).then_some(ip)
}

fn lossy(bytes: &[u8]) -> String {
    // The validating fast path first: nearly every log line is valid UTF-8.
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Drops the line end and any NUL bytes before the line (what a crash leaves in a log file).
fn trim_line(raw: &[u8]) -> &[u8] {
    let mut line = raw;
    while let Some((&last, rest)) = line.split_last() {
        if last == b'\n' || last == b'\r' {
            line = rest;
        } else {
            break;
        }
    }
    let start = line.iter().take_while(|&&b| b == 0).count();
    &line[start..]
}

/// Exim's syslog record pieces: `[N\M] ` or `[N/M] ` → (N, the rest).
fn split_record(body: &[u8]) -> Option<(u32, &[u8])> {
    let inner = body.strip_prefix(b"[")?;
    let close = memchr::memchr(b']', inner.get(..12)?)?;
    let (n, m) = inner[..close].split_at(
        inner[..close]
            .iter()
            .position(|&b| b == b'\\' || b == b'/')?,
    );
    let m = &m[1..];
    if n.is_empty() || m.is_empty() || !n.iter().chain(m).all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(n).ok()?.parse().ok()?;
    Some((n, trim_spaces(&inner[close + 1..])))
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}
