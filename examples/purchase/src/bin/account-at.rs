//! The account service in AT mode (MariaDB, its own database): `POST /account/debit` deducts
//! the money with one ordinary UPDATE through ferrata-at, refused when the balance is short.
//! A global rollback restores the balance from the undo log.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::context::current_xid;
use ferrata::integrations::tower::XidLayer;
use ferrata_at::{AtDataSource, query};
use ferrata_purchase_demo::api::Debit;
use ferrata_purchase_demo::at::{self, WorkError};
use ferrata_purchase_demo::service::{self, CommonArgs};
use serde_json::json;
use sqlx::MySql;

/// Only the balance: AT needs no `frozen` column, the undo log remembers the old balance.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS account (
    user_id VARCHAR(64) NOT NULL PRIMARY KEY,
    balance BIGINT      NOT NULL,
    CONSTRAINT ck_account_balance CHECK (balance >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

#[derive(Debug, Parser)]
#[command(about = "Account service of the purchase demo (MariaDB, AT)")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// MariaDB/MySQL URL of the account database (not the order service's).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Account to create if absent, as USER=BALANCE (repeatable).
    #[arg(long = "seed", value_parser = service::parse_seed, default_value = "U100=100")]
    seeds: Vec<(String, i64)>,
}

type App = AtDataSource<MySql>;

/// Debits in the caller's global transaction (XidLayer bound its TX_XID): one statement, run
/// as its own local transaction, becomes the branch.
async fn debit(State(accounts): State<App>, Json(body): Json<Debit>) -> Response {
    at::reply(
        debit_money(&accounts, &body)
            .await
            .map(|()| json!({ "debited": body.money })),
    )
}

async fn debit_money(accounts: &App, body: &Debit) -> Result<(), WorkError> {
    if body.money <= 0 {
        return Err(WorkError::Refused(format!(
            "money must be positive, got {}",
            body.money
        )));
    }
    let debited = accounts
        .execute(
            query("UPDATE account SET balance = balance - ? WHERE user_id = ? AND balance >= ?")
                .bind(body.money)
                .bind(body.user.as_str())
                .bind(body.money),
        )
        .await?;
    if debited == 1 {
        tracing::info!(xid = ?current_xid(), user = %body.user, money = body.money,
            "money debited (committed locally with its undo log)");
        return Ok(());
    }
    let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM account WHERE user_id = ?")
        .bind(&body.user)
        .fetch_optional(accounts.pool())
        .await?;
    Err(WorkError::Refused(match balance {
        None => format!("unknown user {:?}", body.user),
        Some(balance) => format!(
            "insufficient balance of {}: {balance} available, {} needed",
            body.user, body.money
        ),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::mysql_pool(&args.database_url).await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    for (user, balance) in &args.seeds {
        // A no-op update on a duplicate keeps an existing balance (re-runs are idempotent).
        sqlx::query(
            "INSERT INTO account (user_id, balance) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE user_id = user_id",
        )
        .bind(user)
        .bind(balance)
        .execute(&pool)
        .await?;
    }

    let client = service::connect("account-service-at", &args.common.tc).await?;
    // Creates undo_log if missing and registers the database with the TC as an AT resource.
    let accounts = AtDataSource::builder(pool, client.clone()).build().await?;

    let app = axum::Router::new()
        .route("/account/debit", post(debit))
        .with_state(accounts)
        .layer(XidLayer::new());
    service::serve("account service (AT)", args.common.listen, app, &client).await
}
