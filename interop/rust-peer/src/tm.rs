//! `tm` mode: one global transaction begun by the Rust SDK (`in_global_transaction`) that calls
//! a participant over HTTP through reqwest + [`XidPropagation`] (so the request carries
//! `TX_XID`), then commits (the closure returns `Ok`) or rolls back (it returns `Err`).
//!
//! Prints one JSON line on stdout:
//!
//! ```text
//! {"xid":"127.0.0.1:8091:42","outcome":"commit","status":"Committed","tc_status":"Finished",
//!  "participant_status":200,"participant_response":"...","error":null}
//! ```
//!
//! * `status`: how the SDK ended the transaction. `Committed`: `in_global_transaction` returned
//!   `Ok` (the TC answered GlobalCommit with a committed status); `Rollbacked`: it returned
//!   `Aborted` (the TC answered GlobalRollback with a rolled-back status); `RollbackFailed` or
//!   `Failed` otherwise, with `error` set.
//! * `tc_status`: GlobalStatus asked of the TC afterwards (`Finished` once the TC has dropped the
//!   finished transaction; `CommitRetrying`/`RollbackRetrying` if a branch is still pending).
//!
//! Exit code 0 when `status` is what `--outcome` asked for and the participant answered 2xx;
//! 1 otherwise (the report still says what happened); 2 when no transaction could be run.

use std::fmt;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use ferrata::integrations::reqwest::XidPropagation;
use ferrata::{Client, TransactionError, TransactionOptions};
use serde::Serialize;

use crate::Outcome;

/// The JSON line printed on stdout.
#[derive(Debug, Default, Serialize)]
struct Report {
    xid: Option<String>,
    outcome: &'static str,
    status: &'static str,
    tc_status: Option<String>,
    participant_status: Option<u16>,
    participant_response: Option<String>,
    error: Option<String>,
}

/// Why the scoped closure returned `Err`.
#[derive(Debug)]
enum WorkError {
    /// `--outcome rollback`: the participant answered, and the transaction is to be undone.
    RollbackRequested,
    /// The participant could not be called or answered with an error status.
    Call(String),
}

impl fmt::Display for WorkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkError::RollbackRequested => f.write_str("rollback requested (--outcome rollback)"),
            WorkError::Call(error) => write!(f, "calling the participant failed: {error}"),
        }
    }
}

/// What the closure saw, kept outside it so the report can show it whatever the result.
#[derive(Debug, Default)]
struct Seen {
    xid: Option<String>,
    participant_status: Option<u16>,
    participant_response: Option<String>,
}

/// Runs the transaction and prints the report.
pub async fn run(
    tc: &str,
    participant_url: &str,
    outcome: Outcome,
    probe: &str,
) -> anyhow::Result<ExitCode> {
    let client = Client::connect(crate::client_config("ferrata-interop-peer-tm", tc)?)
        .await
        .with_context(|| format!("connecting to the TC at {tc}"))?;
    let http = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client")?,
    )
    .with(XidPropagation)
    .build();

    let seen = Mutex::new(Seen::default());
    let options = TransactionOptions::new("interop-rust-tm").timeout(Duration::from_secs(30));
    let result = client
        .in_global_transaction(options, |tx| {
            let (http, seen) = (&http, &seen);
            async move {
                remember(seen, |s| s.xid = Some(tx.xid.clone()));
                tracing::info!(xid = ?tx.xid, participant_url, "calling the participant");
                let response = http
                    .post(participant_url)
                    .body(probe.to_owned())
                    .send()
                    .await
                    .map_err(|e| WorkError::Call(format!("{e:#}")))?;
                let status = response.status();
                let body = response
                    .text()
                    .await
                    .map_err(|e| WorkError::Call(format!("reading the answer: {e:#}")))?;
                remember(seen, |s| {
                    s.participant_status = Some(status.as_u16());
                    s.participant_response = Some(body.clone());
                });
                if !status.is_success() {
                    return Err(WorkError::Call(format!("HTTP {status}: {body}")));
                }
                match outcome {
                    Outcome::Commit => Ok(()),
                    Outcome::Rollback => Err(WorkError::RollbackRequested),
                }
            }
        })
        .await;

    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let (status, error) = match &result {
        Ok(()) => ("Committed", None),
        Err(TransactionError::Aborted(WorkError::RollbackRequested)) => ("Rollbacked", None),
        Err(TransactionError::Aborted(error)) => ("Rollbacked", Some(error.to_string())),
        Err(error @ TransactionError::RollbackFailed { .. }) => {
            ("RollbackFailed", Some(error.to_string()))
        }
        Err(error @ TransactionError::Transaction(_)) => ("Failed", Some(error.to_string())),
    };
    let tc_status = match &seen.xid {
        Some(xid) => Some(match client.status(xid).await {
            Ok(status) => format!("{status:?}"),
            Err(error) => format!("error: {error}"),
        }),
        None => None,
    };
    client.shutdown();

    let expected = match outcome {
        Outcome::Commit => "Committed",
        Outcome::Rollback => "Rollbacked",
    };
    let ok = status == expected && error.is_none();
    let report = Report {
        xid: seen.xid,
        outcome: outcome.name(),
        status,
        tc_status,
        participant_status: seen.participant_status,
        participant_response: seen.participant_response,
        error,
    };
    println!(
        "{}",
        serde_json::to_string(&report).context("encoding the report")?
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn remember(seen: &Mutex<Seen>, update: impl FnOnce(&mut Seen)) {
    update(&mut seen.lock().unwrap_or_else(|p| p.into_inner()));
}
