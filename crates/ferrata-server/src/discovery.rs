//! The TC in the registries of `[registry]`: registered once it serves, renewed while it runs,
//! removed when it shuts down gracefully (a crash leaves the entry to expire).

use std::net::SocketAddr;

use anyhow::Context;
use ferrata_registry::{Instance, Registrar, RegistryConfig};

use crate::Config;

/// The address registered for a server bound to `bound`: `registry.address`, else the host
/// written into XIDs and the bound port (what clients must reach, and what the XIDs name).
pub fn registered_address(config: &Config, bound: SocketAddr) -> String {
    match &config.registry.address {
        Some(address) => address.clone(),
        None => {
            let host = config.xid_host(bound);
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{}", bound.port())
            } else {
                format!("{host}:{}", bound.port())
            }
        }
    }
}

/// Starts registering (in the background) when registries are configured.
pub fn start(config: &Config, bound: SocketAddr) -> anyhow::Result<Option<Registrar>> {
    if !config.registry.is_enabled() {
        return Ok(None);
    }
    let registries = config
        .registry
        .registries()
        .iter()
        .map(RegistryConfig::connect)
        .collect::<Result<Vec<_>, _>>()
        .context("cannot set up the registries of [registry]")?;
    let instance = Instance::new(&config.registry.cluster, registered_address(config, bound))
        .context("[registry]")?;
    let kinds: Vec<&str> = registries.iter().map(|r| r.kind()).collect();
    tracing::info!(registries = ?kinds, %instance, "registering");
    let loopback = instance
        .host()
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if loopback && bound.ip().is_unspecified() && config.registry.address.is_none() {
        tracing::warn!(
            %instance,
            "registering a loopback address although listening on every interface: clients on \
             other hosts cannot reach it; set server.advertise_host or registry.address"
        );
    }
    Ok(Some(Registrar::start(registries, instance)))
}

/// Removes the entries (each registry within `registry.deregister_timeout`).
pub async fn stop(registrar: Option<Registrar>, config: &Config) {
    if let Some(registrar) = registrar {
        registrar.stop(config.registry.deregister_timeout).await;
    }
}
