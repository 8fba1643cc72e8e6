//! The `state:` section of the configuration: where the state database lives.
//!
//! It owns only the settings; opening the store is [`super::sqlite::SqliteStore`]'s job.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the embedded state database lives when the configuration does not say.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/tarpit/state.db";

/// `state: { path: /var/lib/tarpit/state.db }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite database file; its folder must exist and be writable by `tarpitd` (SQLite
    /// keeps its `-wal` and `-shm` files beside it).
    #[serde(default = "default_path")]
    pub path: PathBuf,
}

fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_PATH)
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_path(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_takes_the_default_path() {
        let config: StateConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(config.path, PathBuf::from("/var/lib/tarpit/state.db"));
        assert_eq!(config, StateConfig::default());
    }

    #[test]
    fn path_is_read() {
        let config: StateConfig = serde_yaml_ng::from_str("path: /srv/tarpit/s.db").unwrap();
        assert_eq!(config.path, PathBuf::from("/srv/tarpit/s.db"));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = serde_yaml_ng::from_str::<StateConfig>("path: /x.db\npaht: /y.db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("paht"), "{err}");
    }
}
