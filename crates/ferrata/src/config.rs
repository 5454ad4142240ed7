//! Client configuration: a builder, and Seata-style properties (`service.vgroupMapping.<group>`,
//! `service.<cluster>.grouplist`, `registry.type` and `registry.<type>.*`, `client.tm.*`,
//! `transport.*`) so existing Seata configs carry over.

use std::collections::BTreeMap;
use std::time::Duration;

pub use ferrata_registry::RegistryConfig;

use crate::error::{ConfigError, Error};

/// The version string the SDK registers with: 2.x, so the TC uses the 2.x enum tables.
pub const CLIENT_VERSION: &str = "2.6.0";
/// Seata's default transaction-service group.
pub const DEFAULT_TX_SERVICE_GROUP: &str = "default_tx_group";
/// Cluster name used when addresses are given directly to the builder.
pub const DEFAULT_CLUSTER: &str = "default";

/// Everything the client needs. Build one with [`ClientConfig::builder`] or
/// [`ClientConfig::from_properties`]; every field has Seata's default.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Logical application name (`seata.application-id`); the TC routes phase 2 by it.
    pub application_id: String,
    /// The transaction-service group ("vgroup") this client belongs to.
    pub tx_service_group: String,
    /// `service.vgroupMapping.<group> = <cluster>`.
    pub vgroup_mapping: BTreeMap<String, String>,
    /// `service.<cluster>.grouplist = host:port,...`.
    pub grouplists: BTreeMap<String, Vec<String>>,
    /// Registries to discover the cluster's TCs in (`registry.type = etcd3 | redis | zk |
    /// nacos`, several separated by commas); empty = the fixed `grouplists` (`file`). Each
    /// backend needs its cargo feature (`registry-etcd`, `registry-redis`,
    /// `registry-zookeeper`, `registry-nacos`).
    pub registries: Vec<RegistryConfig>,
    /// How often the registries are asked again for the cluster's TCs: new ones are connected,
    /// ones no longer listed are dropped (`registry.refreshInterval`, milliseconds).
    pub registry_refresh: Duration,
    /// Version string sent in RegisterTM/RegisterRM.
    pub client_version: String,
    /// How long a TM request waits for its answer (`transport.rpcTmRequestTimeout`, 30 s).
    pub tm_request_timeout: Duration,
    /// How long an RM request waits for its answer (`transport.rpcRmRequestTimeout`, 15 s).
    pub rm_request_timeout: Duration,
    /// TCP connect timeout per attempt (Java: 10 s).
    pub connect_timeout: Duration,
    /// Send pings and drop silent connections (`transport.heartbeat`).
    pub heartbeat: bool,
    /// Ping after this long without writing (Java: 5 s).
    pub write_idle: Duration,
    /// Reconnect after this long without reading anything (Java: 15 s).
    pub read_idle: Duration,
    /// First delay before reconnecting; doubles up to `reconnect_backoff_max`.
    pub reconnect_backoff_initial: Duration,
    pub reconnect_backoff_max: Duration,
    /// Merge TM requests into MergedWarpMessages (`transport.enableTmClientBatchSendRequest`,
    /// off by default as in Java since 1.5).
    pub tm_batch: bool,
    /// Merge RM requests (`transport.enableRmClientBatchSendRequest`, on by default).
    pub rm_batch: bool,
    /// How long the writer waits for more requests to merge after the first one (about 1 ms).
    pub batch_window: Duration,
    /// At most this many requests go into one MergedWarpMessage.
    pub max_batch: usize,
    /// Attempts of a global commit on failure (`client.tm.commitRetryCount`, 5).
    pub commit_retry_count: u32,
    /// Attempts of a global rollback on failure (`client.tm.rollbackRetryCount`, 5).
    pub rollback_retry_count: u32,
    /// Pause between those attempts, growing linearly.
    pub retry_interval: Duration,
    /// Global transaction timeout when none is given
    /// (`client.tm.defaultGlobalTransactionTimeout`, 60 s).
    pub default_transaction_timeout: Duration,
    /// Branch commit/rollback handlers running at once; more requests wait their turn.
    pub handler_concurrency: usize,
    /// Largest frame accepted from the TC.
    pub max_frame_len: usize,
    /// Access key and secret key: when set, registrations are signed as Java's TM signs them
    /// (`seata.accessKey`/`seata.secretKey`; Spring: `seata.access-key`/`seata.secret-key`).
    pub credentials: Option<Credentials>,
    /// TLS to the TC (feature `tls`); plain TCP when `None`.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsOptions>,
}

