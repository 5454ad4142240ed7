//! Backend descriptions that need no backend feature: what to connect to and how long entries
//! live, with Seata's defaults, and the reading of Seata's `registry.*` client properties.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Registry, RegistryError};

/// One registry to register in or look up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryConfig {
    File(FileConfig),
    Etcd(EtcdConfig),
    Redis(RedisConfig),
    Zookeeper(ZookeeperConfig),
    Nacos(NacosConfig),
}

impl RegistryConfig {
    /// Seata's `registry.type` of this backend.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryConfig::File(_) => "file",
            RegistryConfig::Etcd(_) => "etcd3",
            RegistryConfig::Redis(_) => "redis",
            RegistryConfig::Zookeeper(_) => "zk",
            RegistryConfig::Nacos(_) => "nacos",
        }
    }

    /// The backend as a [`Registry`]. Nothing is contacted yet: the first operation connects.
    /// Fails when the configuration cannot work or the backend's feature is not compiled in.
    pub fn connect(&self) -> Result<Arc<dyn Registry>, RegistryError> {
        match self {
            RegistryConfig::File(config) => {
                Ok(Arc::new(crate::file::FileRegistry::new(config.clone())))
            }
            #[cfg(feature = "etcd")]
            RegistryConfig::Etcd(config) => {
                Ok(Arc::new(crate::etcd::EtcdRegistry::new(config.clone())?))
            }
            #[cfg(feature = "redis")]
            RegistryConfig::Redis(config) => {
                Ok(Arc::new(crate::redis::RedisRegistry::new(config.clone())?))
            }
            #[cfg(feature = "zookeeper")]
            RegistryConfig::Zookeeper(config) => Ok(Arc::new(
                crate::zookeeper::ZookeeperRegistry::new(config.clone())?,
            )),
            #[cfg(feature = "nacos")]
            RegistryConfig::Nacos(config) => {
                Ok(Arc::new(crate::nacos::NacosRegistry::new(config.clone())?))
            }
            #[allow(unreachable_patterns)]
            other => Err(RegistryError::NotCompiled {
                kind: other.kind(),
                feature: feature_of(other),
            }),
        }
    }

    /// The registries named by Seata client properties: `registry.type` (one type, or several
    /// separated by commas) and each type's `registry.<type>.*` keys. `get` answers a key in
    /// lower case without dashes (`registry.etcd3.serveraddr`), so that `serverAddr`,
    /// `server-addr` and Spring's forms all match. `file` yields nothing: the static list is
    /// `service.<cluster>.grouplist`, read by the caller.
    pub fn from_seata_properties(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<RegistryConfig>, RegistryError> {
        let types = get("registry.type").unwrap_or_else(|| "file".to_owned());
        let mut configs = Vec::new();
        for kind in types
            .split(',')
            .map(str::trim)
            .filter(|kind| !kind.is_empty())
        {
            let key = |name: &str| get(&format!("registry.{}.{name}", kind.to_ascii_lowercase()));
            let config = match kind.to_ascii_lowercase().as_str() {
                "file" => continue,
                "etcd3" => {
                    let mut config = EtcdConfig::default();
                    if let Some(addr) = key("serveraddr") {
                        config.endpoints = split_list(&addr);
                    }
                    RegistryConfig::Etcd(config)
                }
                "redis" => {
                    let addr = key("serveraddr").unwrap_or_else(|| "127.0.0.1:6379".to_owned());
                    let db = match key("db") {
                        Some(db) => db.parse().map_err(|_| RegistryError::Config {
                            registry: "redis",
                            message: format!("registry.redis.db = {db:?} is not a number"),
                        })?,
                        None => 0,
                    };
                    let password = key("password").filter(|p| !p.is_empty());
                    RegistryConfig::Redis(RedisConfig::from_seata(&addr, db, password)?)
                }
                "zk" => {
                    let mut config = ZookeeperConfig::default();
                    if let Some(addr) = key("serveraddr") {
                        config.servers = addr;
                    }
                    if let Some(ms) = key("sessiontimeout") {
                        config.session_timeout = parse_ms("zk", "sessionTimeout", &ms)?;
                    }
                    if let Some(ms) = key("connecttimeout") {
                        config.connect_timeout = parse_ms("zk", "connectTimeout", &ms)?;
                    }
                    config.username = key("username").filter(|u| !u.is_empty());
                    config.password = key("password").filter(|p| !p.is_empty()).map(Secret);
                    RegistryConfig::Zookeeper(config)
                }
                "nacos" => {
                    let mut config = NacosConfig::default();
                    if let Some(addr) = key("serveraddr") {
                        config.server_addr = split_list(&addr);
                    }
                    if let Some(namespace) = key("namespace") {
                        config.namespace = namespace;
                    }
                    if let Some(group) = key("group").filter(|g| !g.is_empty()) {
                        config.group = group;
                    }
                    if let Some(application) = key("application").filter(|a| !a.is_empty()) {
                        config.application = application;
                    }
                    if let Some(path) = key("contextpath").filter(|p| !p.is_empty()) {
                        config.context_path = path;
                    }
                    config.username = key("username").filter(|u| !u.is_empty());
                    config.password = key("password").filter(|p| !p.is_empty()).map(Secret);
                    RegistryConfig::Nacos(config)
                }
                other => {
                    return Err(RegistryError::Config {
                        registry: "registry",
                        message: format!(
                            "registry.type = {other:?} is not supported: use file, etcd3, redis, \
                             zk or nacos"
                        ),
                    });
                }
            };
            configs.push(config);
        }
        Ok(configs)
    }
}

