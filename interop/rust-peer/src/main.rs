//! `ferrata-interop-peer`: the Rust side of the mixed-language interop tests
//! (`interop/java`, `MixedLanguageTest`), where the official Seata Java client and the Rust SDK
//! take part in the same global transactions through one TC.
//!
//! ```text
//! ferrata-interop-peer participant --tc 127.0.0.1:8091 --listen 127.0.0.1:9000
//!     TCC participant "rust-tcc-action" behind HTTP: POST /try (TX_XID header) runs the try,
//!     GET /calls lists the confirm/cancel calls the TC delivered.
//! ferrata-interop-peer tm --tc 127.0.0.1:8091 --participant-url http://127.0.0.1:9001/try \
//!     --outcome commit|rollback
//!     Begins a global transaction, POSTs to the participant with TX_XID, commits or rolls
//!     back, and prints one JSON line: {"xid", "outcome", "status", "tc_status", ...}.
//! ferrata-interop-peer at --tc 127.0.0.1:8091 --db-url mysql://u:p@127.0.0.1:3306/db \
//!     [--resource-id ID] [--undo-table undo_log] [--lock-retry-interval-ms 10] [--lock-retry-times 30]
//!     AT resource manager (ferrata-at) driven by JSON lines on stdin: runs SQL as a branch of
//!     a given XID, begins/commits/rolls back global transactions as a TM, queries global
//!     locks, and answers phase two until `quit` or end of input (see `at.rs`).
//! ferrata-interop-peer xa --tc 127.0.0.1:8091 --db-url postgres://u:p@127.0.0.1:5432/db \
//!     --resource-id jdbc:postgresql://127.0.0.1:5432/db
//!     XA resource manager (ferrata-xa) driven by JSON lines on stdin: runs SQL as a prepared
//!     XA branch of a given XID and answers phase two until `quit` (see `xa.rs`).
//! ferrata-interop-peer saga --tc 127.0.0.1:8091 --db-url mysql://u:p@127.0.0.1:3306/db \
//!     --java-url http://127.0.0.1:9001/try --outcome commit|compensate --business-key KEY
//!     One Saga (ferrata-saga, tables `peer_saga_*`) whose first step POSTs to a Java TCC
//!     participant under the saga's XID and whose Rust step succeeds or fails and is
//!     compensated; prints one JSON line (see `saga.rs`).
//! ```
//!
//! Logs go to stderr (`RUST_LOG`, default `info`); stdout carries only the tm and saga modes'
//! reports and the at and xa modes' answers.

mod at;
mod participant;
mod saga;
mod tm;
mod xa;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ferrata::ClientConfig;
use tracing_subscriber::EnvFilter;

/// Both roles a Rust service plays in the mixed-language scenarios.
#[derive(Debug, Parser)]
#[command(name = "ferrata-interop-peer", version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve the TCC participant "rust-tcc-action" over HTTP until SIGTERM or Ctrl-C.
    Participant {
        /// TC address, host:port.
        #[arg(long)]
        tc: String,
        /// Address the HTTP server listens on (use a loopback address).
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Run one global transaction that calls a participant over HTTP, then print a JSON report.
    Tm {
        /// TC address, host:port.
        #[arg(long)]
        tc: String,
        /// The participant's try endpoint; it is POSTed to with the TX_XID header.
        #[arg(long)]
        participant_url: String,
        /// How the transaction ends once the participant answered.
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// Request body sent to the participant (it keeps it in its action context).
        #[arg(long, default_value = "rust-tm")]
        probe: String,
        /// Upper bound for the whole run, in seconds.
        #[arg(long, default_value_t = 60)]
        deadline_secs: u64,
    },
    /// Serve an AT resource (ferrata-at) driven by JSON lines on stdin until `quit` or EOF.
    At {
        /// TC address, host:port.
        #[arg(long)]
        tc: String,
        /// Database URL: mysql://… (MariaDB too) or postgres://….
        #[arg(long)]
        db_url: String,
        /// Resource id registered with the TC; default: the JDBC URL Java would report.
        #[arg(long)]
        resource_id: Option<String>,
        /// Undo-log table (Seata's client.undo.logTable).
        #[arg(long, default_value = "undo_log")]
        undo_table: String,
        /// Upper bound of one stdin command, in seconds.
        #[arg(long, default_value_t = 60)]
        command_timeout_secs: u64,
        /// Pause between global lock attempts (Seata's client.rm.lock.retryInterval).
        #[arg(long, default_value_t = 10)]
        lock_retry_interval_ms: u64,
        /// Global lock attempts after the first (Seata's client.rm.lock.retryTimes).
        #[arg(long, default_value_t = 30)]
        lock_retry_times: u32,
    },
    /// Serve an XA resource (ferrata-xa) driven by JSON lines on stdin until `quit` or EOF.
    Xa {
        /// TC address, host:port.
        #[arg(long)]
        tc: String,
        /// Database URL: mysql://… (MariaDB too) or postgres://….
        #[arg(long)]
        db_url: String,
        /// Resource id registered with the TC (Java's: the JDBC URL).
        #[arg(long)]
        resource_id: String,
        /// Upper bound of one stdin command, in seconds.
        #[arg(long, default_value_t = 60)]
        command_timeout_secs: u64,
    },
    /// Run one Saga whose first step calls a Java TCC participant over HTTP, then print a JSON
    /// report.
    Saga {
        /// TC address, host:port.
        #[arg(long)]
        tc: String,
        /// Database of the saga tables: mysql://… (MariaDB too) or postgres://….
        #[arg(long)]
        db_url: String,
        /// The Java participant's try endpoint; it is POSTed to with the TX_XID header.
        #[arg(long)]
        java_url: String,
        /// Whether the Rust step succeeds (commit) or fails and is compensated (compensate).
        #[arg(long, value_enum)]
        outcome: saga::SagaEnd,
        /// The instance's business key (unique per tenant in the saga tables).
        #[arg(long)]
        business_key: String,
        /// The saga's global transaction timeout, which also bounds the whole run, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

/// The end of the global transaction the tm mode asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Outcome {
    /// The scoped closure returns `Ok`: the SDK commits.
    Commit,
    /// The scoped closure returns `Err`: the SDK rolls back.
    Rollback,
}

impl Outcome {
    /// The name used in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Commit => "commit",
            Outcome::Rollback => "rollback",
        }
    }
}

