//! The `stall:` section of the configuration: what the operator may set, its defaults, and the
//! checks that make a loaded [`StallConfig`] safe to run.
//!
//! Owns parsing and checking only; it never opens a socket. [`load_stall_section`] reads just the
//! `stall:` key of a YAML file (for `tarpitd --stall-only`); the daemon's full config loader can embed
//! [`StallConfig`] as a field and call [`StallConfig::check`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// The shortest trickle interval accepted: below this the listener would spend its time writing.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest trickle interval accepted. A default Postfix gives up when no byte arrives for
/// `smtp_helo_timeout` (300 s), so an interval of 300 s or more lets every Postfix go.
pub const MAX_INTERVAL: Duration = Duration::from_secs(299);

/// The longest operator message, in bytes. It is repeated forever, so a long one only delays the
/// moment a human reading a transcript sees all of it.
pub const MAX_MESSAGE_LEN: usize = 400;

/// How a held connection is kept waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Never finish the greeting: an endless multi-line `220-` reply, one byte per interval.
    #[default]
    Greeting,
    /// Send a complete `220 ` greeting at once, then answer the client's first command with an
    /// endless `451-` continuation, one byte per interval. For clients that time a greeting out
    /// early but wait longer for replies.
    Reply,
}

/// The `stall:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StallConfig {
    /// Addresses to listen on. `[::]:2525` takes IPv4 and IPv6 unless an IPv4 address is listed too.
    pub listen: Vec<String>,
    /// Time between two bytes sent to a held client.
    pub interval: HumanDuration,
    /// The operator's message carried by the never-ending reply, e.g.
    /// `example.org tarpits this host for sending unwanted mail; see https://example.org/tarpit`.
    pub message: String,
    /// Most connections held at once; lowered at start to what the open-file limit allows.
    pub max_connections: usize,
    /// Most connections held at once from one client address.
    pub max_per_ip: usize,
    /// How a connection is kept waiting.
    pub strategy: Strategy,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            listen: vec!["[::]:2525".to_owned()],
            interval: HumanDuration(Duration::from_secs(10)),
            message: "this host is tarpitted for sending unwanted mail".to_owned(),
            max_connections: 20_000,
            max_per_ip: 32,
            strategy: Strategy::Greeting,
        }
    }
}

/// A `stall:` section that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or a value has the wrong type or an unknown key.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (0 when the parser did not say).
        line: usize,
        /// 1-based column of the error (0 when the parser did not say).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value parsed but is out of range.
    #[error("stall.{field}: {message}")]
    Value {
        /// The key under `stall:`.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl StallConfig {
    /// Checks the values that parsing alone cannot: listen addresses, interval range, message
    /// characters, non-zero bounds.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.listen_addrs()?;
        let interval = self.interval.get();
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(ConfigError::Value {
                field: "interval",
                message: format!(
                    "{} is out of range; use 10ms to 299s (a default Postfix gives up after 300 s without a byte; 10s is the default)",
                    self.interval
                ),
            });
        }
        if self.message.trim().is_empty() {
            return Err(value(
                "message",
                "is empty; say who tarpits this host and why",
            ));
        }
        if self.message.len() > MAX_MESSAGE_LEN {
            return Err(value(
                "message",
                &format!(
                    "is {} bytes long; keep it under {MAX_MESSAGE_LEN}",
                    self.message.len()
                ),
            ));
        }
        if let Some(bad) = self.message.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(value(
                "message",
                &format!("contains {bad:?}; only printable ASCII can go into an SMTP reply"),
            ));
        }
        if self.max_connections == 0 {
            return Err(value("max_connections", "must be at least 1"));
        }
        if self.max_per_ip == 0 {
            return Err(value("max_per_ip", "must be at least 1"));
        }
        Ok(())
    }

    /// The listen addresses, parsed.
    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Err(value(
                "listen",
                "is empty; give at least one address, e.g. \"[::]:2525\"",
            ));
        }
        self.listen
            .iter()
            .map(|text| {
                text.trim().parse::<SocketAddr>().map_err(|e| {
                    value(
                        "listen",
                        &format!(
                            "{text:?} is not an address with a port ({e}); write e.g. \"[::]:2525\" or \"0.0.0.0:2525\""
                        ),
                    )
                })
            })
            .collect()
    }
}

fn value(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Value {
        field,
        message: message.to_owned(),
    }
}

/// The whole file as seen by `--stall-only`: every other top-level key is ignored.
#[derive(Deserialize)]
struct StallOnlyFile {
    #[serde(default)]
    stall: StallConfig,
}

/// Reads only the `stall:` section of a YAML config file and checks it. A file without a `stall:`
/// key yields the defaults; other top-level keys are ignored; an error in `stall:` names the line
/// and column.
pub fn load_stall_section(path: &Path) -> Result<StallConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse_stall_section(&text, path)?;
    config.check()?;
    Ok(config)
}

fn parse_stall_section(text: &str, path: &Path) -> Result<StallConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(StallConfig::default());
    }
    let file: Option<StallOnlyFile> = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    Ok(file.map(|f| f.stall).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StallConfig, ConfigError> {
        let config = parse_stall_section(text, Path::new("test.yaml"))?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn missing_section_gives_the_defaults() {
        let config = parse("state_dir: /var/lib/tarpit\n").unwrap();
        assert_eq!(config, StallConfig::default());
        assert_eq!(config.listen, vec!["[::]:2525"]);
        assert_eq!(config.interval.get(), Duration::from_secs(10));
        assert_eq!(config.max_connections, 20_000);
        assert_eq!(config.max_per_ip, 32);
        assert_eq!(config.strategy, Strategy::Greeting);
    }

    #[test]
    fn reads_every_key_and_ignores_other_sections() {
        let config = parse(
            "policy: {anything: [1, 2]}\nstall:\n  listen: [\"127.0.0.1:2526\"]\n  interval: 3s\n  message: example.org tarpits you\n  max_connections: 100\n  max_per_ip: 2\n  strategy: reply\n",
        )
        .unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:2526"]);
        assert_eq!(config.interval.get(), Duration::from_secs(3));
        assert_eq!(config.message, "example.org tarpits you");
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.max_per_ip, 2);
        assert_eq!(config.strategy, Strategy::Reply);
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_column() {
        let err = parse("stall:\n  interval: 10s\n  max_conections: 5\n").unwrap_err();
        match err {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!(line, 3, "{message}");
                assert!(column > 0);
                assert!(message.contains("max_conections"), "{message}");
            }
            other => panic!("expected a syntax error, got {other}"),
        }
    }

    #[test]
    fn bad_duration_is_an_error_with_line() {
        let err = parse("stall:\n  interval: soon\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (text, field) in [
            ("stall: {interval: 300s}", "interval"),
            ("stall: {interval: 1ms}", "interval"),
            ("stall: {listen: []}", "listen"),
            ("stall: {listen: [\"localhost\"]}", "listen"),
            ("stall: {message: \"\"}", "message"),
            ("stall: {message: \"caf\u{e9}\"}", "message"),
            ("stall: {max_connections: 0}", "max_connections"),
            ("stall: {max_per_ip: 0}", "max_per_ip"),
        ] {
            match parse(text) {
                Err(ConfigError::Value { field: got, .. }) => assert_eq!(got, field, "{text}"),
                other => panic!("{text}: expected a value error, got {other:?}"),
            }
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").unwrap(), StallConfig::default());
    }
}
