//! Server configuration: one typed tree (`[server]`, `[store]`, `[limits]`, `[coordinator]`,
//! `[auth]`, `[tls]`, `[registry]`, `[admin]`) layered, in increasing precedence, from defaults, the TOML file,
//! `FERRATA_*` environment variables and command-line flags, then checked by [`Config::validate`].

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ferrata_core::{CoordinatorConfig, IdSource, RateLimit, StoreSharing};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::tls::TlsConfig;
pub use registry::RegistrySettings;

/// Everything the TC runtime reads, resolved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub limits: Limits,
    pub coordinator: CoordinatorSettings,
    /// Client authentication (off by default).
    pub auth: AuthConfig,
    /// The optional TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Registries this TC registers itself in (none by default).
    #[serde(skip_serializing_if = "RegistrySettings::is_disabled")]
    pub registry: RegistrySettings,
    pub admin: AdminSettings,
}

/// `[admin]`: the HTTP listener for metrics, health probes, the admin API and the console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    pub enabled: bool,
    /// Loopback by default: what it shows is for the operators of this machine.
    pub listen: SocketAddr,
    /// Operators allowed to act (and, once any is set, to read the API); none by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<AdminToken>,
    /// Where a Rust Saga engine serves its pictures (`ferrata_saga::http::router`, e.g.
    /// `http://orders:8080/saga`): the console shows a `$Saga_` transaction's path from
    /// `<url>/instances/<xid>.svg`. Unset: no pictures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saga_pictures: Option<String>,
}

impl AdminSettings {
    /// The origin (`scheme://host:port`) of `saga_pictures`, which the console's content
    /// security policy lets images come from.
    pub fn saga_pictures_origin(&self) -> Option<&str> {
        let url = self.saga_pictures.as_deref()?;
        let after_scheme = url.find("://")? + 3;
        let end = url[after_scheme..]
            .find('/')
            .map_or(url.len(), |i| after_scheme + i);
        Some(&url[..end])
    }
}

/// `[[admin.tokens]]`: an operator's name (written in the audit log) and the SHA-256 of their
/// secret token (`ferrata-server hash-token`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    pub name: String,
    pub sha256: String,
}

impl Default for AdminSettings {
    fn default() -> AdminSettings {
        AdminSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)),
            tokens: Vec::new(),
            saga_pictures: None,
        }
    }
}

/// The admin listener's default port: seata-server's console port.
pub const ADMIN_PORT: u16 = 7091;

/// `[server]`: where clients reach this TC and how it names itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Host put into XIDs (clients route follow-up requests by it); unset = the listen IP, or
    /// 127.0.0.1 when listening on all addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_host: Option<String>,
    /// Snowflake worker id (0 to 1023); nodes sharing a store need distinct ones.
    pub worker_id: u16,
    /// Version string reported to clients in registration responses.
    pub reported_version: String,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], ferrata_core::config::SEATA_PORT)),
            advertise_host: None,
            worker_id: CoordinatorConfig::default().worker_id,
            reported_version: "2.6.0".to_owned(),
        }
    }
}

/// `[store]`: the embedded write-ahead log (the default), or a shared database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// A PostgreSQL or MySQL/MariaDB database in Seata's db-mode schema
    /// (`postgres://user:password@host:port/database`, `mysql://…`); unset = the embedded log
    /// in `data_dir`. `--print-config` shows it with the password redacted.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "url_without_password"
    )]
    pub url: Option<String>,
    /// The PostgreSQL schema or MySQL database inside `url` that holds the tables; unset =
    /// the connection's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Connections to the database.
    pub database_connections: u32,
    /// On a database: how long a node's claim on its transactions (a lease in
    /// `distributed_lock`, renewed every third of it) outlives the node. When it lapses,
    /// another node takes those transactions over; a node cut off from the database for this
    /// long stops.
    pub node_lease_ms: u64,
    pub data_dir: PathBuf,
    /// fsync every group commit (never turn off in production).
    pub fsync: bool,
    /// Start a new segment once the active one is this long.
    pub segment_bytes: u64,
    /// Compact once this much log was written since the last snapshot.
    pub compact_after_bytes: u64,
    /// Prepare each next segment as a zero-filled file in the background, so a group
    /// commit's fsync writes data only (docs/RELIABILITY.md, "Writing").
    pub preallocate: bool,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            url: None,
            schema: None,
            database_connections: 8,
            node_lease_ms: 10_000,
            data_dir: PathBuf::from("data"),
            fsync: true,
            segment_bytes: ferrata_store::DEFAULT_SEGMENT_BYTES,
            compact_after_bytes: ferrata_store::DEFAULT_COMPACT_AFTER_BYTES,
            preallocate: true,
        }
    }
}

