//! `ferrata-registry`: a TC's registration in, and clients' discovery of TCs through, the
//! registries Seata's Java client reads — in the key layout that client expects.
//!
//! A Seata client maps its transaction-service group to a cluster name
//! (`service.vgroupMapping.<group> = <cluster>`) and asks its registry for the addresses of that
//! cluster. A TC registers its address under its cluster name, keeps the entry alive while it
//! runs, and removes it when it stops; an entry of a TC that died expires on its own.
//!
//! | backend (feature) | Seata `registry.type` | entry |
//! |---|---|---|
//! | [`etcd`] (`etcd`) | `etcd3` | key `registry-seata-<cluster>-<ip>:<port>`, value `<ip>:<port>`, on a lease (TTL 10 s) |
//! | [`redis`] (`redis`) | `redis` | key `registry.redis.<cluster>_<ip>:<port>` with an expiry (5 s, renewed every 2 s), announced on channel `registry.redis.<cluster>` |
//! | [`zookeeper`] (`zookeeper`) | `zk` | ephemeral node `/registry/zk/<cluster>/<ip>:<port>` |
//! | [`nacos`] (`nacos`) | `nacos` | ephemeral instance of service `seata-server`, group `DEFAULT_GROUP`, cluster `<cluster>` (open API v1, heartbeats) |
//! | [`file`](mod@file) (always) | `file` | a static list per cluster (`service.<cluster>.grouplist`); registration does nothing |
//!
//! [`Registry`] is one backend; [`Registrar`] keeps one TC registered in several at once;
//! [`Discovery`] looks a cluster up in several at once. [`RegistryConfig`] describes a backend
//! without needing its feature, so configurations parse everywhere and
//! [`RegistryConfig::connect`] says which feature is missing.

pub mod config;
pub mod file;
mod registrar;

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(any(feature = "etcd", feature = "nacos"))]
mod http;
#[cfg(feature = "nacos")]
pub mod nacos;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use config::{
    EtcdConfig, FileConfig, NacosConfig, RedisConfig, RegistryConfig, ZookeeperConfig,
};
pub use registrar::{Discovery, Registrar};

/// A boxed future, so that [`Registry`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Seata's default cluster name (`registry.<type>.cluster`).
pub const DEFAULT_CLUSTER: &str = "default";

/// One TC as a registry lists it: the cluster it serves and the `ip:port` clients connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instance {
    pub cluster: String,
    /// `host:port`, written as Java's `NetUtil.toStringAddress` writes it (`10.0.0.5:8091`).
    pub address: String,
}

impl Instance {
    /// An instance of `cluster` at `address` (`host:port`); fails when the address has no port.
    pub fn new(
        cluster: impl Into<String>,
        address: impl Into<String>,
    ) -> Result<Instance, RegistryError> {
        let (cluster, address) = (cluster.into(), address.into());
        if cluster.is_empty() {
            return Err(RegistryError::Config {
                registry: "registry",
                message: "the cluster name is empty".to_owned(),
            });
        }
        if split_host_port(&address).is_none() {
            return Err(RegistryError::BadAddress { address });
        }
        Ok(Instance { cluster, address })
    }

    /// The host part of the address.
    pub fn host(&self) -> &str {
        split_host_port(&self.address).map_or("", |(host, _)| host)
    }

    /// The port of the address.
    pub fn port(&self) -> u16 {
        split_host_port(&self.address).map_or(0, |(_, port)| port)
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in cluster {:?}", self.address, self.cluster)
    }
}

/// One registry backend.
///
/// `register` is idempotent: the first call creates the entry, later calls renew it (and
/// re-create it if it was lost, e.g. after the registry forgot an expired session). The
/// [`Registrar`] calls it every [`Registry::refresh_interval`].
pub trait Registry: Send + Sync + fmt::Debug {
    /// Seata's `registry.type` for this backend: `etcd3`, `redis`, `zk`, `nacos` or `file`.
    fn kind(&self) -> &'static str;

    /// Creates or renews the entry of `instance`.
    fn register<'a>(&'a self, instance: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Removes the entry of `instance` now (a graceful stop).
    fn deregister<'a>(&'a self, instance: &'a Instance)
    -> BoxFuture<'a, Result<(), RegistryError>>;

    /// The addresses registered for `cluster`, sorted and without duplicates.
    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>>;

    /// How often a registration must be renewed to stay visible.
    fn refresh_interval(&self) -> Duration;
}

/// What a registry operation can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry could not be reached or refused the request.
    #[error("{registry} at {endpoint}: {message}")]
    Unavailable {
        registry: &'static str,
        endpoint: String,
        message: String,
    },
    /// The registry answered something this client does not understand.
    #[error("{registry}: unexpected answer: {message}")]
    Protocol {
        registry: &'static str,
        message: String,
    },
    /// The configuration cannot work.
    #[error("invalid {registry} configuration: {message}")]
    Config {
        registry: &'static str,
        message: String,
    },
    /// The backend is not compiled in.
    #[error(
        "registry type {kind:?} is not compiled in: enable the cargo feature {feature:?} of \
         ferrata-registry (or of the crate that re-exports it)"
    )]
    NotCompiled {
        kind: &'static str,
        feature: &'static str,
    },
    #[error("registry address {address:?} is not host:port")]
    BadAddress { address: String },
}

/// `host:port` → (host, port); the host may be a bracketed IPv6 literal.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let port = port.parse().ok().filter(|port| *port != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((host, port))
}

/// Sorts and de-duplicates a lookup result, dropping what is not `host:port`.
pub(crate) fn normalize(addresses: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = addresses
        .into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| split_host_port(a).is_some())
        .collect();
    list.sort();
    list.dedup();
    list
}

/// The name a Java process gives itself (`pid@host`), which Seata's Redis registry stores as the
/// value of a TC's key.
#[cfg(any(feature = "redis", test))]
pub(crate) fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}@{host}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_needs_host_and_port() {
        let instance = Instance::new("default", "10.0.0.5:8091").expect("valid");
        assert_eq!((instance.host(), instance.port()), ("10.0.0.5", 8091));
        assert!(Instance::new("default", "10.0.0.5").is_err());
        assert!(Instance::new("default", "10.0.0.5:0").is_err());
        assert!(Instance::new("", "10.0.0.5:8091").is_err());
        assert_eq!(split_host_port("[::1]:8091"), Some(("::1", 8091)));
    }

    #[test]
    fn lookups_are_sorted_without_duplicates_or_garbage() {
        let list = normalize(
            ["b:2", "a:1", "b:2", "nonsense", " c:3 "]
                .into_iter()
                .map(String::from),
        );
        assert_eq!(list, ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn process_name_is_pid_at_host() {
        let name = process_name();
        let (pid, host) = name.split_once('@').expect("pid@host");
        assert_eq!(pid, std::process::id().to_string());
        assert!(!host.is_empty());
    }
}