fn feature_of(config: &RegistryConfig) -> &'static str {
    match config {
        RegistryConfig::File(_) => "",
        RegistryConfig::Etcd(_) => "etcd",
        RegistryConfig::Redis(_) => "redis",
        RegistryConfig::Zookeeper(_) => "zookeeper",
        RegistryConfig::Nacos(_) => "nacos",
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_ms(registry: &'static str, key: &str, text: &str) -> Result<Duration, RegistryError> {
    text.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| RegistryError::Config {
            registry,
            message: format!(
                "registry.{registry}.{key} = {text:?} is not a number of milliseconds"
            ),
        })
}

/// A password: printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `file`: a static address list per cluster (Seata's `service.<cluster>.grouplist`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileConfig {
    pub clusters: BTreeMap<String, Vec<String>>,
}

/// `etcd3`: Seata's `registry.etcd3.serverAddr`, and the lease of a TC's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` of one or more etcd members; tried in order.
    pub endpoints: Vec<String>,
    /// Lease time to live: how long a dead TC stays listed (seata-server: 10 s). etcd rounds it
    /// up to its minimum (about 2 s with default settings).
    pub ttl: Duration,
    /// Bound on each request.
    pub request_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> EtcdConfig {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// `redis`: Seata's `registry.redis.serverAddr`, `db`, `password`, and the expiry of a TC's key.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Expiry of a TC's key: how long a dead TC stays listed (seata-server: 5 s).
    pub ttl: Duration,
    /// How often the key is renewed (seata-server: every 2 s).
    pub refresh: Duration,
    /// Bound on connecting and on each command.
    pub request_timeout: Duration,
}

impl RedisConfig {
    /// From Seata's `serverAddr` (`host:port`), `db` and `password`.
    pub fn from_seata(
        server_addr: &str,
        db: u32,
        password: Option<String>,
    ) -> Result<RedisConfig, RegistryError> {
        let address = server_addr.trim();
        if crate::split_host_port(address).is_none() {
            return Err(RegistryError::Config {
                registry: "redis",
                message: format!("serverAddr {address:?} is not host:port"),
            });
        }
        let auth = password
            .map(|p| format!(":{}@", percent_encode(&p)))
            .unwrap_or_default();
        Ok(RedisConfig {
            url: format!("redis://{auth}{address}/{db}"),
            ..RedisConfig::default()
        })
    }
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            ttl: Duration::from_secs(5),
            refresh: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("ttl", &self.ttl)
            .field("refresh", &self.refresh)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// A URL with the password of its user-info part replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:<redacted>@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Percent-encodes everything but unreserved characters (for a password inside a URL).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `zk`: Seata's `registry.zk.serverAddr`, `sessionTimeout`, `connectTimeout`, `username`,
/// `password`. A TC's node lives as long as its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperConfig {
    /// `host:port[,host:port...]`.
    pub servers: String,
    /// Session timeout: how long a dead TC stays listed (Seata: 6 s; the server bounds it to
    /// 2 to 20 times its tick).
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
    /// Digest authentication (`username:password`), as Seata's `registry.zk.username`/`password`.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl Default for ZookeeperConfig {
    fn default() -> ZookeeperConfig {
        ZookeeperConfig {
            servers: "127.0.0.1:2181".to_owned(),
            session_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(2),
            username: None,
            password: None,
        }
    }
}

