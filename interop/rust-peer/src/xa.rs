//! `xa` mode: an XA resource manager (`ferrata-xa`'s `XaDataSource`) on MariaDB/MySQL or
//! PostgreSQL, driven line by line over stdin, so that a Rust XA branch and a Java one
//! (`DataSourceProxyXA`) take part in one global transaction (`XaMixedTransactionTest`).
//!
//! Once connected with the resource registered it prints `{"ready":true,"resource_id":"…"}`.
//! Per stdin line:
//!
//! | line | does | answers (one stdout line) |
//! |---|---|---|
//! | `{"xid":"…","sql":["UPDATE …", …]}` | starts an XA branch of `xid`, runs the statements in it and prepares it | `{"ok":true,"rows":[n, …]}` or `{"ok":false,"error":"…"}` (the branch rolled back) |
//! | `quit`, or end of input | closes the sessions held for prepared branches (they stay prepared), disconnects and exits | nothing |
//!
//! Between commands the data source answers the TC's phase 2 for its branches.

use std::time::Duration;

use anyhow::Context as _;
use ferrata::Client;
use ferrata_xa::{XaDataSource, XaDatabase};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::at::write_line;

/// Where the XA data source lives and how it is named.
#[derive(Debug, Clone)]
pub struct XaArgs {
    /// TC address, host:port.
    pub tc: String,
    /// `mysql://…` (MariaDB too) or `postgres://…`.
    pub db_url: String,
    /// The resource id registered with the TC (Java's: the JDBC URL).
    pub resource_id: String,
    /// Upper bound of one command.
    pub command_timeout: Duration,
}

/// One stdin command: statements to run as one XA branch of `xid`.
#[derive(Debug, Deserialize)]
struct Command {
    xid: String,
    sql: Vec<String>,
}

/// The rows a statement changed, from either database's query result.
trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// Connects, registers the resource, and serves stdin commands until `quit` or end of input.
pub async fn run(args: XaArgs) -> anyhow::Result<()> {
    match crate::Database::of_url(&args.db_url)? {
        crate::Database::MySql => serve::<sqlx::MySql>(args).await,
        crate::Database::Postgres => serve::<sqlx::Postgres>(args).await,
    }
}

async fn serve<DB: XaDatabase>(args: XaArgs) -> anyhow::Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::QueryResult: RowsAffected,
{
    let client = Client::connect(crate::client_config("ferrata-interop-peer-xa", &args.tc)?)
        .await
        .with_context(|| format!("connecting to the TC at {}", args.tc))?;
    let pool = sqlx::Pool::<DB>::connect(&args.db_url)
        .await
        .context("connecting to the database")?;
    let source = XaDataSource::register(&client, pool, args.resource_id.clone())
        .await
        .context("registering the XA resource")?;
    tracing::info!(
        resource_id = source.resource_id(),
        tc = args.tc,
        "XA peer ready"
    );
    let mut stdout = tokio::io::stdout();
    write_line(
        &mut stdout,
        &json!({"ready": true, "resource_id": source.resource_id()}),
    )
    .await?;

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
                match tokio::time::timeout(args.command_timeout, branch(&source, command)).await {
                    Ok(Ok(rows)) => json!({"ok": true, "rows": rows}),
                    Ok(Err(error)) => json!({"ok": false, "error": format!("{error:#}")}),
                    Err(_) => json!({"ok": false, "error": "command timed out"}),
                }
            }
            Err(error) => json!({"ok": false, "error": format!("bad command: {error}")}),
        };
        write_line(&mut stdout, &answer).await?;
    }
    source.detach_prepared();
    client.shutdown();
    Ok(())
}

/// Runs the statements in one XA branch and prepares it; on an error the branch is rolled back.
async fn branch<DB: XaDatabase>(
    source: &XaDataSource<DB>,
    command: Command,
) -> anyhow::Result<Vec<u64>>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::QueryResult: RowsAffected,
{
    let mut branch = source.begin(&command.xid).await?;
    let mut rows = Vec::new();
    for sql in &command.sql {
        match sqlx::raw_sql(sql).execute(&mut *branch.connection()).await {
            Ok(done) => rows.push(done.rows()),
            Err(error) => {
                branch.rollback().await?;
                return Err(error).with_context(|| format!("running {sql}"));
            }
        }
    }
    branch.prepare().await?;
    Ok(rows)
}