/// The database a `--db-url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// `mysql://…` or `mariadb://…`.
    MySql,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Database {
    pub fn of_url(url: &str) -> anyhow::Result<Database> {
        if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Database::MySql)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Database::Postgres)
        } else {
            anyhow::bail!("--db-url must start with mysql:// or postgres://, got {url}")
        }
    }
}

/// SDK settings for one peer: short timeouts, and a single commit/rollback attempt (as the Java
/// side of the suite configures), so that failures show instead of being retried away.
pub fn client_config(application_id: &str, tc: &str) -> anyhow::Result<ClientConfig> {
    let config = ClientConfig::builder(application_id)
        .tc_addresses([tc])
        .connect_timeout(Duration::from_secs(5))
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .commit_retry_count(1)
        .rollback_retry_count(1)
        .build()?;
    Ok(config)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Participant { tc, listen } => participant::run(&tc, listen)
            .await
            .map(|()| ExitCode::SUCCESS),
        Mode::At {
            tc,
            db_url,
            resource_id,
            undo_table,
            command_timeout_secs,
            lock_retry_interval_ms,
            lock_retry_times,
        } => at::run(at::AtArgs {
            tc,
            db_url,
            resource_id,
            undo_table,
            command_timeout: Duration::from_secs(command_timeout_secs),
            lock_retry_interval: Duration::from_millis(lock_retry_interval_ms),
            lock_retry_times,
        })
        .await
        .map(|()| ExitCode::SUCCESS),
        Mode::Xa {
            tc,
            db_url,
            resource_id,
            command_timeout_secs,
        } => xa::run(xa::XaArgs {
            tc,
            db_url,
            resource_id,
            command_timeout: Duration::from_secs(command_timeout_secs),
        })
        .await
        .map(|()| ExitCode::SUCCESS),
        Mode::Saga {
            tc,
            db_url,
            java_url,
            outcome,
            business_key,
            timeout_secs,
        } => {
            let timeout = Duration::from_secs(timeout_secs);
            let args = saga::SagaArgs {
                tc,
                db_url,
                java_url,
                outcome,
                business_key,
                timeout,
            };
            match tokio::time::timeout(timeout, saga::run(args)).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "saga run did not finish within {timeout_secs} s (--timeout-secs)"
                )),
            }
        }
        Mode::Tm {
            tc,
            participant_url,
            outcome,
            probe,
            deadline_secs,
        } => {
            let deadline = Duration::from_secs(deadline_secs);
            match tokio::time::timeout(deadline, tm::run(&tc, &participant_url, outcome, &probe))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "tm run did not finish within {deadline_secs} s (--deadline-secs)"
                )),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ferrata-interop-peer: {error:#}");
            ExitCode::from(2)
        }
    }
}
