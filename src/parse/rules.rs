//! Rule files (`rules/*.yaml`): the log patterns, kept as data and compiled once.
//!
//! A rule file names its MTA, optional placeholders (`defs`, used as `%{NAME}` inside regexes),
//! optional classifiers (lists that pick a class from what a rule captured), and its rules. Each
//! rule has a literal pre-filter that must occur in the message before its regex is tried, a
//! regex with named groups, and a class (or a classifier). Every rule must capture `ip`, and the
//! file's author is responsible for taking it only from the MTA-written client field; a `guard`
//! refuses lines where client-shaped text with another address appears where the remote client
//! could have written it.
//!
//! The built-in files are embedded in the binary; an operator's file can replace them or be
//! added in front of them (its rules are tried first). A file that does not compile is an error
//! that names the file, the rule and the regex error.

use std::collections::BTreeMap;

use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::fields::{Field, Source};
use crate::event::{EventClass, Mta};

/// The built-in Postfix rules.
pub const POSTFIX_RULES: &str = include_str!("../../rules/postfix.yaml");
/// The built-in Exim rules.
pub const EXIM_RULES: &str = include_str!("../../rules/exim.yaml");

/// A rule file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The YAML itself is broken or has unknown keys (the message carries line and column).
    #[error("rule file {file}: {source}")]
    Yaml {
        /// The file's name as given.
        file: String,
        /// What serde_yaml_ng said, with line and column.
        source: serde_yaml_ng::Error,
    },
    /// A regex does not compile.
    #[error("rule file {file}: rule {rule:?}: {what} does not compile: {source}")]
    Regex {
        /// The file's name as given.
        file: String,
        /// The rule's name.
        rule: String,
        /// Which regex of the rule.
        what: String,
        /// The regex crate's error.
        source: Box<regex::Error>,
    },
    /// Something else about a rule is wrong.
    #[error("rule file {file}: rule {rule:?}: {problem}")]
    Rule {
        /// The file's name as given.
        file: String,
        /// The rule's name.
        rule: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The file is for another MTA than the set it was added to.
    #[error("rule file {file}: it is for {found}, but was given for {expected}")]
    WrongMta {
        /// The file's name as given.
        file: String,
        /// The MTA the file names.
        found: Mta,
        /// The MTA expected.
        expected: Mta,
    },
}

/// What a rule (or a classifier entry) yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An event of this class.
    Class(EventClass),
    /// No event: the line is known and deliberately not counted.
    Ignore,
    /// Not a rejection: our MTA delivered mail to this server.
    Delivered,
    /// Not a rejection: the envelope sender of a message in our queue (to tell our own bounces
    /// from other deliveries). Such a rule captures `queue` and `sender`, and no address.
    QueueSender,
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "ignore" => return Ok(Verdict::Ignore),
            "delivered" => return Ok(Verdict::Delivered),
            "queue-sender" => return Ok(Verdict::QueueSender),
            _ => {}
        }
        s.parse::<EventClass>()
            .map(Verdict::Class)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    mta: Mta,
    #[serde(default)]
    defs: BTreeMap<String, String>,
    #[serde(default)]
    classifiers: BTreeMap<String, Vec<EntrySpec>>,
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    #[serde(default)]
    services: Vec<String>,
    literal: Literals,
    regex: String,
    #[serde(default)]
    class: Option<Verdict>,
    #[serde(default)]
    classify: Option<String>,
    #[serde(default)]
    guard: Option<GuardSpec>,
    #[serde(default)]
    lead: Option<String>,
    #[serde(default)]
    tail: Option<TailSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TailSpec {
    marker: String,
    regex: String,
}

/// One literal, or several of which any may occur.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Literals {
    One(String),
    Any(Vec<String>),
}

