//! `saga` mode: one Saga (ferrata-saga engine, machine `machines/mixed_tcc.json`) whose first
//! step calls a Java TCC participant over HTTP under the saga's XID, then a Rust step that
//! succeeds (`--outcome commit`) or fails and is compensated (`--outcome compensate`).
//!
//! Prints one JSON line on stdout:
//!
//! ```text
//! {"xid":"127.0.0.1:8091:42","businessKey":"k1","outcome":"commit","status":"SU",
//!  "compensationStatus":null,"calls":["charge"],"javaAnswer":{"xid":"…","branch_id":7},"error":null}
//! ```
//!
//! * `status`, `compensationStatus`: the instance's end (Seata's codes: SU, FA, UN, …).
//! * `calls`: the Rust services in the order they ran: `charge` (or `charge-failed`), `refund`.
//! * `javaAnswer`: what the Java endpoint answered to the reserve call (the XID it bound, the
//!   branch id it registered).
//!
//! Exit code 0 when the saga ended as `--outcome` asked (commit: SU, not compensated;
//! compensate: FA with compensation SU); 1 otherwise (the report still says what happened); 2
//! when no saga could be run.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use ferrata::Client;
use ferrata::integrations::reqwest::XidPropagation;
use ferrata_saga::engine::{CONNECTION_REFUSED, SagaEngine, ServiceError};
use ferrata_saga::model::ExecutionStatus;
use ferrata_saga::store::SqlStateLogStore;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Database;

/// The machine, in Seata's JSON state language.
const MACHINE_JSON: &str = include_str!("../machines/mixed_tcc.json");
/// Its `Name`.
const MACHINE: &str = "mixedTcc";
/// Saga tables of this peer (`peer_saga_state_machine_def`, …), apart from the Java engine's
/// `seata_*` tables in the same database.
const TABLE_PREFIX: &str = "peer_saga_";
/// Amount the charge step takes (and the refund gives back); only recorded.
const AMOUNT: i64 = 10;

/// How the saga is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SagaEnd {
    /// Every step succeeds: the engine reports Committed.
    Commit,
    /// ChargeAccount fails: the engine refunds it and reports Rollbacked.
    Compensate,
}

impl SagaEnd {
    fn name(self) -> &'static str {
        match self {
            SagaEnd::Commit => "commit",
            SagaEnd::Compensate => "compensate",
        }
    }
}

/// The mode's options (see `Mode::Saga` in main.rs).
#[derive(Debug)]
pub struct SagaArgs {
    pub tc: String,
    pub db_url: String,
    pub java_url: String,
    pub outcome: SagaEnd,
    pub business_key: String,
    pub timeout: Duration,
}

/// The JSON line printed on stdout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    xid: Option<String>,
    business_key: String,
    outcome: &'static str,
    status: Option<&'static str>,
    compensation_status: Option<&'static str>,
    calls: Vec<String>,
    java_answer: Option<Value>,
    error: Option<String>,
}

