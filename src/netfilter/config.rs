//! The netfilter section of the configuration: which table, which diversion, which ports.
//!
//! Owns only the typed settings and their checks; it never touches the kernel.

use serde::Deserialize;

use super::error::NetfilterError;

/// How listed hosts' SMTP connections are diverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Redirect them (nat `redirect`) to the userspace stall listener on `stall_port`.
    /// Works on any kernel with nf_tables nat.
    #[default]
    Stall,
    /// Hand their packets to the kernel's `TARPIT` target (xtables-addons' `xt_TARPIT`).
    Tarpit,
}

/// The `netfilter:` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetfilterConfig {
    /// Name of the table tarpit owns (`inet <table>`; in tarpit mode `ip <table>` and
    /// `ip6 <table>`). Default `tarpit`.
    pub table: String,
    /// `stall` (default) or `tarpit`.
    pub action: Action,
    /// Destination TCP ports whose connections from listed hosts are diverted. Default `[25]`.
    pub ports: Vec<u16>,
    /// The local port of the stall listener (stall mode). Default 2525.
    pub stall_port: u16,
}

impl Default for NetfilterConfig {
    fn default() -> Self {
        Self {
            table: "tarpit".to_owned(),
            action: Action::Stall,
            ports: vec![25],
            stall_port: 2525,
        }
    }
}

/// nf_tables refuses names of 256 bytes or more (`NFT_NAME_MAXLEN` includes the NUL).
const MAX_TABLE_NAME: usize = 255;

impl NetfilterConfig {
    /// Checks the settings; the error names the setting and what to change.
    pub fn validate(&self) -> Result<(), NetfilterError> {
        let bad = |msg: String| Err(NetfilterError::Config(msg));
        if self.table.is_empty() || self.table.len() > MAX_TABLE_NAME {
            return bad(format!(
                "netfilter.table must be 1 to {MAX_TABLE_NAME} bytes long, got {:?}",
                self.table
            ));
        }
        if !self
            .table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return bad(format!(
                "netfilter.table {:?} may hold only letters, digits, '_', '-' and '.'",
                self.table
            ));
        }
        if self.ports.is_empty() {
            return bad("netfilter.ports is empty: list at least one port, e.g. [25]".to_owned());
        }
        if self.ports.contains(&0) {
            return bad("netfilter.ports contains 0, which is not a TCP port".to_owned());
        }
        if self.action == Action::Stall {
            if self.stall_port == 0 {
                return bad("netfilter.stall_port is 0, which is not a TCP port".to_owned());
            }
            if self.ports.contains(&self.stall_port) {
                return bad(format!(
                    "netfilter.stall_port {} is also in netfilter.ports: the stall listener \
                     needs a port of its own",
                    self.stall_port
                ));
            }
        }
        Ok(())
    }

    /// The ports, sorted and without duplicates.
    pub(crate) fn unique_ports(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<NetfilterConfig, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let c = parse("ports: [25, 587]").unwrap();
        assert_eq!(c.table, "tarpit");
        assert_eq!(c.action, Action::Stall);
        assert_eq!(c.ports, vec![25, 587]);
        assert_eq!(c.stall_port, 2525);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_actions_are_refused() {
        assert!(parse("tabel: x").unwrap_err().to_string().contains("tabel"));
        assert!(parse("action: drop").is_err());
        assert_eq!(parse("action: tarpit").unwrap().action, Action::Tarpit);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let with = |f: fn(&mut NetfilterConfig)| {
            let mut c = NetfilterConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(|c| c.ports.clear()).contains("netfilter.ports"));
        assert!(with(|c| c.stall_port = 25).contains("stall_port"));
        assert!(with(|c| c.table = "a b".into()).contains("netfilter.table"));
        assert!(with(|c| c.table = String::new()).contains("netfilter.table"));
        assert!(with(|c| c.ports.push(0)).contains("0"));
    }
}