/// An access key and its secret key, for signed registrations. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl ClientConfig {
    /// A builder for `application_id` with every other value at its default.
    pub fn builder(application_id: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder {
            config: ClientConfig {
                application_id: application_id.into(),
                ..ClientConfig::default()
            },
            addresses: None,
        }
    }

    /// The cluster this client's group maps to and its TC addresses (the fixed grouplist).
    pub fn tc_addresses(&self) -> Result<(String, Vec<String>), Error> {
        let cluster = self.cluster()?;
        let group = &self.tx_service_group;
        let list = self
            .grouplists
            .get(&cluster)
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                Error::Config(ConfigError::NoAddresses {
                    cluster: cluster.clone(),
                    group: group.clone(),
                })
            })?;
        for addr in list {
            if split_host_port(addr).is_none() {
                return Err(Error::Config(ConfigError::BadAddress {
                    addr: addr.clone(),
                }));
            }
        }
        Ok((cluster, list.clone()))
    }

    /// The cluster this client's group maps to (`service.vgroupMapping.<group>`).
    pub fn cluster(&self) -> Result<String, Error> {
        let group = &self.tx_service_group;
        self.vgroup_mapping.get(group).cloned().ok_or_else(|| {
            Error::Config(ConfigError::NoCluster {
                group: group.clone(),
            })
        })
    }

    /// True when the TCs are discovered through registries rather than a fixed list.
    pub fn discovers(&self) -> bool {
        !self.registries.is_empty()
    }

    /// Checks that the group resolves: to a cluster found in registries, or to a grouplist.
    fn check_tc_source(&self) -> Result<(), Error> {
        if self.discovers() {
            self.cluster()?;
            for registry in &self.registries {
                registry.connect().map_err(|error| {
                    Error::Config(ConfigError::Registry {
                        reason: error.to_string(),
                    })
                })?;
            }
            return Ok(());
        }
        self.tc_addresses().map(drop)
    }

    /// Reads Seata client properties. Keys may carry Spring's `seata.` prefix and kebab-case
    /// (`seata.service.vgroup-mapping.<group>`, `seata.service.grouplist.<cluster>`); unknown
    /// keys are ignored because Seata configs hold many settings this SDK has no use for.
    pub fn from_properties<K, V>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ClientConfig, Error>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut c = ClientConfig::default();
        let (mut access_key, mut secret_key) = (None, None);
        // registry.* keys, lower case without dashes, for ferrata-registry to read.
        let mut registry = BTreeMap::new();
        for (key, value) in properties {
            let (key, value) = (key.as_ref().trim(), value.as_ref().trim());
            let norm = key.strip_prefix("seata.").unwrap_or(key).replace('-', "");
            if norm.eq_ignore_ascii_case("accesskey") {
                access_key = Some(value.to_owned());
            } else if norm.eq_ignore_ascii_case("secretkey") {
                secret_key = Some(value.to_owned());
            } else if norm.to_ascii_lowercase().starts_with("registry.") {
                let norm = norm.to_ascii_lowercase();
                if norm == "registry.refreshinterval" {
                    c.registry_refresh = parse_ms(key, value)?;
                }
                registry.insert(norm, value.to_owned());
            } else {
                apply_property(&mut c, key, value)?;
            }
        }
        c.registries = RegistryConfig::from_seata_properties(|key| registry.get(key).cloned())
            .map_err(|error| {
                Error::Config(ConfigError::Registry {
                    reason: error.to_string(),
                })
            })?;
        match (access_key, secret_key) {
            (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => {
                c.credentials = Some(Credentials::new(ak, sk));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(ConfigError::HalfCredentials));
            }
        }
        c.check_credentials()?;
        if c.application_id.is_empty() {
            return Err(Error::Config(ConfigError::NoApplicationId));
        }
        c.check_tc_source()?;
        Ok(c)
    }

    /// Java cannot sign for a group containing a comma (the digest source is comma-separated).
    fn check_credentials(&self) -> Result<(), Error> {
        if self.credentials.is_some() && self.tx_service_group.contains(',') {
            return Err(Error::Config(ConfigError::GroupWithComma {
                group: self.tx_service_group.clone(),
            }));
        }
        Ok(())
    }

    /// Parses the text of a `.properties` file (`key=value` or `key: value` lines, `#`/`!`
    /// comments) and reads it like [`ClientConfig::from_properties`].
    pub fn from_properties_str(text: &str) -> Result<ClientConfig, Error> {
        let pairs = text.lines().filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                return None;
            }
            let at = line.find(['=', ':'])?;
            Some((line[..at].trim(), line[at + 1..].trim()))
        });
        ClientConfig::from_properties(pairs)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            application_id: String::new(),
            tx_service_group: DEFAULT_TX_SERVICE_GROUP.to_owned(),
            vgroup_mapping: BTreeMap::new(),
            grouplists: BTreeMap::new(),
            registries: Vec::new(),
            registry_refresh: Duration::from_secs(2),
            client_version: CLIENT_VERSION.to_owned(),
            tm_request_timeout: Duration::from_secs(30),
            rm_request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            heartbeat: true,
            write_idle: Duration::from_secs(5),
            read_idle: Duration::from_secs(15),
            reconnect_backoff_initial: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            tm_batch: false,
            rm_batch: true,
            batch_window: Duration::from_millis(1),
            max_batch: 512,
            commit_retry_count: 5,
            rollback_retry_count: 5,
            retry_interval: Duration::from_millis(100),
            default_transaction_timeout: Duration::from_secs(60),
            handler_concurrency: 32,
            max_frame_len: ferrata_proto::DEFAULT_MAX_FRAME_LEN,
            credentials: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Builds a [`ClientConfig`]; `build` checks that the group resolves to TC addresses (or to a
/// cluster, when registries are configured).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientConfigBuilder {
    config: ClientConfig,
    addresses: Option<Vec<String>>,
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty ),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )+
    };
}

