//! The `metrics:` section of the configuration: where the Prometheus endpoint listens, if anywhere.
//!
//! Owns only the typed setting; it never opens a socket (that is [`super::server`]). The endpoint
//! is off unless `listen` names an address, because a daemon on a mail server should open no
//! port its operator did not ask for.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `metrics: { listen: "127.0.0.1:9465" }`; absent or `listen: null` means no endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The TCP address `GET /metrics` is served on. Default: none (the endpoint is off).
    pub listen: Option<ListenAddr>,
}

/// An IP address and a fixed, non-zero port (a scraper must know where to find the endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(SocketAddr);

impl ListenAddr {
    /// The socket address.
    pub fn get(self) -> SocketAddr {
        self.0
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addr: SocketAddr = s.parse().map_err(|_| {
            format!(
                "metrics.listen {s:?} is not an address and port: write e.g. \"127.0.0.1:9465\" or \"[::1]:9465\""
            )
        })?;
        if addr.port() == 0 {
            return Err(format!(
                "metrics.listen {s:?} has port 0: pick a fixed port, e.g. 9465, so that Prometheus can find it"
            ));
        }
        Ok(ListenAddr(addr))
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_null_listen_is_off() {
        let c: MetricsConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c.listen, None);
        let c: MetricsConfig = serde_yaml_ng::from_str("listen: null").unwrap();
        assert_eq!(c, MetricsConfig::default());
    }

    #[test]
    fn an_address_with_a_port_is_read() {
        let c: MetricsConfig = serde_yaml_ng::from_str("listen: \"[::1]:9465\"").unwrap();
        let addr = c.listen.unwrap().get();
        assert_eq!(addr, "[::1]:9465".parse::<SocketAddr>().unwrap());
        let c: MetricsConfig = serde_yaml_ng::from_str("listen: 127.0.0.1:9100").unwrap();
        assert_eq!(c.listen.unwrap().to_string(), "127.0.0.1:9100");
    }

    #[test]
    fn bad_addresses_port_zero_and_unknown_keys_are_refused_with_their_line() {
        let err = serde_yaml_ng::from_str::<MetricsConfig>("\nlisten: localhost:9465")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not an address and port") && err.contains("line 2"),
            "{err}"
        );
        let err = serde_yaml_ng::from_str::<MetricsConfig>("listen: 127.0.0.1:0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("port 0"), "{err}");
        let err = serde_yaml_ng::from_str::<MetricsConfig>("lisen: 127.0.0.1:9465")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
