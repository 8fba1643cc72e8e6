//! The `control:` section of the daemon's configuration: where the socket is, who may use it.
//!
//! Owns only the typed settings; it never opens the socket (that is [`super::server`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/tarpit/control.sock";

/// The default group whose members may use the socket besides root.
pub const DEFAULT_GROUP: &str = "adm";

/// The `control:` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// The Unix socket the daemon listens on. Default `/run/tarpit/control.sock`.
    pub socket: PathBuf,
    /// The group (by name) whose members may use the socket besides root. Default `adm`.
    pub group: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            group: DEFAULT_GROUP.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_the_defaults_and_unknown_keys_are_refused() {
        let c: ControlConfig = serde_yaml_ng::from_str("group: tarpit").unwrap();
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.group, "tarpit");
        let err = serde_yaml_ng::from_str::<ControlConfig>("sokcet: /tmp/x").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
