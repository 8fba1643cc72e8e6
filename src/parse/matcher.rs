//! Applies one compiled rule to a message: the regex, then the tail, then the guard.
//!
//! Returns the match with every field reachable by [`Field`]; knows nothing about events,
//! classes or time.

use regex::bytes::Captures;

use super::fields::{Field, Source};
use super::rules::{GuardScope, Rule};

/// A rule's match on one message.
pub struct Matched<'r, 'h> {
    rule: &'r Rule,
    head: Captures<'h>,
    lead: Option<Captures<'h>>,
    tail: Option<Captures<'h>>,
    between: &'h [u8],
}

/// What became of trying a rule.
pub enum Attempt<'r, 'h> {
    /// The rule does not match.
    No,
    /// It matches, but client-shaped text carries another address: the line is ambiguous.
    Ambiguous,
    /// It matches.
    Yes(Box<Matched<'r, 'h>>),
}

impl Rule {
    /// Tries this rule on `body` (the message after the header). The pre-filter is the
    /// caller's to check first.
    pub fn attempt<'r, 'h>(&'r self, body: &'h [u8]) -> Attempt<'r, 'h> {
        let Some(head) = self.regex.captures(body) else {
            return Attempt::No;
        };
        let head_end = head.get(0).map_or(0, |m| m.end());
        let rest = &body[head_end..];
        let (tail, between) = match &self.tail {
            None => (None, rest),
            // The first marker from which the tail regex matches to the end of the line.
            Some(t) => t
                .marker
                .find_iter(rest)
                .find_map(|m| {
                    let s = m.start();
                    t.regex.captures(&rest[s..]).map(|c| (Some(c), &rest[..s]))
                })
                .unwrap_or((None, rest)),
        };
        let (lead, between) = match &self.lead {
            Some(l) => match l.captures(between) {
                Some(c) => {
                    let end = c.get(0).map_or(0, |m| m.end());
                    (Some(c), &between[end..])
                }
                None => (None, between),
            },
            None => (None, between),
        };
        let matched = Matched {
            rule: self,
            head,
            lead,
            tail,
            between,
        };
        if let Some(guard) = &self.guard {
            let Some(ip) = matched.head_ip() else {
                return Attempt::Yes(Box::new(matched));
            };
            let haystack = match guard.scope {
                GuardScope::Line => body,
                GuardScope::After => &body[ip.end()..],
            };
            let ip_text = ip.as_bytes();
            let other = guard.pattern.captures_iter(haystack).any(|c| {
                c.name("ip")
                    .is_none_or(|m| !super::same_address(m.as_bytes(), ip_text))
            });
            if other {
                return Attempt::Ambiguous;
            }
        }
        Attempt::Yes(Box::new(matched))
    }
}

impl<'h> Matched<'_, 'h> {
    fn head_ip(&self) -> Option<regex::bytes::Match<'h>> {
        self.rule.sources[Field::Ip as usize]
            .iter()
            .find_map(|s| match s {
                Source::Head(i) => self.head.get(*i),
                _ => None,
            })
    }

    /// The text of `field`, from the first place that has it.
    pub fn get(&self, field: Field) -> Option<&'h [u8]> {
        self.rule.sources[field as usize]
            .iter()
            .find_map(|s| match s {
                Source::Head(i) => self.head.get(*i).map(|m| m.as_bytes()),
                Source::Lead(i) => self.lead.as_ref()?.get(*i).map(|m| m.as_bytes()),
                Source::Tail(i) => self.tail.as_ref()?.get(*i).map(|m| m.as_bytes()),
                Source::Between => Some(self.between),
            })
    }

    /// The rule that matched.
    pub fn rule(&self) -> &Rule {
        self.rule
    }
}