impl ClientConfigBuilder {
    /// TC addresses (`host:port`) of this client's cluster; shorthand for mapping the group to
    /// the `default` cluster and setting its grouplist.
    pub fn tc_addresses<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.addresses = Some(addresses.into_iter().map(Into::into).collect());
        self
    }

    /// `service.vgroupMapping.<group> = <cluster>`.
    pub fn vgroup_mapping(mut self, group: impl Into<String>, cluster: impl Into<String>) -> Self {
        self.config
            .vgroup_mapping
            .insert(group.into(), cluster.into());
        self
    }

    /// `service.<cluster>.grouplist = host:port,...`.
    pub fn grouplist<I, S>(mut self, cluster: impl Into<String>, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.grouplists.insert(
            cluster.into(),
            addresses.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Discover the cluster's TCs in this registry (call again for several); the group maps to
    /// the `default` cluster unless [`ClientConfigBuilder::vgroup_mapping`] says otherwise.
    pub fn registry(mut self, registry: RegistryConfig) -> Self {
        self.config.registries.push(registry);
        self
    }

    setters! {
        /// How often the registries are asked again (default 2 s).
        registry_refresh: Duration,
        /// The transaction-service group (default `default_tx_group`).
        tx_service_group: String,
        /// The version string to register with (default [`CLIENT_VERSION`]).
        client_version: String,
        tm_request_timeout: Duration,
        rm_request_timeout: Duration,
        connect_timeout: Duration,
        heartbeat: bool,
        write_idle: Duration,
        read_idle: Duration,
        reconnect_backoff_initial: Duration,
        reconnect_backoff_max: Duration,
        tm_batch: bool,
        rm_batch: bool,
        batch_window: Duration,
        max_batch: usize,
        commit_retry_count: u32,
        rollback_retry_count: u32,
        retry_interval: Duration,
        default_transaction_timeout: Duration,
        handler_concurrency: usize,
        max_frame_len: usize,
    }

    /// Signs registrations with this access key and secret key.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.config.credentials = Some(Credentials::new(access_key, secret_key));
        self
    }

    /// Connects to the TC over TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Checks the configuration and returns it.
    pub fn build(mut self) -> Result<ClientConfig, Error> {
        if let Some(addresses) = self.addresses.take() {
            let group = self.config.tx_service_group.clone();
            let cluster = self
                .config
                .vgroup_mapping
                .entry(group)
                .or_insert_with(|| DEFAULT_CLUSTER.to_owned())
                .clone();
            self.config.grouplists.insert(cluster, addresses);
        }
        if self.config.discovers() {
            let group = self.config.tx_service_group.clone();
            self.config
                .vgroup_mapping
                .entry(group)
                .or_insert_with(|| DEFAULT_CLUSTER.to_owned());
        }
        let c = &self.config;
        if c.application_id.is_empty() {
            return Err(Error::Config(ConfigError::NoApplicationId));
        }
        if c.max_batch == 0 {
            return Err(Error::Config(ConfigError::Zero { field: "max_batch" }));
        }
        if c.handler_concurrency == 0 {
            return Err(Error::Config(ConfigError::Zero {
                field: "handler_concurrency",
            }));
        }
        c.check_credentials()?;
        c.check_tc_source()?;
        Ok(self.config)
    }
}

