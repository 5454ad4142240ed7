//! `ferrata`: reads and actions of ferrata-server's admin API for terminals (tables) and
//! scripts (`--json`, the API's own JSON). The token comes from `FERRATA_ADMIN_TOKEN` or a
//! file, never from the command line (other users can read process arguments).

mod render;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    name = "ferrata",
    version,
    about = "Operate a ferrata-server through its admin API"
)]
struct Cli {
    /// The admin listener of the server (admin.listen).
    #[arg(
        long,
        env = "FERRATA_ADMIN_URL",
        default_value = "http://127.0.0.1:7091"
    )]
    server: String,
    /// A file holding the admin token (else FERRATA_ADMIN_TOKEN; reads work without one when
    /// the server has no tokens configured).
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// This node: listeners, store, uptime, readiness.
    Server,
    /// Liveness and readiness.
    Health,
    /// Registered client connections.
    Clients,
    /// The nodes of a cluster on a shared database, and which node drives whose transactions.
    Cluster,
    /// Global locks (AT rows) and who holds them.
    Locks {
        #[arg(long)]
        resource: Option<String>,
        #[arg(long)]
        table: Option<String>,
        #[arg(long)]
        xid: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Global transactions.
    #[command(subcommand)]
    Tx(TxCommand),
}

#[derive(Debug, Subcommand)]
enum TxCommand {
    /// List transactions, oldest first.
    List {
        /// Status names or codes, comma-separated (Begin,CommitRetrying).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        application: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// A part of the XID.
        #[arg(long)]
        xid: Option<String>,
        /// Begun at least this long ago (30s, 5m, 2h).
        #[arg(long)]
        min_age: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Every node's transactions, read from the shared database (a cluster only), with
        /// the node driving each.
        #[arg(long)]
        cluster: bool,
    },
    /// One transaction with its branches and history.
    Show { xid: String },
    /// Run its pending phase 2 now.
    Retry { xid: String },
    /// Commit it (from Begin, as its TM would) or retry its commit now.
    Commit { xid: String },
    /// Roll it back (from Begin, as its TM would) or retry its rollback now.
    Rollback { xid: String },
    /// After repairing the data by hand: forget a branch whose rollback failed, freeing its
    /// locks (the transaction ends rolled back once no branch is left).
    ResolveBranch { xid: String, branch_id: i64 },
    /// Delete a transaction that ended in failure, freeing its locks.
    Delete { xid: String },
}

/// A request: method, path with its query.
struct Call {
    method: reqwest::Method,
    path: String,
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            method: reqwest::Method::GET,
            path,
        }
    }

    fn post(path: String) -> Call {
        Call {
            method: reqwest::Method::POST,
            path,
        }
    }
}

/// `?a=1&b=2` of the set parameters, percent-encoded.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (XIDs hold `:` and IPv6 brackets).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn token(cli: &Cli) -> anyhow::Result<Option<String>> {
    if let Some(path) = &cli.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(std::env::var("FERRATA_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty()))
}

fn call_of(command: &Command) -> Call {
    let tx = |xid: &str| format!("/api/v1/transactions/{}", encode(xid));
    match command {
        Command::Server => Call::get("/api/v1/server".to_owned()),
        Command::Health => Call::get("/health/ready".to_owned()),
        Command::Clients => Call::get("/api/v1/clients".to_owned()),
        Command::Cluster => Call::get("/api/v1/cluster".to_owned()),
        Command::Locks {
            resource,
            table,
            xid,
            limit,
            offset,
        } => Call::get(format!(
            "/api/v1/locks{}",
            query(&[
                ("resource", resource.clone()),
                ("table", table.clone()),
                ("xid", xid.clone()),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ])
        )),
        Command::Tx(TxCommand::List {
            status,
            application,
            group,
            xid,
            min_age,
            limit,
            offset,
            cluster,
        }) => Call::get(format!(
            "/api/v1/{}transactions{}",
            if *cluster { "cluster/" } else { "" },
            query(&[
                ("status", status.clone()),
                ("application", application.clone()),
                ("group", group.clone()),
                ("xid", xid.clone()),
                ("min_age", min_age.clone()),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ])
        )),
        Command::Tx(TxCommand::Show { xid }) => Call::get(tx(xid)),
        Command::Tx(TxCommand::Retry { xid }) => Call::post(format!("{}/retry", tx(xid))),
        Command::Tx(TxCommand::Commit { xid }) => Call::post(format!("{}/commit", tx(xid))),
        Command::Tx(TxCommand::Rollback { xid }) => Call::post(format!("{}/rollback", tx(xid))),
        Command::Tx(TxCommand::ResolveBranch { xid, branch_id }) => {
            Call::post(format!("{}/branches/{branch_id}/resolve", tx(xid)))
        }
        Command::Tx(TxCommand::Delete { xid }) => Call {
            method: reqwest::Method::DELETE,
            path: tx(xid),
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ferrata: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let call = call_of(&cli.command);
    let base = cli.server.trim_end_matches('/');
    let url = format!("{base}{}", call.path);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .context("cannot build the HTTP client")?;
    let mut request = client.request(call.method, &url);
    if let Some(token) = token(&cli)? {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.with_context(|| {
        format!(
            "cannot reach the admin API at {base} (admin.listen; --server or FERRATA_ADMIN_URL)"
        )
    })?;
    let status = answer.status();
    let body = answer.text().await.context("cannot read the answer")?;
    if matches!(cli.command, Command::Health) {
        println!("{}", body.trim());
        return Ok(if status.is_success() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        });
    }
    let value: Value = serde_json::from_str(&body)
        .with_context(|| format!("the server answered {status} with no JSON: {body}"))?;
    if !status.is_success() {
        let message = value["error"].as_str().unwrap_or(body.as_str());
        bail!("{status}: {message}");
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render::human(&cli.command, &value));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xids_and_queries_are_encoded() {
        assert_eq!(encode("[::1]:8091:42"), "%5B%3A%3A1%5D%3A8091%3A42");
        assert_eq!(
            query(&[
                ("status", Some("Begin,CommitRetrying".into())),
                ("xid", None)
            ]),
            "?status=Begin,CommitRetrying"
        );
        assert_eq!(query(&[("xid", None)]), "");
    }
}
