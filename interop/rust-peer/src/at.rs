//! `at` mode: an AT resource manager (`ferrata-at`'s `AtDataSource`) on MariaDB/MySQL or
//! PostgreSQL, driven line by line over stdin, so the Java suite (`AtInterchangeTest`) can have
//! Rust write a branch that Java's `DataSourceProxy` rolls back, and the reverse.
//!
//! Once connected to the TC with the resource registered (phase two can reach it from then
//! on), it prints one line `{"ready":true,"resource_id":"jdbc:…"}` on stdout. Then, per stdin
//! line:
//!
//! | line | does | answers (one stdout line) |
//! |---|---|---|
//! | `{"xid":"…","sql":["UPDATE …", …]}` | runs the statements in one local transaction inside the global transaction `xid`, then commits it (phase one: branch registered, undo log written) | `{"ok":true,"rows":[n, …]}` or `{"ok":false,"error":"…"}` |
//! | `quit`, or end of input | disconnects from the TC and exits | nothing |
//!
//! Statements carry their values as SQL literals (no bind parameters). Each command is bounded
//! by `--command-timeout-secs`. Between commands the data source keeps answering the TC's
//! phase-two requests for the resource, whichever RM wrote the branch.

use std::time::Duration;

use anyhow::Context as _;
use ferrata::Client;
use ferrata_at::{AtDataSource, AtError, query};
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
}

/// One stdin command: statements to run as one branch of `xid`.
#[derive(Debug, Deserialize)]
struct Command {
    xid: String,
    sql: Vec<String>,
}

/// Connects, registers the resource, and serves stdin commands until `quit` or end of input.
pub async fn run(args: AtArgs) -> anyhow::Result<()> {
    if args.db_url.starts_with("mysql:") || args.db_url.starts_with("mariadb:") {
        serve::<sqlx::MySql>(args).await
    } else if args.db_url.starts_with("postgres:") || args.db_url.starts_with("postgresql:") {
        serve::<sqlx::Postgres>(args).await
    } else {
        anyhow::bail!(
            "--db-url must start with mysql:// or postgres://, got {}",
            args.db_url
        )
    }
}

async fn serve<DB: ferrata_at::database::AtDatabase>(args: AtArgs) -> anyhow::Result<()> {
    let client = Client::connect(crate::client_config("ferrata-interop-peer-at", &args.tc)?)
        .await
        .with_context(|| format!("connecting to the TC at {}", args.tc))?;
    let pool = sqlx::Pool::<DB>::connect(&args.db_url)
        .await
        .context("connecting to the database")?;
    let mut builder = AtDataSource::builder(pool, client.clone()).undo_table(&args.undo_table);
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

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            break;
        }
        let answer = match serde_json::from_str::<Command>(line) {
            Ok(command) => {
                match tokio::time::timeout(args.command_timeout, execute(&at, command)).await {
                    Ok(Ok(rows)) => json!({"ok": true, "rows": rows}),
                    Ok(Err(error)) => json!({"ok": false, "error": format!("{error:#}")}),
                    Err(_) => json!({"ok": false, "error": "command timed out"}),
                }
            }
            Err(error) => json!({"ok": false, "error": format!("bad command: {error}")}),
        };
        write_line(&mut stdout, &answer).await?;
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

async fn write_line(
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

    /// The command line `AtInterchangeTest` writes (and `AtRmProcess` reads) is this mode's
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
}
