//! `at` mode: an AT resource manager (`ferrata-at`'s `AtDataSource`) on MariaDB/MySQL or
//! PostgreSQL, driven line by line over stdin, so the Java suite can have Rust write a branch
//! that Java's `DataSourceProxy` rolls back, and the reverse (`AtInterchangeTest`), and run a
//! Rust branch next to a Java one in one global transaction, begun by either side, contending
//! for the same rows' global locks (`AtMixedTransactionTest`).
//!
//! Once connected to the TC with the resource registered (phase two can reach it from then
//! on), it prints one line `{"ready":true,"resource_id":"jdbc:…"}` on stdout. Then, per stdin
//! line:
//!
//! | line | does | answers (one stdout line) |
//! |---|---|---|
//! | `{"xid":"…","sql":["UPDATE …", …]}` | runs the statements in one local transaction inside the global transaction `xid`, then commits it (phase one: branch registered, undo log written) | `{"ok":true,"rows":[n, …]}` or `{"ok":false,"error":"…","kind":"…"}` |
//! | `{"tm":"begin"}` (optional `"timeout_ms"`, `"name"`) | begins a global transaction with this peer as its TM (`AtMixedTransactionTest`: the Rust TM) | `{"ok":true,"xid":"…"}` |
//! | `{"tm":"commit","xid":"…"}`, `{"tm":"rollback","xid":"…"}` | ends a transaction this peer began | `{"ok":true,"status":"Committed"}` (the TC's answer) or `{"ok":false,"error":"…"}` |
//! | `{"lock_query":"table:1,2;other:3","xid":"…"}` (`xid` optional) | GlobalLockQuery for this resource: are those rows free for `xid` (for anyone without it)? | `{"ok":true,"lockable":true}` |
//! | `quit`, or end of input | disconnects from the TC and exits (transactions it began and did not end are rolled back) | nothing |
//!
//! A failed branch answers `kind`: `LockWaitTimeout` when another global transaction held a
//! row for longer than the lock retry policy waits (`--lock-retry-interval-ms`,
//! `--lock-retry-times`: Seata's `client.rm.lock.retryInterval`/`retryTimes`), else `Other`.
//! Statements carry their values as SQL literals (no bind parameters). Each command is bounded
//! by `--command-timeout-secs`. Between commands the data source keeps answering the TC's
//! phase-two requests for the resource, whichever RM wrote the branch.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use ferrata::{BranchType, Client, GlobalTransaction, LockQuery};
use ferrata_at::lock_retry::LockRetryPolicy;
use ferrata_at::{AtDataSource, AtError, AtSettings, query};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Where the AT data source lives and how it is named.
#[derive(Debug, Clone)]
pub struct AtArgs {
    /// TC address, host:port.
    pub tc: String,
    /// `mysql://…` (MariaDB too) or `postgres://…`.
    pub db_url: String,
    /// Overrides the JDBC-style resource id derived from the URL.
    pub resource_id: Option<String>,
    /// The undo-log table (Seata's `client.undo.logTable`).
    pub undo_table: String,
    /// Upper bound of one command.
    pub command_timeout: Duration,
    /// Pause between attempts to get a global lock (`client.rm.lock.retryInterval`).
    pub lock_retry_interval: Duration,
    /// Attempts after the first (`client.rm.lock.retryTimes`).
    pub lock_retry_times: u32,
}

/// One stdin command: statements to run as one branch of `xid`.
#[derive(Debug, Deserialize)]
struct Command {
    xid: String,
    sql: Vec<String>,
}

/// A stdin command of this peer as TM: `{"tm":"begin"|"commit"|"rollback", …}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "tm", rename_all = "lowercase")]
enum TmCommand {
    Begin {
        #[serde(default = "default_tx_timeout_ms")]
        timeout_ms: u64,
        #[serde(default = "default_tx_name")]
        name: String,
    },
    Commit {
        xid: String,
    },
    Rollback {
        xid: String,
    },
}

fn default_tx_timeout_ms() -> u64 {
    60_000
}

fn default_tx_name() -> String {
    "interop-rust-at-tm".to_owned()
}

/// A GlobalLockQuery: `{"lock_query":"table:pk,pk;table:pk","xid":"…"}`.
#[derive(Debug, Deserialize)]
struct LockQueryCommand {
    lock_query: String,
    #[serde(default)]
    xid: String,
}

/// Any stdin line but `quit`.
#[derive(Debug)]
enum Line {
    Branch(Command),
    Tm(TmCommand),
    LockQuery(LockQueryCommand),
}

