//! Server configuration: defaults, an optional TOML file, `FERRATA_*` environment variables
//! and command-line flags, in increasing order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferrata_core::RateLimit;
use ferrata_core::config as core_limits;
use serde::Deserialize;

/// Everything the TC runtime needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Host put into XIDs; clients route follow-up requests by it.
    pub advertise_host: String,
    pub data_dir: PathBuf,
    /// fsync every group commit (never turn off in production).
    pub fsync: bool,
    pub worker_id: u16,
    pub max_frame_len: usize,
    pub max_decompressed_len: usize,
    pub max_connections: usize,
    /// Requests of one connection admitted and not yet answered; more are refused at once.
    pub max_in_flight_per_connection: usize,
    /// A connection whose socket accepts no bytes for this long is closed (client not reading).
    pub write_timeout: Duration,
    pub max_lock_key_bytes: usize,
    pub max_rows_per_branch: usize,
    pub max_branches_per_transaction: usize,
    pub max_sessions: usize,
    pub max_application_data_bytes: usize,
    pub max_transaction_timeout_ms: i64,
    /// Seata 2.4's `server.ratelimit.*` token bucket on GlobalBegin; `None` = off.
    pub begin_rate_limit: Option<RateLimit>,
    /// Seata's `server.enableParallelHandleBranch`.
    pub parallel_phase2: bool,
    /// Close connections that send nothing (not even a heartbeat) for this long.
    pub idle_timeout: Duration,
    /// How long to wait for an RM's answer to BranchCommit/BranchRollback.
    pub branch_request_timeout: Duration,
    pub max_commit_retry_timeout_ms: i64,
    pub max_rollback_retry_timeout_ms: i64,
    pub retry_backoff_initial_ms: i64,
    pub retry_backoff_max_ms: i64,
    pub undo_log_delete_period_ms: i64,
    pub undo_log_save_days: i16,
    pub segment_bytes: u64,
    pub compact_after_bytes: u64,
    /// Prepare each next log segment as a zero-filled file in the background, so a group
    /// commit's fsync writes data only (`[store] preallocate`, on by default).
    pub preallocate_segments: bool,
    /// Version string reported to clients in registration responses.
    pub reported_version: String,
    /// Client authentication (`[auth]`, off by default).
    pub auth: crate::auth::AuthConfig,
    /// The optional TLS listener (`[tls]`).
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8091)),
            advertise_host: String::new(),
            data_dir: PathBuf::from("data"),
            fsync: true,
            worker_id: 0,
            max_frame_len: ferrata_proto::DEFAULT_MAX_FRAME_LEN,
            max_decompressed_len: ferrata_proto::DEFAULT_MAX_DECOMPRESSED_LEN,
            max_connections: 10_000,
            max_in_flight_per_connection: DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            write_timeout: Duration::from_secs(10),
            max_lock_key_bytes: core_limits::DEFAULT_MAX_LOCK_KEY_BYTES,
            max_rows_per_branch: core_limits::DEFAULT_MAX_ROWS_PER_BRANCH,
            max_branches_per_transaction: core_limits::DEFAULT_MAX_BRANCHES_PER_TRANSACTION,
            max_sessions: core_limits::DEFAULT_MAX_SESSIONS,
            max_application_data_bytes: core_limits::DEFAULT_APPLICATION_DATA_LIMIT,
            max_transaction_timeout_ms: core_limits::DEFAULT_MAX_TRANSACTION_TIMEOUT_MS,
            begin_rate_limit: None,
            parallel_phase2: false,
            idle_timeout: Duration::from_secs(30),
            branch_request_timeout: Duration::from_secs(15),
            max_commit_retry_timeout_ms: -1,
            max_rollback_retry_timeout_ms: -1,
            retry_backoff_initial_ms: 1_000,
            retry_backoff_max_ms: 30_000,
            undo_log_delete_period_ms: 86_400_000,
            undo_log_save_days: 7,
            segment_bytes: 64 * 1024 * 1024,
            compact_after_bytes: 256 * 1024 * 1024,
            preallocate_segments: true,
            reported_version: "2.6.0".to_owned(),
            auth: crate::auth::AuthConfig::default(),
            tls: None,
        }
    }
}

/// Requests one connection may have admitted and unanswered (Java clients share one
/// connection between all threads of an application).
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 4_096;