impl Literals {
    fn into_vec(self) -> Vec<String> {
        match self {
            Literals::One(s) => vec![s],
            Literals::Any(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    class: Verdict,
    when: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardSpec {
    pattern: String,
    scope: GuardScope,
}

/// Where a guard looks for a second client-shaped field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardScope {
    /// The whole message: every client-shaped field must carry the same address.
    Line,
    /// Only the text after the captured address (where the remote client wrote the rest).
    After,
}

/// A guard: client-shaped text that, when it carries another address, makes the line ambiguous.
#[derive(Debug, Clone)]
pub struct Guard {
    /// A regex whose group `ip` captures the address of a client-shaped field.
    pub pattern: Regex,
    /// Where to look.
    pub scope: GuardScope,
}

/// A rule's classifier: conditions tried in order; the first whose every (field, pattern) test
/// matches decides.
///
/// The patterns that test one field are compiled into one [`RegexSet`], so that a field is
/// scanned once for all conditions instead of once per condition.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// (verdict, tests) in order; a test is (index into `sets`, pattern index in that set).
    pub conditions: Vec<(Verdict, Vec<(usize, usize)>)>,
    /// One set per tested field, with the patterns in the order the tests were written.
    pub sets: Vec<(Field, RegexSet)>,
}

/// The end of a line that the MTA appends after text the client controls (Postfix's
/// `; from=<…> to=<…> proto=… helo=<…>`), matched on its own: the first place where `marker`
/// occurs and `regex` matches to the end of the line is taken. (Text the client put into its
/// own addresses can move that place, which changes only what the client's own event says.) The text between the rule's
/// regex and the tail is the field `reason`, unless the regex captures one.
#[derive(Debug, Clone)]
pub struct Tail {
    /// Where a tail may start.
    pub marker: Regex,
    /// The tail itself, anchored at both ends.
    pub regex: Regex,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name (shown with events).
    pub name: String,
    /// Daemons it applies to (Postfix: `smtpd`, `postscreen`, `cleanup`); empty means all.
    pub services: Vec<Vec<u8>>,
    /// The literal pre-filter: the regex is tried only when one of these occurs.
    pub literals: Vec<memmem::Finder<'static>>,
    /// The pattern.
    pub regex: Regex,
    /// The verdict when no classifier condition decides.
    pub class: Verdict,
    /// Conditions tried in order before `class`.
    pub classify: Classifier,
    /// The optional ambiguity guard.
    pub guard: Option<Guard>,
    /// An optional regex matched at the start of the text after `regex` (before the tail), whose
    /// groups are fields too; what follows it is the `reason`.
    pub lead: Option<Regex>,
    /// The optional tail.
    pub tail: Option<Tail>,
    /// Where each field is found, in order of preference (indexed by [`Field`]).
    pub sources: Vec<Vec<Source>>,
}

impl Rule {
    /// Whether the pre-filter lets `body` through to the regex.
    pub fn prefilter(&self, body: &[u8]) -> bool {
        self.literals.iter().any(|f| f.find(body).is_some())
    }

    /// Whether this rule applies to lines of `daemon`.
    pub fn applies_to(&self, daemon: &[u8]) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == daemon)
    }
}

/// The compiled rules of one MTA, in the order they are tried.
#[derive(Debug, Clone)]
pub struct RuleSet {
    mta: Mta,
    rules: Vec<Rule>,
    defs: BTreeMap<String, String>,
    classifiers: BTreeMap<String, Vec<EntrySpec>>,
}

impl RuleSet {
    /// The built-in rules for `mta`.
    pub fn builtin(mta: Mta) -> Result<Self, RulesError> {
        match mta {
            Mta::Postfix => RuleSet::from_yaml("rules/postfix.yaml (built in)", POSTFIX_RULES),
            Mta::Exim => RuleSet::from_yaml("rules/exim.yaml (built in)", EXIM_RULES),
        }
    }

