//! The daemon's configuration (`/etc/tarpit/tarpit.yaml`): every section typed, loaded once.
//!
//! Each stage owns its section's type (`netfilter::NetfilterConfig`, `stall::StallConfig`, ...);
//! this module only puts them together and reads the file. A file with only some sections is
//! valid: the rest take their defaults. Unknown keys and bad values are errors with the file's
//! name, line and column. Once loaded, a config cannot be invalid.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::control::config::ControlConfig;
use crate::metrics::MetricsConfig;
use crate::netfilter::NetfilterConfig;
use crate::policy::config::{BanConfig, Mode, PolicyConfig, PolicySection};
use crate::source::config::{default_sources, SourceConfig};
use crate::stall::StallConfig;
use crate::state::config::StateConfig;

/// Where the daemon looks for its configuration when not told.
pub const DEFAULT_PATH: &str = "/etc/tarpit/tarpit.yaml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `enforce` or `dry-run` (decide and record, enforce nothing).
    pub mode: Mode,
    /// The logs to follow.
    pub sources: Vec<SourceConfig>,
    /// Where state is kept.
    pub state: StateConfig,
    /// The control socket.
    pub control: ControlConfig,
    /// The nftables table and what it does with listed hosts.
    pub netfilter: NetfilterConfig,
    /// The stall listener.
    pub stall: StallConfig,
    /// Who gets listed.
    pub policy: PolicyConfig,
    /// For how long.
    pub ban: BanConfig,
    /// Operator rule files, tried before the built-in rules (each names its MTA).
    pub rules: Vec<PathBuf>,
    /// The Prometheus endpoint (off unless it names an address).
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::default(),
            sources: default_sources(),
            state: StateConfig::default(),
            control: ControlConfig::default(),
            netfilter: NetfilterConfig::default(),
            stall: StallConfig::default(),
            policy: PolicyConfig::default(),
            ban: BanConfig::default(),
            rules: Vec::new(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed YAML, an unknown key or a bad value (with line and column).
    #[error("config {path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What was wrong and where.
        source: serde_yaml_ng::Error,
    },
    /// A value that parses but cannot work.
    #[error("config {path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// A loaded configuration and the file it came from (none: built-in defaults).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Reads `path`; without one, [`DEFAULT_PATH`] when it exists, else the built-in defaults.
    /// A file named explicitly must exist.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => {
                return Ok(Loaded {
                    config: Config::default(),
                    path: None,
                })
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config = Config::parse(&path, &text)?;
        Ok(Loaded {
            config,
            path: Some(path),
        })
    }

    /// Parses and checks a configuration's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
                path: path.to_owned(),
                source,
            })?
        };
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            problem,
        };
        config
            .netfilter
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        config.stall.check().map_err(|e| invalid(e.to_string()))?;
        config.check_stall_port().map_err(invalid)?;
        crate::policy::config::check_values(&config.policy, &config.ban)
            .map_err(|bad| invalid(bad.to_string()))?;
        Ok(config)
    }

    /// In stall mode the redirect sends listed hosts to `netfilter.stall_port`, so the stall
    /// listener must listen there: otherwise they would be refused at once, not held.
    fn check_stall_port(&self) -> Result<(), String> {
        if self.netfilter.action != crate::netfilter::Action::Stall {
            return Ok(());
        }
        let addrs = self.stall.listen_addrs().map_err(|e| e.to_string())?;
        let port = self.netfilter.stall_port;
        if addrs.iter().any(|a| a.port() == port) {
            return Ok(());
        }
        Err(format!(
            "netfilter.stall_port is {port} but stall.listen ({}) has no address on that port: \
             diverted connections would be refused instead of held",
            self.stall.listen.join(", ")
        ))
    }

    /// The policy engine's part.
    pub fn policy_section(&self) -> PolicySection {
        PolicySection {
            mode: self.mode,
            policy: self.policy.clone(),
            ban: self.ban.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_listener_must_listen_on_the_port_the_redirect_uses() {
        let err = Config::parse(Path::new("p.yaml"), "stall: { listen: [\"[::]:2600\"] }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("netfilter.stall_port is 2525") && err.contains("[::]:2600"),
            "{err}"
        );
        let ok = "stall: { listen: [\"[::]:2600\"] }\nnetfilter: { stall_port: 2600 }\n";
        assert!(Config::parse(Path::new("p.yaml"), ok).is_ok());
        let tarpit = "stall: { listen: [\"[::]:2600\"] }\nnetfilter: { action: tarpit }\n";
        assert!(Config::parse(Path::new("p.yaml"), tarpit).is_ok());
    }

    #[test]
    fn the_policy_and_ban_values_are_checked_too() {
        for (text, key) in [
            ("policy: { threshold: 0 }\n", "policy.threshold"),
            ("policy: { ipv6_prefix: 0 }\n", "policy.ipv6_prefix"),
            ("ban: { first: 2d, max: 1d }\n", "ban.max"),
            ("ban: { factor: 0.5 }\n", "ban.factor"),
        ] {
            let err = Config::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("config c.yaml: ") && err.contains(key),
                "{err}"
            );
        }
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = Config::parse(Path::new("t.yaml"), "").unwrap();
        assert_eq!(c.sources, default_sources());
        assert_eq!(c.mode, Mode::Enforce);
    }

    #[test]
    fn the_documented_example_loads() {
        let text = r#"
mode: dry-run
sources:
  - file: /var/log/mail.log
    mta: auto
  - journald: { units: ["postfix@-.service"] }
state:   { path: /var/lib/tarpit/state.db }
control: { socket: /run/tarpit/control.sock, group: adm }
netfilter: { table: tarpit, action: stall, ports: [25] }
stall:
  listen: ["[::]:2525"]
  interval: 10s
  message: "example.org tarpits this host for sending unwanted mail; write to postmaster from another MTA"
  max_connections: 20000
  max_per_ip: 32
policy:
  window: 1h
  threshold: 10
  weights: { unknown-recipient: 2, relay-denied: 3, rbl-listed: 5 }
  backscatter_weight: 5
  protected: ["*-owner@example.org", "*-request@example.org"]
  protected_weight: 10
  traps: ["trap@example.org"]
  repeat_after_hardfail: 3
  allow: ["10.0.0.0/8", "192.168.0.0/16"]
  allow_spf: ["example.org"]
  allow_delivered_for: 30d
  ipv6_prefix: 64
ban: { first: 1h, factor: 4, max: 28d, forget_after: 90d }
metrics: { listen: "127.0.0.1:9465" }
"#;
        let c = Config::parse(Path::new("t.yaml"), text).unwrap();
        assert_eq!(c.mode, Mode::DryRun);
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.policy.threshold, 10);
        assert_eq!(
            c.metrics.listen.map(|l| l.to_string()).as_deref(),
            Some("127.0.0.1:9465")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_column() {
        let err = Config::parse(
            Path::new("/etc/tarpit/t.yaml"),
            "mode: enforce\npolicy:\n  treshold: 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/tarpit/t.yaml")
                && err.contains("treshold")
                && err.contains("line 3"),
            "{err}"
        );
        let err = Config::parse(Path::new("t.yaml"), "ban: { first: soon }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml") && err.contains("line 1"), "{err}");
        let err = Config::parse(Path::new("t.yaml"), "frobnicate: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn the_sample_configurations_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let loaded = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.config.policy.traps.is_empty(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 2);
    }

    #[test]
    fn a_named_file_must_exist() {
        let err = Config::load(Some(Path::new("/nonexistent/tarpit.yaml"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read config /nonexistent/tarpit.yaml"),
            "{err}"
        );
    }
}
