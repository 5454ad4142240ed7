//! `[registry]`: the registries this TC registers itself in, so that Seata clients configured
//! with `registry.type = etcd3 | redis | zk | nacos` (and no grouplist) find it. Each sub-table
//! present (`[registry.etcd3]`, `[registry.redis]`, `[registry.zk]`, `[registry.nacos]`) is one
//! registry, several at once are fine; none = no registration (the default).

use std::time::Duration;

use ferrata_registry::{
    EtcdConfig, NacosConfig, RedisConfig, RegistryConfig, ZookeeperConfig, config::Secret,
};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[registry]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// The cluster name clients map their group to (`service.vgroupMapping.<group> = <cluster>`);
    /// seata-server's `registry.<type>.cluster`.
    pub cluster: String,
    /// The `host:port` registered; unset = the host written into XIDs (`server.advertise_host`,
    /// else the listen IP, else 127.0.0.1) and the listen port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How long a graceful shutdown waits for each registry to remove the entry.
    #[serde(with = "humantime_serde")]
    pub deregister_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd3: Option<EtcdSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zk: Option<ZookeeperSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nacos: Option<NacosSettings>,
}

impl Default for RegistrySettings {
    fn default() -> RegistrySettings {
        RegistrySettings {
            cluster: ferrata_registry::DEFAULT_CLUSTER.to_owned(),
            address: None,
            deregister_timeout: Duration::from_secs(3),
            etcd3: None,
            redis: None,
            zk: None,
            nacos: None,
        }
    }
}

/// `[registry.etcd3]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSettings {
    /// `http://host:port` of the etcd members (a list, or one string separated by commas, as
    /// Seata's `registry.etcd3.serverAddr`).
    #[serde(with = "string_or_list")]
    pub endpoints: Vec<String>,
    /// Lease time to live: how long the entry outlives a crashed TC.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for EtcdSettings {
    fn default() -> EtcdSettings {
        let defaults = EtcdConfig::default();
        EtcdSettings {
            endpoints: defaults.endpoints,
            ttl: defaults.ttl,
        }
    }
}

/// `[registry.redis]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    #[serde(serialize_with = "redacted_url")]
    pub url: String,
    /// Overrides any password in the URL.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_option"
    )]
    pub password: Option<String>,
    /// Expiry of the key: how long the entry outlives a crashed TC.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How often the key is renewed (less than `ttl`).
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for RedisSettings {
    fn default() -> RedisSettings {
        let defaults = RedisConfig::default();
        RedisSettings {
            url: defaults.url,
            password: None,
            ttl: defaults.ttl,
            refresh: defaults.refresh,
        }
    }
}

/// `[registry.zk]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZookeeperSettings {
    /// `host:port[,host:port...]`.
    pub servers: String,
    /// Session timeout: how long the entry outlives a crashed TC.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_option"
    )]
    pub password: Option<String>,
}

impl Default for ZookeeperSettings {
    fn default() -> ZookeeperSettings {
        let defaults = ZookeeperConfig::default();
        ZookeeperSettings {
            servers: defaults.servers,
            session_timeout: defaults.session_timeout,
            connect_timeout: defaults.connect_timeout,
            username: None,
            password: None,
        }
    }
}

/// `[registry.nacos]` (open API v1; not verified against a Nacos server).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NacosSettings {
    #[serde(with = "string_or_list")]
    pub server_addr: Vec<String>,
    pub namespace: String,
    pub group: String,
    /// Service name (seata-server's `registry.nacos.application`).
    pub application: String,
    pub context_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_option"
    )]
    pub password: Option<String>,
    /// Heartbeat period (Nacos marks an instance unhealthy after 15 s without one).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

impl Default for NacosSettings {
    fn default() -> NacosSettings {
        let defaults = NacosConfig::default();
        NacosSettings {
            server_addr: defaults.server_addr,
            namespace: defaults.namespace,
            group: defaults.group,
            application: defaults.application,
            context_path: defaults.context_path,
            username: None,
            password: None,
            heartbeat: defaults.heartbeat,
        }
    }
}

impl RegistrySettings {
    /// True when no registry is configured (the table is then left out of `--print-config`).
    pub fn is_disabled(&self) -> bool {
        !self.is_enabled()
    }

    /// True when at least one registry is configured.
    pub fn is_enabled(&self) -> bool {
        self.etcd3.is_some() || self.redis.is_some() || self.zk.is_some() || self.nacos.is_some()
    }