    /// Compiles a rule file; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, RulesError> {
        let spec: FileSpec = serde_yaml_ng::from_str(text).map_err(|source| RulesError::Yaml {
            file: file.to_owned(),
            source,
        })?;
        let mut set = RuleSet {
            mta: spec.mta,
            rules: Vec::new(),
            defs: BTreeMap::new(),
            classifiers: BTreeMap::new(),
        };
        set.add(file, spec, false)?;
        Ok(set)
    }

    /// Adds an operator's rule file in front of these rules (its rules are tried first); it may
    /// use this set's placeholders and classifiers and define its own.
    pub fn extend_from_yaml(&mut self, file: &str, text: &str) -> Result<(), RulesError> {
        let spec: FileSpec = serde_yaml_ng::from_str(text).map_err(|source| RulesError::Yaml {
            file: file.to_owned(),
            source,
        })?;
        if spec.mta != self.mta {
            return Err(RulesError::WrongMta {
                file: file.to_owned(),
                found: spec.mta,
                expected: self.mta,
            });
        }
        self.add(file, spec, true)
    }

    fn add(&mut self, file: &str, spec: FileSpec, in_front: bool) -> Result<(), RulesError> {
        self.defs.extend(spec.defs);
        self.classifiers.extend(spec.classifiers);
        let mut compiled = Vec::with_capacity(spec.rules.len());
        for rule in spec.rules {
            compiled.push(self.compile(file, rule)?);
        }
        if in_front {
            compiled.append(&mut self.rules);
            self.rules = compiled;
        } else {
            self.rules.append(&mut compiled);
        }
        Ok(())
    }

    fn compile(&self, file: &str, mut spec: RuleSpec) -> Result<Rule, RulesError> {
        let problem = |problem: String| RulesError::Rule {
            file: file.to_owned(),
            rule: spec.name.clone(),
            problem,
        };
        let regex_of = |what: &str, pattern: &str| -> Result<Regex, RulesError> {
            let expanded = expand(pattern, &self.defs).map_err(&problem)?;
            // Bytes mode: log lines are not always UTF-8, and `.` must match any byte.
            RegexBuilder::new(&expanded)
                .unicode(false)
                .build()
                .map_err(|e| RulesError::Regex {
                    file: file.to_owned(),
                    rule: spec.name.clone(),
                    what: what.to_owned(),
                    source: Box::new(e),
                })
        };
        let literals = std::mem::replace(&mut spec.literal, Literals::Any(Vec::new())).into_vec();
        if literals.is_empty() || literals.iter().any(String::is_empty) {
            return Err(problem(
                "`literal` is empty; give text that every line the rule matches contains".into(),
            ));
        }
        let regex = regex_of("regex", &spec.regex)?;
        let lead = spec
            .lead
            .as_deref()
            .map(|l| regex_of("lead", l))
            .transpose()?;
        let tail = match &spec.tail {
            Some(t) => Some(Tail {
                marker: regex_of("tail marker", &t.marker)?,
                regex: regex_of("tail regex", &t.regex)?,
            }),
            None => None,
        };
        let mut sources: Vec<Vec<Source>> = vec![Vec::new(); Field::ALL.len()];
        let named = |re: &Regex| -> Result<Vec<(usize, Field, bool)>, RulesError> {
            let mut out = Vec::new();
            for (i, name) in re.capture_names().enumerate() {
                let Some(name) = name else { continue };
                let field = Field::from_group(name).ok_or_else(|| {
                    problem(format!(
                        "unknown group name {name:?}; known groups: {} (a `_2` suffix marks the same field elsewhere in the line)",
                        Field::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                out.push((i, field, name.ends_with("_2")));
            }
            // Primary names before their `_2` twins.
            out.sort_by_key(|&(_, _, twin)| twin);
            Ok(out)
        };
        for (i, field, _) in named(&regex)? {
            sources[field as usize].push(Source::Head(i));
        }
        let queue_sender = spec.class == Some(Verdict::QueueSender);
        if queue_sender
            && (sources[Field::Queue as usize].is_empty()
                || sources[Field::Sender as usize].is_empty())
        {
            return Err(problem(
                "a queue-sender rule must capture `queue` and `sender`".into(),
            ));
        }
        if !queue_sender
            && !sources[Field::Ip as usize]
                .iter()
                .any(|s| matches!(s, Source::Head(_)))
        {
            return Err(problem(
                "the regex has no (?P<ip>...) group; every rule must take the client address from the MTA's client field".into(),
            ));
        }
        if let Some(l) = &lead {
            for (i, field, _) in named(l)? {
                if field == Field::Ip {
                    return Err(problem(
                        "the lead may not capture `ip`; take it from the client field in `regex`"
                            .into(),
                    ));
                }
                sources[field as usize].push(Source::Lead(i));
            }
        }
        if let Some(t) = &tail {
            for (i, field, _) in named(&t.regex)? {
                if field == Field::Ip {
                    return Err(problem(
                        "the tail may not capture `ip`; take it from the client field in `regex`"
                            .into(),
                    ));
                }
                sources[field as usize].push(Source::Tail(i));
            }
        }
        if lead.is_some() || tail.is_some() {
            sources[Field::Reason as usize].push(Source::Between);
        }
        let mut classify = Classifier::default();
        // The patterns of each tested field, in order: (field, patterns).
        let mut by_field: Vec<(Field, Vec<String>)> = Vec::new();
        if let Some(name) = &spec.classify {
            let entries = self
                .classifiers
                .get(name)
                .ok_or_else(|| problem(format!("unknown classifier {name:?}")))?;
            for entry in entries {
                let mut tests = Vec::new();
                for (group, pattern) in &entry.when {
                    let field = Field::from_group(group)
                        .filter(|f| !sources[*f as usize].is_empty())
                        .ok_or_else(|| {
                            problem(format!(
                                "classifier {name:?} tests group {group:?}, which the rule does not capture"
                            ))
                        })?;
                    // Compiled alone first, so that a bad pattern is reported as itself.
                    let re = regex_of(&format!("classifier {name:?}"), pattern)?;
                    let set = match by_field.iter().position(|(f, _)| *f == field) {
                        Some(i) => i,
                        None => {
                            by_field.push((field, Vec::new()));
                            by_field.len() - 1
                        }
                    };
                    by_field[set].1.push(re.as_str().to_owned());
                    tests.push((set, by_field[set].1.len() - 1));
                }
                classify.conditions.push((entry.class, tests));
            }
            for (field, patterns) in by_field {
                let set = RegexSetBuilder::new(&patterns)
                    .unicode(false)
                    .build()
                    .map_err(|e| RulesError::Regex {
                        file: file.to_owned(),
                        rule: spec.name.clone(),
                        what: format!("classifier {name:?}"),
                        source: Box::new(e),
                    })?;
                classify.sets.push((field, set));
            }
        }
        let class = match (spec.class, spec.classify.is_some()) {
            (Some(class), _) => class,
            (None, true) => Verdict::Ignore,
            (None, false) => return Err(problem("give a `class` or a `classify`".into())),
        };
        let guard = match &spec.guard {
            Some(g) => {
                let pattern = regex_of("guard pattern", &g.pattern)?;
                if !pattern.capture_names().flatten().any(|n| n == "ip") {
                    return Err(problem("the guard pattern has no (?P<ip>...) group".into()));
                }
                Some(Guard {
                    pattern,
                    scope: g.scope,
                })
            }
            None => None,
        };
        Ok(Rule {
            literals: literals
                .iter()
                .map(|l| memmem::Finder::new(l.as_bytes()).into_owned())
                .collect(),
            services: spec
                .services
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            name: spec.name,
            regex,
            class,
            classify,
            guard,
            lead,
            tail,
            sources,
        })
    }

    /// The MTA a rule file names, read without compiling it (so that a file that uses the
    /// built-in placeholders can be routed to the set it extends).
    pub fn file_mta(file: &str, text: &str) -> Result<Mta, RulesError> {
        #[derive(Deserialize)]
        struct Head {
            mta: Mta,
        }
        serde_yaml_ng::from_str::<Head>(text)
            .map(|h| h.mta)
            .map_err(|source| RulesError::Yaml {
                file: file.to_owned(),
                source,
            })
    }

    /// The MTA these rules are for.
    pub fn mta(&self) -> Mta {
        self.mta
    }

    /// The rules in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// Replaces `%{NAME}` placeholders; placeholders may use earlier ones.
fn expand(pattern: &str, defs: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = pattern.to_owned();
    for _ in 0..8 {
        let Some(start) = out.find("%{") else {
            return Ok(out);
        };
        let end = out[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| format!("unclosed placeholder at {:?}", &out[start..]))?;
        let name = &out[start + 2..end];
        let value = defs
            .get(name)
            .ok_or_else(|| format!("unknown placeholder %{{{name}}}; define it under `defs`"))?;
        out = format!("{}{}{}", &out[..start], value, &out[end + 1..]);
    }
    if out.contains("%{") {
        Err("placeholders nest too deeply (or refer to themselves)".into())
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_compile() {
        assert!(!RuleSet::builtin(Mta::Postfix).unwrap().rules().is_empty());
        assert!(!RuleSet::builtin(Mta::Exim).unwrap().rules().is_empty());
    }

    #[test]
    fn a_broken_regex_names_file_rule_and_error() {
        let text = "mta: postfix\nrules:\n  - name: broken\n    literal: x\n    regex: '(?P<ip>['\n    class: relay-denied\n";
        let err = RuleSet::from_yaml("local.yaml", text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("local.yaml") && err.contains("\"broken\""),
            "{err}"
        );
        assert!(err.contains("does not compile"), "{err}");
    }

    #[test]
    fn a_rule_without_an_ip_group_is_refused() {
        let text = "mta: exim\nrules:\n  - name: noip\n    literal: x\n    regex: 'x'\n    class: relay-denied\n";
        let err = RuleSet::from_yaml("f.yaml", text).unwrap_err().to_string();
        assert!(err.contains("no (?P<ip>...) group"), "{err}");
    }

    #[test]
    fn unknown_keys_and_classes_report_line_and_column() {
        let text = "mta: exim\nrules:\n  - name: a\n    literal: x\n    regex: '(?P<ip>x)'\n    class: spammy\n";
        let err = RuleSet::from_yaml("f.yaml", text).unwrap_err().to_string();
        assert!(
            err.contains("unknown event class")
                && err.contains("rules[0]")
                && err.contains("line 3"),
            "{err}"
        );
        let text = "mta: exim\nrulez: []\n";
        let err = RuleSet::from_yaml("f.yaml", text).unwrap_err().to_string();
        assert!(
            err.contains("unknown field") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn placeholders_expand_and_unknown_ones_are_named() {
        let mut defs = BTreeMap::new();
        defs.insert("A".to_owned(), "a%{B}".to_owned());
        defs.insert("B".to_owned(), "b".to_owned());
        assert_eq!(expand("x%{A}y", &defs).unwrap(), "xaby");
        assert!(expand("%{C}", &defs).unwrap_err().contains("%{C}"));
    }

    #[test]
    fn an_extension_goes_in_front_and_must_be_for_the_same_mta() {
        let mut set = RuleSet::builtin(Mta::Postfix).unwrap();
        let n = set.rules().len();
        let extra = "mta: postfix\nrules:\n  - name: local-trap\n    services: [smtpd]\n    literal: 'trap'\n    regex: '^trap from %{CLIENT}$'\n    class: policy-rejected\n";
        set.extend_from_yaml("extra.yaml", extra).unwrap();
        assert_eq!(set.rules().len(), n + 1);
        assert_eq!(set.rules()[0].name, "local-trap");
        let wrong = "mta: exim\nrules: []\n";
        assert!(matches!(
            set.extend_from_yaml("x.yaml", wrong),
            Err(RulesError::WrongMta { .. })
        ));
    }
}
