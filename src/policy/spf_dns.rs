//! The real [`SpfResolver`]: DNS queries with `hickory-resolver`, to the system's resolvers or to
//! one configured name server (so tests can run a DNS server on loopback).
//!
//! Owns only the translation from hickory's answers and errors to the SPF walk's. Its methods
//! block: the daemon calls [`super::spf::SpfAllow::refresh`] from a blocking task (e.g. tokio's
//! `spawn_blocking`), never on an async worker thread.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::spf::{DnsError, SpfResolver};

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ResolverSetupError {
    /// The system's resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("cannot read the system's DNS configuration (/etc/resolv.conf): {0}; set policy.spf_nameserver")]
    System(String),
    /// The runtime for the queries could not be started.
    #[error("cannot start the DNS runtime: {0}")]
    Runtime(std::io::Error),
    /// The resolver could not be built.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// Blocking SPF queries over DNS.
pub struct DnsResolver {
    resolver: TokioResolver,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsResolver")
    }
}

impl DnsResolver {
    /// Queries `nameserver` (UDP, TCP for long answers) when given, else the system's resolvers.
    pub fn new(nameserver: Option<SocketAddr>) -> Result<Self, ResolverSetupError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ResolverSetupError::Runtime)?;
        let provider = TokioRuntimeProvider::default();
        let mut builder = match nameserver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                server.connections = vec![udp, tcp];
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| ResolverSetupError::System(e.to_string()))?,
        };
        // No cache: the daemon asks every few hours and wants the zone's answer then, and a
        // failing server must be seen as failing (the walk then keeps its last good answer).
        builder.options_mut().cache_size = 0;
        builder.options_mut().timeout = std::time::Duration::from_secs(3);
        builder.options_mut().attempts = 2;
        let resolver = {
            // Building spawns nothing, but hickory may look for a runtime handle: enter ours.
            let _guard = runtime.enter();
            builder
                .build()
                .map_err(|e| ResolverSetupError::Build(e.to_string()))?
        };
        Ok(DnsResolver { resolver, runtime })
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn failure(e: NetError) -> DnsError {
    if e.is_no_records_found() || e.is_nx_domain() {
        DnsError::NotFound
    } else {
        DnsError::Failed(e.to_string())
    }
}

impl SpfResolver for DnsResolver {
    fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let lookup = self
            .runtime
            .block_on(self.resolver.txt_lookup(fqdn(name)))
            .map_err(failure)?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                // RFC 7208 section 3.3: a record's strings are joined without spaces.
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let lookup = self
            .runtime
            .block_on(self.resolver.lookup_ip(fqdn(name)))
            .map_err(failure)?;
        Ok(lookup.iter().collect())
    }

    fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let lookup = self
            .runtime
            .block_on(self.resolver.mx_lookup(fqdn(name)))
            .map_err(failure)?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some(mx.exchange.to_ascii().trim_end_matches('.').to_owned()),
                _ => None,
            })
            .collect())
    }
}