/// Command-line flags; each also reads a `FERRATA_*` environment variable.
#[derive(Debug, Parser, Default)]
#[command(
    name = "ferrata-server",
    version,
    about = "Seata-compatible transaction coordinator"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "FERRATA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on for Seata clients [default: 0.0.0.0:8091].
    #[arg(long, env = "FERRATA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Host written into XIDs [default: the listen IP, or 127.0.0.1 when listening on all].
    #[arg(long, env = "FERRATA_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Directory of the embedded write-ahead log [default: ./data].
    #[arg(long, env = "FERRATA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// fsync each group commit [default: true]. Turning it off loses acknowledged decisions on power loss.
    #[arg(long, env = "FERRATA_FSYNC")]
    pub fsync: Option<bool>,
    /// Snowflake worker id (0-1023) [default: 0].
    #[arg(long, env = "FERRATA_WORKER_ID")]
    pub worker_id: Option<u16>,
    /// Seconds of silence after which a client connection is closed [default: 30].
    #[arg(long, env = "FERRATA_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds to wait for an RM's phase-2 answer [default: 15].
    #[arg(long, env = "FERRATA_BRANCH_REQUEST_TIMEOUT_SECS")]
    pub branch_request_timeout_secs: Option<u64>,
    /// Maximum concurrent client connections [default: 10000].
    #[arg(long, env = "FERRATA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Repair a session log that refuses to open (damage before its tail): keep every intact
    /// record, move the damaged files aside, print what was dropped, and exit.
    #[arg(long)]
    pub repair: bool,
    /// Maximum open global transactions [default: 1000000].
    #[arg(long, env = "FERRATA_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,
}

/// The `[server]`, `[store]`, `[limits]`, `[recovery]`, `[ratelimit]`, `[auth]` and `[tls]`
/// tables of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    recovery: RecoverySection,
    #[serde(default)]
    ratelimit: RateLimitSection,
    #[serde(default)]
    auth: crate::auth::AuthConfig,
    tls: Option<crate::tls::TlsConfig>,
}

/// Seata's `server.ratelimit.*` keys, in snake case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    enable: Option<bool>,
    bucket_token_num_per_second: Option<u32>,
    bucket_token_max_num: Option<u32>,
    bucket_token_initial_num: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<SocketAddr>,
    advertise_host: Option<String>,
    worker_id: Option<u16>,
    reported_version: Option<String>,
    enable_parallel_handle_branch: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    data_dir: Option<PathBuf>,
    fsync: Option<bool>,
    segment_bytes: Option<u64>,
    compact_after_bytes: Option<u64>,
    preallocate: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_frame_bytes: Option<usize>,
    max_decompressed_bytes: Option<usize>,
    max_connections: Option<usize>,
    idle_timeout_secs: Option<u64>,
    branch_request_timeout_secs: Option<u64>,
    max_in_flight_per_connection: Option<usize>,
    write_timeout_ms: Option<u64>,
    max_lock_key_bytes: Option<usize>,
    max_rows_per_branch: Option<usize>,
    max_branches_per_transaction: Option<usize>,
    max_sessions: Option<usize>,
    max_application_data_bytes: Option<usize>,
    max_transaction_timeout_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverySection {
    max_commit_retry_timeout_ms: Option<i64>,
    max_rollback_retry_timeout_ms: Option<i64>,
    retry_backoff_initial_ms: Option<i64>,
    retry_backoff_max_ms: Option<i64>,
    undo_log_delete_period_ms: Option<i64>,
    undo_log_save_days: Option<i16>,
}