impl Line {
    fn parse(line: &str) -> Result<Line, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(line)?;
        if value.get("tm").is_some() {
            serde_json::from_value(value).map(Line::Tm)
        } else if value.get("lock_query").is_some() {
            serde_json::from_value(value).map(Line::LockQuery)
        } else {
            serde_json::from_value(value).map(Line::Branch)
        }
    }
}

/// Connects, registers the resource, and serves stdin commands until `quit` or end of input.
pub async fn run(args: AtArgs) -> anyhow::Result<()> {
    match crate::Database::of_url(&args.db_url)? {
        crate::Database::MySql => serve::<sqlx::MySql>(args).await,
        crate::Database::Postgres => serve::<sqlx::Postgres>(args).await,
    }
}

async fn serve<DB: ferrata_at::database::AtDatabase>(args: AtArgs) -> anyhow::Result<()> {
    let client = Client::connect(crate::client_config("ferrata-interop-peer-at", &args.tc)?)
        .await
        .with_context(|| format!("connecting to the TC at {}", args.tc))?;
    let pool = sqlx::Pool::<DB>::connect(&args.db_url)
        .await
        .context("connecting to the database")?;
    let settings = AtSettings {
        lock_retry: LockRetryPolicy {
            interval: args.lock_retry_interval,
            retries: args.lock_retry_times,
            ..LockRetryPolicy::default()
        },
        ..AtSettings::default()
    };
    let mut builder = AtDataSource::builder(pool, client.clone())
        .undo_table(&args.undo_table)
        .settings(settings);
    if let Some(id) = &args.resource_id {
        builder = builder.resource_id(id);
    }
    let at = builder
        .build()
        .await
        .context("building the AT data source")?;
    tracing::info!(
        resource_id = at.resource_id(),
        tc = args.tc,
        "AT peer ready"
    );
    let mut stdout = tokio::io::stdout();
    let ready = json!({"ready": true, "resource_id": at.resource_id()});
    write_line(&mut stdout, &ready).await?;

    // global transactions begun here ({"tm":"begin"}), until their commit or rollback
    let mut begun: HashMap<String, GlobalTransaction> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            break;
        }
        let answer = match Line::parse(line) {
            Ok(Line::Branch(command)) => {
                match tokio::time::timeout(args.command_timeout, execute(&at, command)).await {
                    Ok(Ok(rows)) => json!({"ok": true, "rows": rows}),
                    Ok(Err(error)) => json!({
                        "ok": false,
                        "error": format!("{error:#}"),
                        "kind": error_kind(&error),
                    }),
                    Err(_) => json!({"ok": false, "error": "command timed out"}),
                }
            }
            Ok(Line::Tm(command)) => {
                match tokio::time::timeout(args.command_timeout, tm(&client, &mut begun, command))
                    .await
                {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(error)) => json!({"ok": false, "error": format!("{error:#}")}),
                    Err(_) => json!({"ok": false, "error": "command timed out"}),
                }
            }
            Ok(Line::LockQuery(command)) => {
                let query = LockQuery::new(command.xid, BranchType::At, at.resource_id())
                    .lock_key(command.lock_query);
                match tokio::time::timeout(args.command_timeout, client.lock_query(query)).await {
                    Ok(Ok(lockable)) => json!({"ok": true, "lockable": lockable}),
                    Ok(Err(error)) => json!({"ok": false, "error": format!("{error:#}")}),
                    Err(_) => json!({"ok": false, "error": "command timed out"}),
                }
            }
            Err(error) => json!({"ok": false, "error": format!("bad command: {error}")}),
        };
        write_line(&mut stdout, &answer).await?;
    }
    for (xid, tx) in begun {
        tracing::warn!(%xid, "rolling back a transaction begun here and never ended");
        if let Err(error) = tx.rollback().await {
            tracing::warn!(%xid, %error, "rollback failed; the TC rolls it back at its timeout");
        }
    }
    client.shutdown();
    tracing::info!("AT peer stopped");
    Ok(())
}

/// Phase one of one branch: the statements in one local transaction under `command.xid`.
async fn execute<DB: ferrata_at::database::AtDatabase>(
    at: &AtDataSource<DB>,
    command: Command,
) -> Result<Vec<u64>, AtError> {
    let Command { xid, sql } = command;
    tracing::info!(%xid, statements = sql.len(), "AT branch");
    ferrata::context::with_xid(xid, async {
        let mut tx = at.begin().await?;
        let mut rows = Vec::with_capacity(sql.len());
        for statement in sql {
            rows.push(tx.execute(query(statement)).await?);
        }
        tx.commit().await?;
        Ok(rows)
    })
    .await
}