/// Characters of application data a column of Seata's db-mode tables holds.
const SEATA_APPLICATION_DATA_CHARS: usize = 2_000;

/// Writes a database URL with its password replaced by `<redacted>`.
fn url_without_password<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let Some(url) = url else {
        return s.serialize_none();
    };
    s.serialize_str(&redact_password(url))
}

/// `scheme://user:password@host/…` → `scheme://user:<redacted>@host/…`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_owned(),
    }
}

/// `[limits]`: what one client can make the server hold (docs/RELIABILITY.md, "Limits").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_connections: usize,
    /// Requests of one connection admitted and not yet answered; more are refused at once.
    pub max_in_flight_per_connection: usize,
    /// Close connections that send nothing (not even a heartbeat) for this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection whose socket accepts no bytes for this long is closed (client not reading).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    pub max_lock_key_bytes: usize,
    pub max_rows_per_branch: usize,
    pub max_branches_per_transaction: usize,
    /// Open global transactions.
    pub max_sessions: usize,
    pub max_application_data_bytes: usize,
    /// Largest timeout a GlobalBegin may ask for.
    #[serde(with = "humantime_serde")]
    pub max_transaction_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        let core = CoordinatorConfig::default();
        Limits {
            max_frame_bytes: ferrata_proto::DEFAULT_MAX_FRAME_LEN,
            max_decompressed_bytes: ferrata_proto::DEFAULT_MAX_DECOMPRESSED_LEN,
            max_connections: 10_000,
            // Java clients share one connection between all threads of an application.
            max_in_flight_per_connection: 4_096,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_lock_key_bytes: core.max_lock_key_bytes,
            max_rows_per_branch: core.max_rows_per_branch,
            max_branches_per_transaction: core.max_branches_per_transaction,
            max_sessions: core.max_sessions,
            max_application_data_bytes: core.application_data_limit.unwrap_or(usize::MAX),
            max_transaction_timeout: from_ms(core.max_transaction_timeout_ms),
        }
    }
}

/// `[coordinator]`: phase 2, its retries, undo-log cleanup and the GlobalBegin rate limit.
/// Every default but `branch_request_timeout` is [`CoordinatorConfig::default`]'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorSettings {
    /// How long to wait for an RM's answer to BranchCommit/BranchRollback.
    #[serde(with = "humantime_serde")]
    pub branch_request_timeout: Duration,
    /// Give up commit retries once a transaction is older than this; `"off"` = retry forever.
    #[serde(with = "duration_or_off")]
    pub max_commit_retry_timeout: Option<Duration>,
    /// Give up rollback retries once a transaction is older than this; `"off"` = retry forever.
    #[serde(with = "duration_or_off")]
    pub max_rollback_retry_timeout: Option<Duration>,
    /// Release the locks of a transaction whose rollback retries timed out.
    pub rollback_retry_timeout_unlock: bool,
    /// Seata's `server.xaerNotaRetryTimeout`: an XA branch whose database no longer knows
    /// its XA id counts as done once the transaction is older than its timeout plus the larger
    /// of this and its timeout.
    #[serde(with = "humantime_serde")]
    pub xaer_nota_retry_timeout: Duration,
    /// First retry of a failed phase 2 after this long; doubled per failed pass.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// Seata's `server.enableParallelHandleBranch`: phase 2 visits the branches of different
    /// resources concurrently (branches of one resource stay in order).
    pub parallel_phase2: bool,
    /// First undo-log cleanup request after start.
    #[serde(with = "humantime_serde")]
    pub undo_log_delete_initial_delay: Duration,
    /// Period of undo-log cleanup requests to AT RMs; `"off"` sends none.
    #[serde(with = "duration_or_off")]
    pub undo_log_delete_period: Option<Duration>,
    /// Days of undo log the RMs keep.
    pub undo_log_save_days: i16,
    /// Seata 2.4's `server.ratelimit.*` token bucket on GlobalBegin; absent = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub begin_rate_limit: Option<BeginRateLimit>,
}

