//! The `sources:` section of the configuration: which logs to follow.
//!
//! ```yaml
//! sources:
//!   - file: /var/log/mail.log      # mta: auto | postfix | exim (default auto)
//!     mta: auto
//!   - journald: { units: ["postfix@-.service"] }
//! ```
//! Unknown keys are errors. This module only describes sources; it never opens one.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::parse::MtaChoice;

/// Debian's (and Ubuntu's) mail log, the source when the configuration names none.
pub const DEFAULT_MAIL_LOG: &str = "/var/log/mail.log";

/// One log source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// A log file, followed through rotations.
    File {
        /// The log's path.
        path: PathBuf,
        /// Which MTA's lines to look for in it.
        mta: MtaChoice,
    },
    /// The systemd journal.
    Journald {
        /// Which part of the journal.
        journald: JournaldConfig,
        /// Which MTA's lines to look for in it.
        mta: MtaChoice,
    },
}

/// Which entries of the systemd journal to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// Only entries of these systemd units (`journalctl -u`); all entries when empty.
    #[serde(default)]
    pub units: Vec<String>,
    /// Read the journal files in this directory (`journalctl -D`) instead of the system
    /// journal: journals shipped from elsewhere, and tests.
    #[serde(default)]
    pub directory: Option<PathBuf>,
}

impl SourceConfig {
    /// Which MTA's lines the source holds.
    pub fn mta(&self) -> MtaChoice {
        match self {
            SourceConfig::File { mta, .. } | SourceConfig::Journald { mta, .. } => *mta,
        }
    }

    /// A stable name for the source, e.g. `file:/var/log/mail.log`: the key under which its
    /// read position is saved.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceConfig::File { path, .. } => write!(f, "file:{}", path.display()),
            SourceConfig::Journald { journald, .. } => {
                write!(f, "journald:{}", journald.units.join(","))?;
                if let Some(dir) = &journald.directory {
                    write!(f, "@{}", dir.display())?;
                }
                Ok(())
            }
        }
    }
}

/// The MTAs' systemd units, for a system that logs to the journal only.
pub const DEFAULT_UNITS: [&str; 3] = ["postfix@-.service", "postfix.service", "exim4.service"];

/// The sources used when the configuration names none: the system's mail log, either MTA.
/// That is `/var/log/mail.log` where a syslog daemon writes one; a Debian 12 or later without
/// rsyslog keeps mail logs in the journal only, and there the MTAs' units are read from it.
pub fn default_sources() -> Vec<SourceConfig> {
    let journal_only = !std::path::Path::new(DEFAULT_MAIL_LOG).exists()
        && ["/usr/bin/journalctl", "/bin/journalctl"]
            .iter()
            .any(|p| std::path::Path::new(p).exists())
        && std::path::Path::new("/run/systemd/journal").exists();
    if journal_only {
        return vec![SourceConfig::Journald {
            journald: JournaldConfig {
                units: DEFAULT_UNITS.iter().map(|u| (*u).to_owned()).collect(),
                directory: None,
            },
            mta: MtaChoice::Auto,
        }];
    }
    vec![SourceConfig::File {
        path: PathBuf::from(DEFAULT_MAIL_LOG),
        mta: MtaChoice::Auto,
    }]
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SourceVisitor)
    }
}

/// Checks the entry while still inside it, so the YAML reader can say where a bad one is.
struct SourceVisitor;

impl<'de> serde::de::Visitor<'de> for SourceVisitor {
    type Value = SourceConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a source: `file: PATH` or `journald: { units: [...] }`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<SourceConfig, A::Error> {
        let raw = RawSource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        SourceConfig::try_from(raw).map_err(serde::de::Error::custom)
    }
}

/// A source as written: exactly one of `file` and `journald`, and maybe `mta`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    file: Option<PathBuf>,
    journald: Option<JournaldConfig>,
    #[serde(default)]
    mta: MtaName,
}

/// The spellings of [`MtaChoice`] in the configuration.
#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum MtaName {
    #[default]
    Auto,
    Postfix,
    Exim,
}

/// A source entry that names no source or two.
#[derive(Debug, thiserror::Error)]
pub enum SourceConfigError {
    /// Neither `file` nor `journald`.
    #[error("a source needs `file: PATH` or `journald: {{ units: [...] }}`")]
    Missing,
    /// Both.
    #[error("a source is either `file` or `journald`, not both: write two entries")]
    Both,
    /// An empty path.
    #[error("`file:` needs a path, e.g. /var/log/mail.log")]
    EmptyPath,
}

impl TryFrom<RawSource> for SourceConfig {
    type Error = SourceConfigError;

    fn try_from(raw: RawSource) -> Result<Self, Self::Error> {
        let mta = match raw.mta {
            MtaName::Auto => MtaChoice::Auto,
            MtaName::Postfix => MtaChoice::Postfix,
            MtaName::Exim => MtaChoice::Exim,
        };
        match (raw.file, raw.journald) {
            (Some(path), None) if path.as_os_str().is_empty() => Err(SourceConfigError::EmptyPath),
            (Some(path), None) => Ok(SourceConfig::File { path, mta }),
            (None, Some(journald)) => Ok(SourceConfig::Journald { journald, mta }),
            (Some(_), Some(_)) => Err(SourceConfigError::Both),
            (None, None) => Err(SourceConfigError::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<SourceConfig>, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn the_issue_example_parses() {
        let got = parse(
            "- file: /var/log/mail.log\n  mta: auto\n\
             - file: /var/log/exim4/mainlog\n  mta: exim\n\
             - journald: { units: [\"postfix@-.service\"] }\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                SourceConfig::File {
                    path: "/var/log/mail.log".into(),
                    mta: MtaChoice::Auto
                },
                SourceConfig::File {
                    path: "/var/log/exim4/mainlog".into(),
                    mta: MtaChoice::Exim
                },
                SourceConfig::Journald {
                    journald: JournaldConfig {
                        units: vec!["postfix@-.service".into()],
                        directory: None
                    },
                    mta: MtaChoice::Auto
                },
            ]
        );
        assert_eq!(got[2].key(), "journald:postfix@-.service");
        let default = default_sources()[0].key();
        assert!(
            default == "file:/var/log/mail.log"
                || default.starts_with("journald:postfix@-.service"),
            "{default}"
        );
    }

    #[test]
    fn mistakes_are_errors_with_a_location() {
        for (yaml, says) in [
            (
                "- file: /var/log/mail.log\n  mat: postfix\n",
                "unknown field `mat`",
            ),
            (
                "- file: /var/log/mail.log\n  mta: sendmail\n",
                "unknown variant `sendmail`",
            ),
            ("- journald: { unit: [postfix] }\n", "unknown field `unit`"),
            ("- mta: postfix\n", "needs `file: PATH`"),
            ("- file: /a\n  journald: {}\n", "not both"),
        ] {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.contains(says), "{yaml:?}: {err}");
            assert!(err.contains("line "), "{yaml:?}: {err}");
        }
    }
}