/// The peer as TM: begins, commits or rolls back a global transaction.
async fn tm(
    client: &Client,
    begun: &mut HashMap<String, GlobalTransaction>,
    command: TmCommand,
) -> anyhow::Result<serde_json::Value> {
    match command {
        TmCommand::Begin { timeout_ms, name } => {
            let tx = client
                .begin(Duration::from_millis(timeout_ms), &name)
                .await
                .context("GlobalBegin")?;
            let xid = tx.xid().to_owned();
            tracing::info!(%xid, "global transaction begun (Rust TM)");
            begun.insert(xid.clone(), tx);
            Ok(json!({"ok": true, "xid": xid}))
        }
        TmCommand::Commit { xid } => {
            let tx = begun
                .remove(&xid)
                .with_context(|| format!("{xid} was not begun here (or already ended)"))?;
            let status = tx.commit().await.context("GlobalCommit")?;
            tracing::info!(%xid, ?status, "global transaction committed (Rust TM)");
            Ok(json!({"ok": true, "status": format!("{status:?}")}))
        }
        TmCommand::Rollback { xid } => {
            let tx = begun
                .remove(&xid)
                .with_context(|| format!("{xid} was not begun here (or already ended)"))?;
            let status = tx.rollback().await.context("GlobalRollback")?;
            tracing::info!(%xid, ?status, "global transaction rolled back (Rust TM)");
            Ok(json!({"ok": true, "status": format!("{status:?}")}))
        }
    }
}

/// The `kind` of a failed branch's answer.
fn error_kind(error: &AtError) -> &'static str {
    match error {
        AtError::LockWaitTimeout(_) => "LockWaitTimeout",
        _ => "Other",
    }
}

pub(crate) async fn write_line(
    stdout: &mut tokio::io::Stdout,
    value: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    stdout.write_all(text.as_bytes()).await?;
    stdout.flush().await.context("writing stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line `AtInterchangeTest` writes (and `JavaRmProcess` reads) is this mode's
    /// contract too.
    #[test]
    fn commands_parse_as_the_java_suite_writes_them() {
        let command: Command = serde_json::from_str(
            r#"{"xid":"127.0.0.1:8091:7","sql":["UPDATE t SET a = 'x\\y' WHERE id = 1","DELETE FROM t WHERE id = 2"]}"#,
        )
        .expect("command");
        assert_eq!(command.xid, "127.0.0.1:8091:7");
        assert_eq!(
            command.sql,
            [
                "UPDATE t SET a = 'x\\y' WHERE id = 1",
                "DELETE FROM t WHERE id = 2"
            ]
        );
        assert!(serde_json::from_str::<Command>(r#"{"xid":"x"}"#).is_err());
    }

    /// The lines `AtMixedTransactionTest` writes.
    #[test]
    fn tm_and_lock_query_lines_parse() {
        match Line::parse(r#"{"xid":"x","sql":["DELETE FROM t WHERE id = 2"]}"#) {
            Ok(Line::Branch(command)) => assert_eq!(command.xid, "x"),
            other => panic!("a branch command: {other:?}"),
        }
        match Line::parse(r#"{"tm":"begin"}"#) {
            Ok(Line::Tm(TmCommand::Begin { timeout_ms, name })) => {
                assert_eq!(timeout_ms, 60_000);
                assert_eq!(name, "interop-rust-at-tm");
            }
            other => panic!("begin: {other:?}"),
        }
        match Line::parse(r#"{"tm":"begin","timeout_ms":5000,"name":"n"}"#) {
            Ok(Line::Tm(TmCommand::Begin { timeout_ms, name })) => {
                assert_eq!((timeout_ms, name.as_str()), (5000, "n"));
            }
            other => panic!("begin: {other:?}"),
        }
        match Line::parse(r#"{"tm":"commit","xid":"h:1:2"}"#) {
            Ok(Line::Tm(TmCommand::Commit { xid })) => assert_eq!(xid, "h:1:2"),
            other => panic!("commit: {other:?}"),
        }
        match Line::parse(r#"{"tm":"rollback","xid":"h:1:3"}"#) {
            Ok(Line::Tm(TmCommand::Rollback { xid })) => assert_eq!(xid, "h:1:3"),
            other => panic!("rollback: {other:?}"),
        }
        match Line::parse(r#"{"lock_query":"t:1,2"}"#) {
            Ok(Line::LockQuery(q)) => {
                assert_eq!((q.lock_query.as_str(), q.xid.as_str()), ("t:1,2", ""))
            }
            other => panic!("lock query: {other:?}"),
        }
        assert!(Line::parse(r#"{"tm":"commit"}"#).is_err());
        assert!(Line::parse(r#"{"tm":"abort","xid":"x"}"#).is_err());
        assert!(Line::parse("not json").is_err());
    }
}