/// `host:port` → (host, port); the host may be a bracketed IPv6 literal.
pub(crate) fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((host, port))
}

fn bad_value(key: &str, value: &str, expected: &'static str) -> Error {
    Error::Config(ConfigError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    })
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, Error> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| bad_value(key, value, "a number of milliseconds"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    value
        .parse::<bool>()
        .map_err(|_| bad_value(key, value, "true or false"))
}

fn parse_count(key: &str, value: &str) -> Result<u32, Error> {
    // Java treats a count <= 0 as "use the default".
    match value.parse::<i64>() {
        Ok(n) if n > 0 => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Ok(_) => Ok(5),
        Err(_) => Err(bad_value(key, value, "a whole number")),
    }
}

fn apply_property(c: &mut ClientConfig, key: &str, value: &str) -> Result<(), Error> {
    let key = key.strip_prefix("seata.").unwrap_or(key);
    // Keep the original segments: group and cluster names are case-sensitive.
    let segments: Vec<&str> = key.split('.').collect();
    let norm: Vec<String> = segments
        .iter()
        .map(|s| s.replace('-', "").to_ascii_lowercase())
        .collect();
    let norm_refs: Vec<&str> = norm.iter().map(String::as_str).collect();
    let list = || {
        value
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    match norm_refs.as_slice() {
        ["service", "vgroupmapping", ..] if segments.len() > 2 => {
            c.vgroup_mapping
                .insert(segments[2..].join("."), value.to_owned());
        }
        ["service", "grouplist", ..] if segments.len() > 2 => {
            c.grouplists.insert(segments[2..].join("."), list());
        }
        ["service", .., "grouplist"] if segments.len() > 2 => {
            c.grouplists
                .insert(segments[1..segments.len() - 1].join("."), list());
        }
        ["applicationid"] | ["application", "id"] => c.application_id = value.to_owned(),
        ["txservicegroup"] | ["tx", "service", "group"] => c.tx_service_group = value.to_owned(),
        ["client", "tm", "commitretrycount"] => c.commit_retry_count = parse_count(key, value)?,
        ["client", "tm", "rollbackretrycount"] => c.rollback_retry_count = parse_count(key, value)?,
        ["client", "tm", "defaultglobaltransactiontimeout"] => {
            c.default_transaction_timeout = parse_ms(key, value)?
        }
        ["transport", "enabletmclientbatchsendrequest"] => c.tm_batch = parse_bool(key, value)?,
        ["transport", "enablermclientbatchsendrequest"] => c.rm_batch = parse_bool(key, value)?,
        // 1.4.x's single switch for both roles.
        ["transport", "enableclientbatchsendrequest"] => {
            let on = parse_bool(key, value)?;
            c.tm_batch = on;
            c.rm_batch = on;
        }
        ["transport", "heartbeat"] => c.heartbeat = parse_bool(key, value)?,
        ["transport", "rpctmrequesttimeout"] => c.tm_request_timeout = parse_ms(key, value)?,
        ["transport", "rpcrmrequesttimeout"] => c.rm_request_timeout = parse_ms(key, value)?,
        _ => tracing::debug!(key, "ignoring a Seata property the SDK does not use"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seata_properties_resolve_group_to_addresses() {
        let c = ClientConfig::from_properties_str(
            "# file.conf style\n\
             seata.application-id = order-service\n\
             seata.tx-service-group=my_group\n\
             service.vgroupMapping.my_group=east\n\
             service.east.grouplist=10.0.0.1:8091,10.0.0.2:8091\n\
             client.tm.commitRetryCount=3\n\
             transport.enableTmClientBatchSendRequest=true\n\
             something.unrelated=1\n",
        )
        .expect("valid");
        assert_eq!(c.application_id, "order-service");
        let (cluster, addrs) = c.tc_addresses().expect("resolves");
        assert_eq!(cluster, "east");
        assert_eq!(addrs, ["10.0.0.1:8091", "10.0.0.2:8091"]);
        assert_eq!(c.commit_retry_count, 3);
        assert!(c.tm_batch);

        let spring = ClientConfig::from_properties([
            ("seata.application-id", "a"),
            ("seata.service.vgroup-mapping.default_tx_group", "default"),
            ("seata.service.grouplist.default", "127.0.0.1:8091"),
        ])
        .expect("valid");
        assert_eq!(
            spring.tc_addresses().expect("resolves").1,
            ["127.0.0.1:8091"]
        );
    }

    #[test]
    fn missing_mapping_says_which_key_to_set() {
        let err =
            ClientConfig::from_properties([("seata.application-id", "a")]).expect_err("no mapping");
        assert!(
            matches!(&err, Error::Config(ConfigError::NoCluster { group }) if group == "default_tx_group"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("service.vgroupMapping.default_tx_group"),
            "{err}"
        );
        let err = ClientConfig::builder("a")
            .tc_addresses(["nohost"])
            .build()
            .expect_err("bad address");
        assert!(err.to_string().contains("host:port"), "{err}");
        assert!(
            ClientConfig::from_properties([
                ("applicationId", "a"),
                ("service.vgroupMapping.default_tx_group", "default"),
                ("service.default.grouplist", "127.0.0.1:8091"),
                ("transport.heartbeat", "maybe"),
            ])
            .is_err()
        );
    }

    #[test]
    fn credentials_from_properties_and_builder() {
        let base = [
            ("seata.application-id", "a"),
            ("service.vgroupMapping.default_tx_group", "default"),
            ("service.default.grouplist", "127.0.0.1:8091"),
        ];
        for (ak, sk) in [
            ("seata.accessKey", "seata.secretKey"),
            ("seata.access-key", "seata.secret-key"),
            ("seata.accesskey", "seata.secretkey"),
        ] {
            let c =
                ClientConfig::from_properties(base.iter().copied().chain([(ak, "AK"), (sk, "SK")]))
                    .expect("valid");
            assert_eq!(c.credentials, Some(Credentials::new("AK", "SK")), "{ak}");
        }
        let half =
            ClientConfig::from_properties(base.iter().copied().chain([("seata.accessKey", "AK")]));
        assert!(half.is_err());
        let c = ClientConfig::builder("a")
            .tc_addresses(["127.0.0.1:8091"])
            .credentials("AK", "SK")
            .build()
            .expect("valid");
        assert_eq!(
            c.credentials.as_ref().map(Credentials::access_key),
            Some("AK")
        );
        assert!(!format!("{c:?}").contains("SK\""), "secret in {c:?}");
        let comma = ClientConfig::builder("a")
            .tx_service_group("a,b".to_owned())
            .tc_addresses(["127.0.0.1:8091"])
            .credentials("AK", "SK")
            .build();
        assert!(comma.is_err());
    }

    #[test]
    fn registry_properties_replace_the_grouplist() {
        let c = ClientConfig::from_properties_str(
            "seata.application-id = a\n\
             service.vgroupMapping.default_tx_group = east\n\
             registry.type = etcd3,redis\n\
             registry.etcd3.serverAddr = http://127.0.0.1:2379\n\
             seata.registry.redis.server-addr = 127.0.0.1:6379\n\
             registry.refreshInterval = 500\n",
        )
        .expect("valid without a grouplist");
        assert!(c.discovers());
        assert_eq!(c.cluster().expect("cluster"), "east");
        let kinds: Vec<&str> = c.registries.iter().map(RegistryConfig::kind).collect();
        assert_eq!(kinds, ["etcd3", "redis"]);
        assert_eq!(c.registry_refresh, Duration::from_millis(500));
        // registry.type = file is the grouplist, which must then be there.
        let err = ClientConfig::from_properties([
            ("applicationId", "a"),
            ("service.vgroupMapping.default_tx_group", "default"),
            ("registry.type", "file"),
        ])
        .expect_err("no grouplist");
        assert!(err.to_string().contains("grouplist"), "{err}");
        // A registry still needs the group's cluster, as in Java.
        let err = ClientConfig::from_properties([("applicationId", "a"), ("registry.type", "zk")])
            .expect_err("no mapping");
        assert!(err.to_string().contains("vgroupMapping"), "{err}");
        let err = ClientConfig::from_properties([
            ("applicationId", "a"),
            ("service.vgroupMapping.default_tx_group", "default"),
            ("registry.type", "consul"),
        ])
        .expect_err("unsupported");
        assert!(err.to_string().contains("consul"), "{err}");
    }

    #[test]
    fn builder_with_a_registry_maps_the_group_to_default() {
        let c = ClientConfig::builder("a")
            .registry(RegistryConfig::File(ferrata_registry::FileConfig::default()))
            .build()
            .expect("valid");
        assert_eq!(c.cluster().expect("cluster"), DEFAULT_CLUSTER);
        assert!(c.discovers());
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("h:1"), Some(("h", 1)));
        assert_eq!(split_host_port("[::1]:8091"), Some(("::1", 8091)));
        assert_eq!(split_host_port("h"), None);
    }
}