impl ServerConfig {
    /// Resolves defaults < file < environment/flags.
    pub fn resolve(cli: Cli) -> anyhow::Result<ServerConfig> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read configuration file {}", path.display())
                })?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid configuration file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut c = ServerConfig::default();
        let secs = Duration::from_secs;
        macro_rules! set {
            ($field:expr, $($value:expr),+) => { $( if let Some(v) = $value { $field = v; } )+ };
        }
        set!(c.listen, file.server.listen, cli.listen);
        set!(
            c.advertise_host,
            file.server.advertise_host,
            cli.advertise_host
        );
        set!(c.worker_id, file.server.worker_id, cli.worker_id);
        set!(c.reported_version, file.server.reported_version);
        set!(c.data_dir, file.store.data_dir, cli.data_dir);
        set!(c.fsync, file.store.fsync, cli.fsync);
        set!(c.segment_bytes, file.store.segment_bytes);
        set!(c.compact_after_bytes, file.store.compact_after_bytes);
        set!(c.preallocate_segments, file.store.preallocate);
        set!(c.max_frame_len, file.limits.max_frame_bytes);
        set!(c.max_decompressed_len, file.limits.max_decompressed_bytes);
        set!(
            c.max_connections,
            file.limits.max_connections,
            cli.max_connections
        );
        set!(
            c.idle_timeout,
            file.limits.idle_timeout_secs.map(secs),
            cli.idle_timeout_secs.map(secs)
        );
        set!(
            c.branch_request_timeout,
            file.limits.branch_request_timeout_secs.map(secs),
            cli.branch_request_timeout_secs.map(secs)
        );
        set!(
            c.max_commit_retry_timeout_ms,
            file.recovery.max_commit_retry_timeout_ms
        );
        set!(
            c.max_rollback_retry_timeout_ms,
            file.recovery.max_rollback_retry_timeout_ms
        );
        set!(
            c.retry_backoff_initial_ms,
            file.recovery.retry_backoff_initial_ms
        );
        set!(c.retry_backoff_max_ms, file.recovery.retry_backoff_max_ms);
        set!(
            c.undo_log_delete_period_ms,
            file.recovery.undo_log_delete_period_ms
        );
        set!(c.undo_log_save_days, file.recovery.undo_log_save_days);
        set!(c.parallel_phase2, file.server.enable_parallel_handle_branch);
        set!(
            c.max_in_flight_per_connection,
            file.limits.max_in_flight_per_connection
        );
        set!(
            c.write_timeout,
            file.limits.write_timeout_ms.map(Duration::from_millis)
        );
        set!(c.max_lock_key_bytes, file.limits.max_lock_key_bytes);
        set!(c.max_rows_per_branch, file.limits.max_rows_per_branch);
        set!(
            c.max_branches_per_transaction,
            file.limits.max_branches_per_transaction
        );
        set!(c.max_sessions, file.limits.max_sessions, cli.max_sessions);
        set!(
            c.max_application_data_bytes,
            file.limits.max_application_data_bytes
        );
        set!(
            c.max_transaction_timeout_ms,
            file.limits.max_transaction_timeout_ms
        );
        let rate = &file.ratelimit;
        if rate.enable == Some(true) {
            // Seata's defaults for unset bucket sizes are "unlimited" (Integer.MAX_VALUE).
            c.begin_rate_limit = Some(RateLimit {
                tokens_per_second: rate.bucket_token_num_per_second.unwrap_or(u32::MAX),
                max_tokens: rate.bucket_token_max_num.unwrap_or(u32::MAX),
                initial_tokens: rate.bucket_token_initial_num.unwrap_or(u32::MAX),
            });
        }
        for (name, value) in [
            (
                "limits.max_in_flight_per_connection",
                c.max_in_flight_per_connection,
            ),
            ("limits.max_sessions", c.max_sessions),
            ("limits.max_connections", c.max_connections),
        ] {
            if value == 0 {
                anyhow::bail!("{name} must be at least 1");
            }
        }
        if c.write_timeout.is_zero() {
            anyhow::bail!("limits.write_timeout_ms must be at least 1");
        }
        c.auth = file.auth;
        c.auth.validate()?;
        c.tls = file.tls;
        if c.worker_id > 1023 {
            anyhow::bail!("worker_id {} is out of range: use 0 to 1023", c.worker_id);
        }
        Ok(c)
    }

    /// The host written into XIDs for a server bound to `bound`.
    pub fn xid_host(&self, bound: SocketAddr) -> String {
        if !self.advertise_host.is_empty() {
            self.advertise_host.clone()
        } else if bound.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            bound.ip().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ferrata.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[store]\ndata_dir = \"/tmp/x\"\n[limits]\nidle_timeout_secs = 5\n",
        )
        .expect("write config");
        let cli = Cli {
            config: Some(path),
            data_dir: Some(PathBuf::from("/tmp/y")),
            ..Cli::default()
        };
        let config = ServerConfig::resolve(cli).expect("valid config");
        assert_eq!(config.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(config.idle_timeout, Duration::from_secs(5));
        assert!(config.fsync);
    }

    #[test]
    fn auth_and_tls_tables() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ferrata.toml");
        std::fs::write(
            &path,
            "[auth]\nenabled = true\ntimestamp_window_ms = 1000\n\
             [[auth.keys]]\napplication_id = \"orders\"\naccess_key = \"AK\"\nsecret_key = \"SK\"\n\
             [tls]\nlisten = \"127.0.0.1:8092\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .expect("write config");
        let config = ServerConfig::resolve(Cli {
            config: Some(path.clone()),
            ..Cli::default()
        })
        .expect("valid config");
        assert!(config.auth.enabled);
        assert_eq!(config.auth.timestamp_window_ms, 1000);
        assert_eq!(config.auth.keys.len(), 1);
        let tls = config.tls.expect("tls table");
        assert_eq!(tls.listen, "127.0.0.1:8092".parse().expect("addr"));
        assert!(tls.client_ca.is_none());

        std::fs::write(&path, "[auth]\nenabled = true\n").expect("write config");
        let error = ServerConfig::resolve(Cli {
            config: Some(path),
            ..Cli::default()
        })
        .expect_err("auth without keys");
        assert!(format!("{error:#}").contains("auth.keys"), "{error:#}");
        let defaults = ServerConfig::default();
        assert!(!defaults.auth.enabled && defaults.tls.is_none());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ferrata.toml");
        std::fs::write(&path, "[store]\nfsynk = false\n").expect("write config");
        let error = ServerConfig::resolve(Cli {
            config: Some(path),
            ..Cli::default()
        })
        .expect_err("typo");
        assert!(format!("{error:#}").contains("fsynk"), "{error:#}");
    }
}