impl Default for CoordinatorSettings {
    fn default() -> CoordinatorSettings {
        let core = CoordinatorConfig::default();
        CoordinatorSettings {
            branch_request_timeout: Duration::from_secs(15),
            max_commit_retry_timeout: core.max_commit_retry_timeout_ms.map(from_ms),
            max_rollback_retry_timeout: core.max_rollback_retry_timeout_ms.map(from_ms),
            rollback_retry_timeout_unlock: core.rollback_retry_timeout_unlock,
            xaer_nota_retry_timeout: from_ms(core.xaer_nota_retry_timeout_ms),
            retry_backoff_initial: from_ms(core.retry_backoff_initial_ms),
            retry_backoff_max: from_ms(core.retry_backoff_max_ms),
            parallel_phase2: core.parallel_phase2,
            undo_log_delete_initial_delay: from_ms(core.undo_log_delete_initial_delay_ms),
            undo_log_delete_period: core.undo_log_delete_period_ms.map(from_ms),
            undo_log_save_days: core.undo_log_save_days,
            begin_rate_limit: core.begin_rate_limit.map(BeginRateLimit::from),
        }
    }
}

/// `[coordinator.begin_rate_limit]`: Seata's `bucketTokenNumPerSecond`, `bucketTokenMaxNum` and
/// `bucketTokenInitialNum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginRateLimit {
    pub tokens_per_second: u32,
    pub max_tokens: u32,
    pub initial_tokens: u32,
}

impl From<RateLimit> for BeginRateLimit {
    fn from(limit: RateLimit) -> BeginRateLimit {
        BeginRateLimit {
            tokens_per_second: limit.tokens_per_second,
            max_tokens: limit.max_tokens,
            initial_tokens: limit.initial_tokens,
        }
    }
}

impl From<BeginRateLimit> for RateLimit {
    fn from(limit: BeginRateLimit) -> RateLimit {
        RateLimit {
            tokens_per_second: limit.tokens_per_second,
            max_tokens: limit.max_tokens,
            initial_tokens: limit.initial_tokens,
        }
    }
}

/// A configuration that cannot be loaded or cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag does not fit the configuration's shape.
    #[error("invalid configuration: {0}")]
    Load(String),
    #[error("{key} = {value} is out of range: use {allowed}")]
    OutOfRange {
        key: &'static str,
        value: String,
        allowed: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Command-line flags. The file is `--config` or `FERRATA_CONFIG`; any key can also be set by
/// `FERRATA_<SECTION>__<KEY>` (e.g. `FERRATA_LIMITS__MAX_SESSIONS=5000`).
#[derive(Debug, Parser, Default)]
#[command(
    name = "ferrata-server",
    version,
    about = "Seata-compatible transaction coordinator",
    after_help = "Precedence: flags > FERRATA_<TABLE>__<KEY> > FERRATA_LISTEN-style short \
                  variables > --config file > defaults. --print-config shows the result (with no \
                  file and no variables: the defaults)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// TOML configuration file.
    #[arg(long, env = "FERRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// server.listen: address for Seata clients.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// server.advertise_host: host written into XIDs.
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// store.data_dir: directory of the embedded write-ahead log.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// store.url: a PostgreSQL or MySQL/MariaDB database in Seata's db-mode schema instead of
    /// the embedded log (`postgres://user:password@host:port/db`, `mysql://…`).
    #[arg(long)]
    pub store_url: Option<String>,
    /// store.schema: the schema (PostgreSQL) or database (MySQL) inside store.url.
    #[arg(long)]
    pub store_schema: Option<String>,
    /// store.fsync: fsync each group commit; false loses acknowledged decisions on power loss.
    #[arg(long)]
    pub fsync: Option<bool>,
    /// server.worker_id: Snowflake worker id, 0 to 1023.
    #[arg(long)]
    pub worker_id: Option<u16>,
    /// limits.idle_timeout: silence after which a client connection is closed.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// coordinator.branch_request_timeout: wait for an RM's phase-2 answer.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub branch_request_timeout: Option<Duration>,
    /// limits.max_connections: concurrent client connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// limits.max_sessions: open global transactions.
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// admin.listen: address of the metrics and health endpoints (port 0: any free port).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Repair a session log that refuses to open (damage before its tail): keep every intact
    /// record, move the damaged files aside, print what was dropped, and exit.
    #[arg(long)]
    pub repair: bool,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// What the binary does instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum CliCommand {
    /// Load and check the configuration (values, TLS files, the data directory) without
    /// starting; prints a summary, exits non-zero with the reason when something is wrong.
    CheckConfig,
    /// Read an admin token from standard input and print the `[[admin.tokens]]` entry that
    /// lets its holder use the admin API (only the token's SHA-256 goes into the file).
    HashToken {
        /// The operator's name, written in the audit log with each action.
        #[arg(long)]
        name: String,
    },
}