/// The Rust services' calls, in order, for the report.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call.to_owned());
    }

    fn taken(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs the saga and prints the report.
pub async fn run(args: SagaArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(crate::client_config("rust-saga-peer", &args.tc)?)
        .await
        .with_context(|| format!("connecting to the TC at {}", args.tc))?;
    let builder = match Database::of_url(&args.db_url)? {
        Database::MySql => SagaEngine::builder(SqlStateLogStore::with_prefix(
            sqlx::MySqlPool::connect(&args.db_url)
                .await
                .context("connecting to the database")?,
            TABLE_PREFIX,
        )?),
        Database::Postgres => SagaEngine::builder(SqlStateLogStore::with_prefix(
            sqlx::PgPool::connect(&args.db_url)
                .await
                .context("connecting to the database")?,
            TABLE_PREFIX,
        )?),
    };
    let engine = builder
        .client(client.clone())
        .transaction_timeout(args.timeout)
        .start()
        .await
        .context("starting the saga engine")?;
    engine
        .register_json(MACHINE_JSON)
        .await
        .context("registering machines/mixed_tcc.json")?;
    let calls = Calls::default();
    register_services(&engine, &calls, &args.java_url)?;

    let params = json!({
        "businessKey": args.business_key,
        "amount": AMOUNT,
        "failCharge": args.outcome == SagaEnd::Compensate,
    });
    let params = match params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let result = engine
        .start(MACHINE, Some(&args.business_key), params)
        .await;
    client.shutdown();

    let mut report = Report {
        xid: None,
        business_key: args.business_key,
        outcome: args.outcome.name(),
        status: None,
        compensation_status: None,
        calls: calls.taken(),
        java_answer: None,
        error: None,
    };
    let ok = match result {
        Ok(outcome) => {
            report.xid = Some(outcome.instance_id.clone());
            report.status = Some(outcome.status.code());
            report.compensation_status = outcome.compensation_status.map(ExecutionStatus::code);
            report.java_answer = outcome.context.get("stockReservation").cloned();
            report.error = outcome.error.clone();
            match args.outcome {
                SagaEnd::Commit => {
                    outcome.status == ExecutionStatus::Succeed
                        && outcome.compensation_status.is_none()
                }
                SagaEnd::Compensate => {
                    outcome.status == ExecutionStatus::Failed
                        && outcome.compensation_status == Some(ExecutionStatus::Succeed)
                }
            }
        }
        Err(error) => {
            report.error = Some(format!("{error:#}"));
            false
        }
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

/// `javaStock.reserve` (HTTP to the Java participant), `account.charge`, `account.refund`.
fn register_services(engine: &SagaEngine, calls: &Calls, java_url: &str) -> anyhow::Result<()> {
    let http = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client")?,
    )
    // The engine binds the saga's XID while a service runs; this sends it as TX_XID, so the
    // Java try registers its TCC branch in the saga's transaction.
    .with(XidPropagation)
    .build();
    let java_url = java_url.to_owned();
    engine.register_service("javaStock", "reserve", move |args| {
        let (http, url) = (http.clone(), java_url.clone());
        async move {
            let key = text(&args, 0);
            tracing::info!(xid = ?ferrata::context::current_xid(), %url, "reserving stock in Java");
            let response = http.post(&url).body(key).send().await.map_err(|e| {
                // A refused connection surely reserved nothing (Seata counts it as failed).
                let refused = matches!(&e, reqwest_middleware::Error::Reqwest(r) if r.is_connect());
                ServiceError::new(
                    if refused {
                        CONNECTION_REFUSED
                    } else {
                        "java.io.IOException"
                    },
                    format!("POST {url}: {e:#}"),
                )
            })?;
            let status = response.status();
            let body = response.text().await.map_err(|e| {
                ServiceError::new("java.io.IOException", format!("reading the answer: {e:#}"))
            })?;
            if !status.is_success() {
                return Err(ServiceError::new(
                    "java.lang.IllegalStateException",
                    format!("POST {url}: HTTP {status}: {body}"),
                ));
            }
            serde_json::from_str(&body).map_err(|e| {
                ServiceError::new(
                    "java.lang.IllegalStateException",
                    format!("the Java answer is not JSON ({e}): {body}"),
                )
            })
        }
    });
    let c = calls.clone();
    engine.register_service("account", "charge", move |args| {
        let c = c.clone();
        async move {
            if args.get(2).and_then(Value::as_bool).unwrap_or(false) {
                c.push("charge-failed");
                return Err(ServiceError::new(
                    "java.lang.IllegalStateException",
                    format!("charging {} failed (--outcome compensate)", text(&args, 0)),
                ));
            }
            c.push("charge");
            Ok(json!(true))
        }
    });
    let c = calls.clone();
    engine.register_service("account", "refund", move |_args| {
        let c = c.clone();
        async move {
            c.push("refund");
            Ok(json!(true))
        }
    });
    Ok(())
}

fn text(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
