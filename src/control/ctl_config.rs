//! What `tarpitctl` reads from the daemon's configuration file, and `check-config`.
//!
//! Owns only the two settings `tarpitctl` needs (`control.socket`, `state.path`) and a
//! structural check of a whole file as far as this crate has the sections' types. It never
//! starts anything and never writes the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::ControlConfig;

/// Where the daemon's configuration is when `--config` is not given (as for `tarpitd`).
pub const DEFAULT_CONFIG: &str = "/etc/tarpit/tarpit.yaml";

/// The state database when `state.path` is not set.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/tarpit/state.db";

/// The settings `tarpitctl` takes from the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlSettings {
    /// `control.socket`.
    pub socket: PathBuf,
    /// `state.path`.
    pub state_path: PathBuf,
    /// The file they came from; `None` when the default file is absent and the built-in
    /// defaults apply.
    pub source: Option<PathBuf>,
}

impl Default for CtlSettings {
    fn default() -> Self {
        CtlSettings {
            socket: ControlConfig::default().socket,
            state_path: PathBuf::from(DEFAULT_STATE_PATH),
            source: None,
        }
    }
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CtlConfigError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `check-config`: the daemon would refuse it.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// It is not valid YAML, or a section tarpitctl reads is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column when known.
        message: String,
    },
}

/// Only `state.path`; the state store's other settings are its own business (serde ignores
/// them here).
#[derive(Debug, Default, Deserialize)]
struct StateSection {
    path: Option<PathBuf>,
}

/// The sections tarpitctl reads; every other top-level key is ignored here.
#[derive(Debug, Default, Deserialize)]
struct CtlView {
    #[serde(default)]
    control: ControlConfig,
    #[serde(default)]
    state: StateSection,
}

/// Reads `control.socket` and `state.path` from `config`, or from [`DEFAULT_CONFIG`] when
/// `None`; a missing default file means the built-in defaults, a missing named file is an error.
pub fn load(config: Option<&Path>) -> Result<CtlSettings, CtlConfigError> {
    let (path, named) = match config {
        Some(p) => (p.to_owned(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CtlSettings::default())
        }
        Err(source) => return Err(CtlConfigError::Read { path, source }),
    };
    let view: CtlView = parse_yaml(&text, &path)?;
    Ok(CtlSettings {
        socket: view.control.socket,
        state_path: view
            .state
            .path
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_PATH)),
        source: Some(path),
    })
}

fn parse_yaml<T: for<'de> Deserialize<'de> + Default>(
    text: &str,
    path: &Path,
) -> Result<T, CtlConfigError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| CtlConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The outcome of `check-config` on a file that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The top-level sections the file sets; the others take their defaults.
    pub sections: Vec<String>,
    /// How many operator rule files (`rules:`) were compiled.
    pub rule_files: usize,
}

/// Checks a whole configuration file as `tarpitd` loads it: every section typed and
/// validated, and the operator rule files it names compiled. The first error names the line
/// and column (or the rule file and rule).
pub fn check_config(path: &Path) -> Result<CheckReport, CtlConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = crate::config::Config::parse(path, &text)?;
    super::replay::load_rules(&config.rules).map_err(|e| CtlConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let sections = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
        Ok(serde_yaml_ng::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(CheckReport {
        sections,
        rule_files: config.rules.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn socket_and_state_path_come_from_the_file_and_other_sections_are_ignored() {
        let f = file(
            "mode: enforce\npolicy: { threshold: 10 }\ncontrol: { socket: /tmp/t.sock, group: tarpit }\nstate: { path: /tmp/s.db, sync: full }\n",
        );
        let s = load(Some(f.path())).unwrap();
        assert_eq!(s.socket, PathBuf::from("/tmp/t.sock"));
        assert_eq!(s.state_path, PathBuf::from("/tmp/s.db"));
    }

    #[test]
    fn an_empty_file_or_missing_sections_give_the_defaults() {
        let s = load(Some(file("").path())).unwrap();
        assert_eq!(s.socket, ControlConfig::default().socket);
        let s = load(Some(file("mode: dry-run\n").path())).unwrap();
        assert_eq!(s.state_path, PathBuf::from(DEFAULT_STATE_PATH));
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/tarpit.yaml"))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tarpit.yaml"),
            "{err}"
        );
    }

    #[test]
    fn check_config_names_the_line_of_a_typo_in_any_section() {
        let f = file("mode: enforce\ncontrol:\n  sokcet: /tmp/x\n");
        let err = check_config(f.path()).unwrap_err().to_string();
        assert!(err.contains("unknown field `sokcet`"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let f = file("policy:\n  threshold: 10\n  allow: [\"1.2.3.400\"]\n");
        let err = check_config(f.path()).unwrap_err().to_string();
        assert!(err.contains("policy.allow"), "{err}");
        let err = check_config(file("polcy: {}\n").path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("polcy"), "{err}");
    }

    #[test]
    fn check_config_runs_every_sections_checks_and_compiles_the_rule_files() {
        let err = check_config(file("netfilter: { ports: [] }\n").path()).unwrap_err();
        assert!(
            err.to_string().contains("netfilter.ports is empty"),
            "{err}"
        );
        let err = check_config(file("mode: enforcing\n").path()).unwrap_err();
        assert!(err.to_string().contains("enforcing"), "{err}");
        let err = check_config(file("ban: { first: 2d, max: 1d }\n").path()).unwrap_err();
        assert!(err.to_string().contains("ban"), "{err}");
        let report =
            check_config(file("mode: dry-run\npolicy: { threshold: 12 }\n").path()).unwrap();
        assert_eq!(
            report.sections,
            vec!["mode".to_owned(), "policy".to_owned()]
        );

        let rules = file("mta: exim\nrules:\n  - name: mine\n    literal: x\n    regex: '(?P<ip>['\n    class: relay-denied\n");
        let config = file(&format!("rules: [{}]\n", rules.path().display()));
        let err = check_config(config.path()).unwrap_err().to_string();
        assert!(err.contains(&rules.path().display().to_string()), "{err}");
        let good = file("mta: exim\nrules: []\n");
        let config = file(&format!("rules: [{}]\n", good.path().display()));
        assert_eq!(check_config(config.path()).unwrap().rule_files, 1);
    }
}