/// The tables of the configuration; `FERRATA_<TABLE>__<KEY>` variables set their keys.
const TABLES: [&str; 8] = [
    "server",
    "store",
    "limits",
    "coordinator",
    "auth",
    "tls",
    "registry",
    "admin",
];

/// The short variables of earlier versions (`FERRATA_LISTEN`, ...) and the keys they set.
const SHORT_VARIABLES: [(&str, &str); 7] = [
    ("listen", "server.listen"),
    ("advertise_host", "server.advertise_host"),
    ("worker_id", "server.worker_id"),
    ("data_dir", "store.data_dir"),
    ("fsync", "store.fsync"),
    ("max_connections", "limits.max_connections"),
    ("max_sessions", "limits.max_sessions"),
];

impl Config {
    /// The layers of the configuration, lowest precedence first (not yet extracted).
    pub fn figment(cli: &Cli) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &cli.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        let short = Env::prefixed("FERRATA_").filter_map(|key| {
            SHORT_VARIABLES
                .iter()
                .find(|(short, _)| key.as_str().eq_ignore_ascii_case(short))
                .map(|(_, nested)| (*nested).into())
        });
        // Other FERRATA_* variables (FERRATA_LOG, test settings) are not configuration keys.
        let nested = Env::prefixed("FERRATA_")
            .filter(|key| {
                key.as_str()
                    .split_once("__")
                    .is_some_and(|(table, _)| TABLES.iter().any(|t| table.eq_ignore_ascii_case(t)))
            })
            .split("__");
        let duration = |d: Option<Duration>| d.map(|d| humantime::format_duration(d).to_string());
        let figment = figment.merge(short).merge(nested);
        let figment = flag(figment, "server.listen", cli.listen);
        let figment = flag(
            figment,
            "server.advertise_host",
            cli.advertise_host.as_ref(),
        );
        let figment = flag(figment, "server.worker_id", cli.worker_id);
        let figment = flag(figment, "store.data_dir", cli.data_dir.as_ref());
        let figment = flag(figment, "store.fsync", cli.fsync);
        let figment = flag(figment, "store.url", cli.store_url.as_ref());
        let figment = flag(figment, "store.schema", cli.store_schema.as_ref());
        let figment = flag(figment, "limits.idle_timeout", duration(cli.idle_timeout));
        let figment = flag(figment, "limits.max_connections", cli.max_connections);
        let figment = flag(figment, "limits.max_sessions", cli.max_sessions);
        let figment = flag(figment, "admin.listen", cli.admin_listen);
        flag(
            figment,
            "coordinator.branch_request_timeout",
            duration(cli.branch_request_timeout),
        )
    }

    /// Resolves the layers of [`Config::figment`] and validates the result.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        if let Some(path) = &cli.config
            && let Err(error) = std::fs::metadata(path)
        {
            return Err(ConfigError::Load(format!(
                "cannot read the configuration file {}: {error}",
                path.display()
            )));
        }
        let config: Config = Config::figment(cli).extract().map_err(|error| {
            let all: Vec<String> = error.into_iter().map(with_rename_hint).collect();
            ConfigError::Load(all.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings that cannot work, naming the key and what it may be.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (limits, coordinator) = (&self.limits, &self.coordinator);
        within(
            "server.worker_id",
            self.server.worker_id,
            self.server.worker_id <= 1023,
            "0 to 1023",
        )?;
        if let Some(url) = &self.admin.saga_pictures {
            // Spliced into the console's content security policy and into image addresses.
            let plain = url.len() <= 512
                && url.chars().all(|c| c.is_ascii_graphic())
                && !url.contains(['\'', '"', ';', ',', '<', '>', '?', '#']);
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            let host_ok = self
                .admin
                .saga_pictures_origin()
                .is_some_and(|origin| origin.len() > url.find("://").unwrap_or(0) + 3);
            if !(plain && scheme_ok && host_ok) {
                return Err(ConfigError::Invalid {
                    key: "admin.saga_pictures",
                    message: format!(
                        "{url:?} is not a plain http(s) URL such as http://orders:8080/saga \
                         (no query, fragment, quotes or spaces)"
                    ),
                });
            }
        }
        if let Some(url) = &self.store.url {
            let scheme = url.split("://").next().unwrap_or_default();
            if !["postgres", "postgresql", "mysql", "mariadb"].contains(&scheme)
                || !url.contains("://")
            {
                return Err(ConfigError::Invalid {
                    key: "store.url",
                    message: format!(
                        "{} is not a database URL: use postgres://user:password@host:port/database \
                         or mysql://… (MariaDB too), or leave store.url unset for the embedded log",
                        redact_password(url)
                    ),
                });
            }
        }
        if self.store.url.is_some()
            && self.server.listen.ip().is_unspecified()
            && self
                .server
                .advertise_host
                .as_deref()
                .is_none_or(str::is_empty)
        {
            return Err(ConfigError::Invalid {
                key: "server.advertise_host",
                message: format!(
                    "with store.url set, nodes share one database and each XID names the node \
                     that began it: set server.advertise_host to this node's own address \
                     (listening on {} would make every node 127.0.0.1:{})",
                    self.server.listen,
                    self.server.listen.port()
                ),
            });
        }
        crate::admin::operators::Operators::new(&self.admin.tokens)?;
        if self.admin.enabled
            && !self.admin.listen.ip().is_loopback()
            && self.admin.tokens.is_empty()
        {
            return Err(ConfigError::Invalid {
                key: "admin.listen",
                message: format!(
                    "{} is reachable from other machines, but no [[admin.tokens]] is set: add                      one (ferrata-server hash-token) or listen on 127.0.0.1",
                    self.admin.listen
                ),
            });
        }
        within(
            "store.database_connections",
            self.store.database_connections,
            (1..=256).contains(&self.store.database_connections),
            "1 to 256",
        )?;
        within(
            "store.node_lease_ms",
            self.store.node_lease_ms,
            (300..=600_000).contains(&self.store.node_lease_ms),
            "300 to 600000",
        )?;
        for (key, value) in [
            ("store.segment_bytes", self.store.segment_bytes),
            ("store.compact_after_bytes", self.store.compact_after_bytes),
        ] {
            within(key, value, value >= 1, "at least 1")?;
        }
        for (key, value) in [
            ("limits.max_frame_bytes", limits.max_frame_bytes),
            (
                "limits.max_decompressed_bytes",
                limits.max_decompressed_bytes,
            ),
            ("limits.max_connections", limits.max_connections),
            (
                "limits.max_in_flight_per_connection",
                limits.max_in_flight_per_connection,
            ),
            ("limits.max_lock_key_bytes", limits.max_lock_key_bytes),
            ("limits.max_rows_per_branch", limits.max_rows_per_branch),
            (
                "limits.max_branches_per_transaction",
                limits.max_branches_per_transaction,
            ),
            ("limits.max_sessions", limits.max_sessions),
        ] {
            within(key, value, value >= 1, "at least 1")?;
        }
        for (key, value) in [
            ("limits.idle_timeout", Some(limits.idle_timeout)),
            ("limits.write_timeout", Some(limits.write_timeout)),
            (
                "limits.max_transaction_timeout",
                Some(limits.max_transaction_timeout),
            ),
            (
                "coordinator.branch_request_timeout",
                Some(coordinator.branch_request_timeout),
            ),
            (
                "coordinator.retry_backoff_initial",
                Some(coordinator.retry_backoff_initial),
            ),
            (
                "coordinator.max_commit_retry_timeout",
                coordinator.max_commit_retry_timeout,
            ),
            (
                "coordinator.max_rollback_retry_timeout",
                coordinator.max_rollback_retry_timeout,
            ),
            (
                "coordinator.undo_log_delete_period",
                coordinator.undo_log_delete_period,
            ),
        ] {
            if let Some(value) = value {
                within(
                    key,
                    quoted(value),
                    value >= Duration::from_millis(1),
                    "at least \"1ms\"",
                )?;
            }
        }
        within(
            "coordinator.retry_backoff_max",
            quoted(coordinator.retry_backoff_max),
            coordinator.retry_backoff_max >= coordinator.retry_backoff_initial,
            format!(
                "at least coordinator.retry_backoff_initial ({})",
                quoted(coordinator.retry_backoff_initial)
            ),
        )?;
        within(
            "coordinator.undo_log_save_days",
            coordinator.undo_log_save_days,
            coordinator.undo_log_save_days >= 1,
            "at least 1",
        )?;
        if let Some(rate) = coordinator.begin_rate_limit {
            for (key, value) in [
                (
                    "coordinator.begin_rate_limit.tokens_per_second",
                    rate.tokens_per_second,
                ),
                ("coordinator.begin_rate_limit.max_tokens", rate.max_tokens),
            ] {
                within(key, value, value >= 1, "at least 1")?;
            }
        }
        self.auth.validate().map_err(|error| ConfigError::Invalid {
            key: "auth",
            message: format!("{error:#}"),
        })?;
        self.registry.validate()
    }

    /// The effective configuration as TOML, secrets redacted (`--print-config`).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// The host written into XIDs for a server bound to `bound`.
    pub fn xid_host(&self, bound: SocketAddr) -> String {
        match &self.server.advertise_host {
            Some(host) if !host.is_empty() => host.clone(),
            _ if bound.ip().is_unspecified() => "127.0.0.1".to_owned(),
            _ => bound.ip().to_string(),
        }
    }

    /// The coordinator core's settings; XIDs are `{xid_prefix}:{transactionId}`.
    pub fn coordinator_config(&self, xid_prefix: String) -> CoordinatorConfig {
        let (limits, coordinator) = (&self.limits, &self.coordinator);
        CoordinatorConfig {
            xid_prefix,
            // Nodes on a shared database take id ranges from it: no worker id to set apart.
            id_source: match self.store.url {
                Some(_) => IdSource::StoreRanges,
                None => IdSource::Snowflake,
            },
            store_sharing: match self.store.url {
                Some(_) => StoreSharing::Shared,
                None => StoreSharing::Exclusive,
            },
            worker_id: self.server.worker_id,
            max_commit_retry_timeout_ms: coordinator.max_commit_retry_timeout.map(to_ms),
            max_rollback_retry_timeout_ms: coordinator.max_rollback_retry_timeout.map(to_ms),
            retry_backoff_initial_ms: to_ms(coordinator.retry_backoff_initial),
            retry_backoff_max_ms: to_ms(coordinator.retry_backoff_max),
            rollback_retry_timeout_unlock: coordinator.rollback_retry_timeout_unlock,
            xaer_nota_retry_timeout_ms: to_ms(coordinator.xaer_nota_retry_timeout),
            // Seata's tables hold 2,000 characters of application data: on a database, a
            // longer report is refused before it changes anything.
            application_data_limit: Some(match self.store.url {
                Some(_) => limits
                    .max_application_data_bytes
                    .min(SEATA_APPLICATION_DATA_CHARS),
                None => limits.max_application_data_bytes,
            }),
            max_lock_key_bytes: limits.max_lock_key_bytes,
            max_rows_per_branch: limits.max_rows_per_branch,
            max_branches_per_transaction: limits.max_branches_per_transaction,
            max_sessions: limits.max_sessions,
            max_transaction_timeout_ms: to_ms(limits.max_transaction_timeout),
            begin_rate_limit: coordinator.begin_rate_limit.map(RateLimit::from),
            parallel_phase2: coordinator.parallel_phase2,
            undo_log_delete_initial_delay_ms: to_ms(coordinator.undo_log_delete_initial_delay),
            undo_log_delete_period_ms: coordinator.undo_log_delete_period.map(to_ms),
            undo_log_save_days: coordinator.undo_log_save_days,
        }
    }
}

/// Keys of earlier versions and what replaced them.
const RENAMED: [(&str, &str); 13] = [
    ("auth.timestamp_window_ms", "auth.timestamp_window"),
    ("limits.idle_timeout_secs", "limits.idle_timeout"),
    (
        "limits.branch_request_timeout_secs",
        "coordinator.branch_request_timeout",
    ),
    ("limits.write_timeout_ms", "limits.write_timeout"),
    (
        "limits.max_transaction_timeout_ms",
        "limits.max_transaction_timeout",
    ),
    (
        "server.enable_parallel_handle_branch",
        "coordinator.parallel_phase2",
    ),
    (
        "recovery.max_commit_retry_timeout_ms",
        "coordinator.max_commit_retry_timeout (\"off\" for -1)",
    ),
    (
        "recovery.max_rollback_retry_timeout_ms",
        "coordinator.max_rollback_retry_timeout (\"off\" for -1)",
    ),
    (
        "recovery.retry_backoff_initial_ms",
        "coordinator.retry_backoff_initial",
    ),
    (
        "recovery.retry_backoff_max_ms",
        "coordinator.retry_backoff_max",
    ),
    (
        "recovery.undo_log_delete_period_ms",
        "coordinator.undo_log_delete_period (\"off\" for -1)",
    ),
    (
        "recovery.undo_log_save_days",
        "coordinator.undo_log_save_days",
    ),
    (
        "ratelimit",
        "[coordinator.begin_rate_limit] with tokens_per_second, max_tokens and initial_tokens \
         (present = on)",
    ),
];

/// A load error's text, telling where a key of an earlier version went.
fn with_rename_hint(error: figment::Error) -> String {
    let key = error.path.join(".");
    let renamed: Vec<String> = RENAMED
        .iter()
        .filter(|(old, _)| !key.is_empty() && (*old == key || old.starts_with(&format!("{key}."))))
        .map(|(old, new)| format!("{old} is now {new}"))
        .collect();
    if renamed.is_empty() {
        return error.to_string();
    }
    format!(
        "{error} ({}; durations are strings with units, e.g. \"500ms\", \"30s\", \"1day\")",
        renamed.join(", ")
    )
}

/// `figment` with `key` set to the flag's value when the flag was given (an unset flag must
/// not hide the layers below it).
fn flag<T: Serialize>(figment: Figment, key: &str, value: Option<T>) -> Figment {
    match value {
        Some(value) => figment.merge(Serialized::default(key, value)),
        None => figment,
    }
}

fn within(
    key: &'static str,
    value: impl Display,
    ok: bool,
    allowed: impl Into<String>,
) -> Result<(), ConfigError> {
    if ok {
        return Ok(());
    }
    Err(ConfigError::OutOfRange {
        key,
        value: value.to_string(),
        allowed: allowed.into(),
    })
}

fn quoted(duration: Duration) -> String {
    format!("\"{}\"", humantime::format_duration(duration))
}

fn from_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn to_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A duration written like `"30s"` or `"1day 2h"`, or `"off"` for none.
mod duration_or_off {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    const OFF: &str = "off";

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_str(OFF),
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == OFF {
            return Ok(None);
        }
        humantime::parse_duration(&text).map(Some).map_err(|error| {
            D::Error::custom(format!(
                "{text:?} is not a duration ({error}): write e.g. \"30s\", \"10min\" or \"off\""
            ))
        })
    }
}

pub mod registry;

#[cfg(test)]
mod tests;