/// `nacos`: Seata's `registry.nacos.*` (`serverAddr`, `namespace`, `group`, `application`,
/// `username`, `password`, `contextPath`; `cluster` is the instance's cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NacosConfig {
    /// `host:port` (or `http://host:port`) of one or more Nacos servers; tried in order.
    pub server_addr: Vec<String>,
    /// Namespace id; empty = the public namespace.
    pub namespace: String,
    /// Service group (Seata: `DEFAULT_GROUP`; Seata's guides use `SEATA_GROUP`).
    pub group: String,
    /// Service name (Seata: `seata-server`).
    pub application: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Path of the Nacos web application (default `/nacos`).
    pub context_path: String,
    /// Heartbeat period of an ephemeral instance (Nacos: 5 s; unhealthy after 15 s without,
    /// removed after 30 s).
    pub heartbeat: Duration,
    pub request_timeout: Duration,
}

impl Default for NacosConfig {
    fn default() -> NacosConfig {
        NacosConfig {
            server_addr: vec!["127.0.0.1:8848".to_owned()],
            namespace: String::new(),
            group: "DEFAULT_GROUP".to_owned(),
            application: "seata-server".to_owned(),
            username: None,
            password: None,
            context_path: "/nacos".to_owned(),
            heartbeat: Duration::from_secs(5),
            request_timeout: Duration::from_secs(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase().replace('-', ""), (*v).to_owned()))
            .collect();
        move |key: &str| map.get(key).cloned()
    }

    #[test]
    fn seata_properties_name_the_registries() {
        let configs = RegistryConfig::from_seata_properties(properties(&[
            ("registry.type", "etcd3, redis,zk,nacos"),
            (
                "registry.etcd3.serverAddr",
                "http://127.0.0.1:2379,http://127.0.0.1:2380",
            ),
            ("registry.redis.serverAddr", "127.0.0.1:6380"),
            ("registry.redis.db", "3"),
            ("registry.redis.password", "p@ss"),
            ("registry.zk.serverAddr", "127.0.0.1:2182"),
            ("registry.zk.sessionTimeout", "4000"),
            ("registry.nacos.serverAddr", "127.0.0.1:8848"),
            ("registry.nacos.group", "SEATA_GROUP"),
            ("registry.nacos.namespace", "dev"),
        ]))
        .expect("valid");
        let kinds: Vec<&str> = configs.iter().map(RegistryConfig::kind).collect();
        assert_eq!(kinds, ["etcd3", "redis", "zk", "nacos"]);
        let RegistryConfig::Etcd(etcd) = &configs[0] else {
            panic!("etcd first")
        };
        assert_eq!(
            etcd.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
        );
        let RegistryConfig::Redis(redis) = &configs[1] else {
            panic!("redis second")
        };
        assert_eq!(redis.url, "redis://:p%40ss@127.0.0.1:6380/3");
        assert!(!format!("{redis:?}").contains("p%40ss"), "{redis:?}");
        let RegistryConfig::Zookeeper(zk) = &configs[2] else {
            panic!("zk third")
        };
        assert_eq!(zk.servers, "127.0.0.1:2182");
        assert_eq!(zk.session_timeout, Duration::from_secs(4));
        let RegistryConfig::Nacos(nacos) = &configs[3] else {
            panic!("nacos fourth")
        };
        assert_eq!(
            (nacos.group.as_str(), nacos.namespace.as_str()),
            ("SEATA_GROUP", "dev")
        );
        assert_eq!(nacos.application, "seata-server");
    }

    #[test]
    fn file_or_nothing_means_no_registry_and_unknown_types_fail() {
        assert!(
            RegistryConfig::from_seata_properties(properties(&[]))
                .expect("valid")
                .is_empty()
        );
        assert!(
            RegistryConfig::from_seata_properties(properties(&[("registry.type", "file")]))
                .expect("valid")
                .is_empty()
        );
        let error =
            RegistryConfig::from_seata_properties(properties(&[("registry.type", "eureka")]))
                .expect_err("unsupported");
        assert!(error.to_string().contains("eureka"), "{error}");
        assert!(
            RegistryConfig::from_seata_properties(properties(&[
                ("registry.type", "redis"),
                ("registry.redis.serverAddr", "nohost")
            ]))
            .is_err()
        );
    }

    #[test]
    fn urls_print_without_their_password() {
        assert_eq!(
            redact_url("redis://:secret@127.0.0.1:6379/0"),
            "redis://:<redacted>@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://user:secret@h:1"),
            "redis://user:<redacted>@h:1"
        );
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    }
}