    /// The configured registries, for [`ferrata_registry::RegistryConfig::connect`].
    pub fn registries(&self) -> Vec<RegistryConfig> {
        let mut registries = Vec::new();
        if let Some(etcd) = &self.etcd3 {
            registries.push(RegistryConfig::Etcd(EtcdConfig {
                endpoints: etcd.endpoints.clone(),
                ttl: etcd.ttl,
                ..EtcdConfig::default()
            }));
        }
        if let Some(redis) = &self.redis {
            registries.push(RegistryConfig::Redis(RedisConfig {
                url: with_password(&redis.url, redis.password.as_deref()),
                ttl: redis.ttl,
                refresh: redis.refresh,
                ..RedisConfig::default()
            }));
        }
        if let Some(zk) = &self.zk {
            registries.push(RegistryConfig::Zookeeper(ZookeeperConfig {
                servers: zk.servers.clone(),
                session_timeout: zk.session_timeout,
                connect_timeout: zk.connect_timeout,
                username: zk.username.clone(),
                password: zk.password.clone().map(Secret),
            }));
        }
        if let Some(nacos) = &self.nacos {
            registries.push(RegistryConfig::Nacos(NacosConfig {
                server_addr: nacos.server_addr.clone(),
                namespace: nacos.namespace.clone(),
                group: nacos.group.clone(),
                application: nacos.application.clone(),
                username: nacos.username.clone(),
                password: nacos.password.clone().map(Secret),
                context_path: nacos.context_path.clone(),
                heartbeat: nacos.heartbeat,
                ..NacosConfig::default()
            }));
        }
        registries
    }

    /// Rejects settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        let cluster = &self.cluster;
        if cluster.is_empty()
            || cluster
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "registry.cluster",
                format!("{cluster:?} must be a non-empty name without '/' or spaces"),
            ));
        }
        if self.redis.is_some() && cluster.contains('_') {
            return Err(invalid(
                "registry.cluster",
                format!(
                    "{cluster:?} contains '_', which Seata's Java client cannot read back from a \
                     Redis key (it splits registry.redis.<cluster>_<ip>:<port> at '_')"
                ),
            ));
        }
        if let Some(address) = &self.address
            && ferrata_registry::split_host_port(address).is_none()
        {
            return Err(invalid(
                "registry.address",
                format!("{address:?} is not host:port"),
            ));
        }
        if self.deregister_timeout < Duration::from_millis(1) {
            return Err(invalid(
                "registry.deregister_timeout",
                "must be at least \"1ms\"".to_owned(),
            ));
        }
        let at_least_1s = |key: &'static str, value: Duration| {
            if value < Duration::from_secs(1) {
                Err(invalid(
                    key,
                    format!(
                        "\"{}\" is too short: use at least \"1s\"",
                        humantime::format_duration(value)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(etcd) = &self.etcd3 {
            at_least_1s("registry.etcd3.ttl", etcd.ttl)?;
        }
        if let Some(redis) = &self.redis {
            at_least_1s("registry.redis.ttl", redis.ttl)?;
            if redis.refresh >= redis.ttl || redis.refresh < Duration::from_millis(1) {
                return Err(invalid(
                    "registry.redis.refresh",
                    format!(
                        "\"{}\" must be shorter than registry.redis.ttl (\"{}\")",
                        humantime::format_duration(redis.refresh),
                        humantime::format_duration(redis.ttl)
                    ),
                ));
            }
        }
        if let Some(zk) = &self.zk {
            at_least_1s("registry.zk.session_timeout", zk.session_timeout)?;
        }
        if let Some(nacos) = &self.nacos {
            at_least_1s("registry.nacos.heartbeat", nacos.heartbeat)?;
        }
        for registry in self.registries() {
            let key = match registry {
                RegistryConfig::Etcd(_) => "registry.etcd3",
                RegistryConfig::Redis(_) => "registry.redis",
                RegistryConfig::Zookeeper(_) => "registry.zk",
                RegistryConfig::Nacos(_) => "registry.nacos",
                RegistryConfig::File(_) => "registry",
            };
            registry
                .connect()
                .map_err(|error| invalid(key, error.to_string()))?;
        }
        Ok(())
    }
}

/// `url` with `password` put into its user-info part (when given).
fn with_password(url: &str, password: Option<&str>) -> String {
    let Some(password) = password else {
        return url.to_owned();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (user, host) = match rest.split_once('@') {
        Some((user_info, host)) => (user_info.split(':').next().unwrap_or(""), host),
        None => ("", rest),
    };
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{scheme}://{user}:{encoded}@{host}")
}

fn redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ferrata_registry::config::redact_url(url))
}

fn redacted_option<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A list of strings written as a TOML array or as one string separated by commas (as in an
/// environment variable, or Seata's `serverAddr`).
mod string_or_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let list = match Form::deserialize(d)? {
            Form::One(text) => text.split(',').map(str::to_owned).collect(),
            Form::Many(list) => list,
        };
        Ok(list
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_into_the_url_and_never_out() {
        assert_eq!(
            with_password("redis://127.0.0.1:6379/0", Some("p@ss")),
            "redis://:p%40ss@127.0.0.1:6379/0"
        );
        assert_eq!(
            with_password("redis://u:old@h:1/2", Some("new")),
            "redis://u:new@h:1/2"
        );
        assert_eq!(with_password("redis://h:1", None), "redis://h:1");
    }

    #[test]
    fn nothing_configured_is_valid_and_disabled() {
        let settings = RegistrySettings::default();
        assert!(!settings.is_enabled());
        assert!(settings.registries().is_empty());
        settings.validate().expect("valid");
    }
}
