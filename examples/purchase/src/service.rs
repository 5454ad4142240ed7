//! Process plumbing the four binaries share: common flags, logging, the TC connection, database
//! pools, serving axum until SIGTERM/Ctrl-C, and turning a TCC try's outcome into HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferrata::{Client, ClientConfig};
use ferrata_tcc::TccError;
use serde::Serialize;

use crate::api::ErrorBody;

/// Flags every service takes (each also readable from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// ferrata-server's address (host:port).
    #[arg(long, env = "FERRATA_TC", default_value = "127.0.0.1:8091")]
    pub tc: String,
    /// HTTP address to serve on; port 0 takes a free port, reported in the `ready` log line.
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// Parses a `--seed NAME=AMOUNT` flag.
pub fn parse_seed(text: &str) -> Result<(String, i64), String> {
    let (name, amount) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=AMOUNT"))?;
    let amount: i64 = amount
        .trim()
        .parse()
        .map_err(|e| format!("amount of {text:?}: {e}"))?;
    if name.trim().is_empty() || amount < 0 {
        return Err(format!("{text:?}: need a name and a non-negative amount"));
    }
    Ok((name.trim().to_owned(), amount))
}

/// Logs to stderr, filtered by `FERRATA_LOG` (default `info`), as ferrata-server does.
pub fn init_tracing() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Connects to the TC as `application_id` (one TM and one RM connection).
pub async fn connect(application_id: &str, tc: &str) -> anyhow::Result<Client> {
    let config = ClientConfig::builder(application_id)
        .tc_addresses([tc])
        // Fail a start against a wrong address quickly; the runner's wait is bounded anyway.
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    Client::connect(config)
        .await
        .with_context(|| format!("cannot connect to the TC at {tc}; is ferrata-server running?"))
}

/// A small PostgreSQL pool; the bounded acquire turns a stuck database into an error answer.
pub async fn pg_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// A small MySQL/MariaDB pool (see [`pg_pool`]).
pub async fn mysql_pool(url: &str) -> anyhow::Result<sqlx::MySqlPool> {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to MariaDB/MySQL at {}", redact(url)))
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Binds `listen`, logs `<name> ready listen=<addr>` (the runner waits for that line), serves
/// until SIGTERM or Ctrl-C, then closes the TC connections.
pub async fn serve(
    name: &str,
    listen: SocketAddr,
    app: axum::Router,
    client: &Client,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "{name} ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    client.shutdown();
    tracing::info!("{name} stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler Ctrl-C still stops us; SIGTERM then kills outright.
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// How a participant's phase fails. A [`ActionError::Refused`] try is a business answer (not
/// enough stock or money, unknown item): its local transaction is rolled back and the caller
/// gets 409, which makes it roll the global one back. In phase 2 every error means "not done":
/// the TC calls again.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Refused(String),
    #[error("phase 2 found nothing to {0}")]
    NothingToDo(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The HTTP answer to a try: 200 with `body`, 409 for a refused try, 503 for anything else
/// (TC or database trouble). Any non-2xx makes the business service roll back.
pub fn try_reply<T: Serialize>(result: Result<T, TccError<ActionError>>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => {
            if let Some(ActionError::Refused(refused)) = error.business() {
                tracing::info!(%refused, "try refused");
                return error_reply(StatusCode::CONFLICT, refused.clone());
            }
            tracing::warn!(%error, "try failed");
            error_reply(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}

/// `Ok` when a phase-2 statement changed one row; otherwise the TC retries.
pub fn one_row(rows: u64, what: &'static str) -> Result<(), ActionError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(ActionError::NothingToDo(what))
    }
}

/// A non-2xx answer with an [`ErrorBody`].
pub fn error_reply(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorBody { error })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds() {
        assert_eq!(parse_seed("C100=100"), Ok(("C100".to_owned(), 100)));
        assert!(parse_seed("C100").is_err());
        assert!(parse_seed("=5").is_err());
        assert!(parse_seed("C100=-1").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("mysql://u:secret@127.0.0.1:3306/db"),
            "mysql://u:***@127.0.0.1:3306/db"
        );
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }
}
