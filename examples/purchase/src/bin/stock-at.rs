//! The stock service in AT mode (PostgreSQL, its own database): `POST /stock/reserve` deducts
//! the units with one ordinary UPDATE through ferrata-at. No try/confirm/cancel: the statement
//! commits locally as a branch with its undo log, and a global rollback restores the row.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::context::current_xid;
use ferrata::integrations::tower::XidLayer;
use ferrata_at::{AtDataSource, query};
use ferrata_purchase_demo::api::ReserveStock;
use ferrata_purchase_demo::at::{self, WorkError};
use ferrata_purchase_demo::service::{self, CommonArgs};
use serde_json::json;
use sqlx::Postgres;

/// Only what is on hand: AT needs no `frozen` column, the undo log remembers the old count.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (
    commodity_code VARCHAR(64) PRIMARY KEY,
    count          BIGINT NOT NULL CHECK (count >= 0)
)";

#[derive(Debug, Parser)]
#[command(about = "Stock service of the purchase demo (PostgreSQL, AT)")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// PostgreSQL URL of the stock database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Commodity to create if absent, as CODE=UNITS (repeatable).
    #[arg(long = "seed", value_parser = service::parse_seed, default_value = "C100=100")]
    seeds: Vec<(String, i64)>,
}

type App = AtDataSource<Postgres>;

/// Deducts in the caller's global transaction (XidLayer bound its TX_XID): one statement, run
/// as its own local transaction, becomes the branch.
async fn reserve(State(stock): State<App>, Json(body): Json<ReserveStock>) -> Response {
    at::reply(
        deduct(&stock, &body)
            .await
            .map(|()| json!({ "deducted": body.count })),
    )
}

async fn deduct(stock: &App, body: &ReserveStock) -> Result<(), WorkError> {
    if body.count <= 0 {
        return Err(WorkError::Refused(format!(
            "count must be positive, got {}",
            body.count
        )));
    }
    let deducted = stock
        .execute(
            query("UPDATE stock SET count = count - $1 WHERE commodity_code = $2 AND count >= $3")
                .bind(body.count)
                .bind(body.commodity.as_str())
                .bind(body.count),
        )
        .await?;
    if deducted == 1 {
        tracing::info!(xid = ?current_xid(), commodity = %body.commodity, count = body.count,
            "stock deducted (committed locally with its undo log)");
        return Ok(());
    }
    let available: Option<i64> =
        sqlx::query_scalar("SELECT count FROM stock WHERE commodity_code = $1")
            .bind(&body.commodity)
            .fetch_optional(stock.pool())
            .await?;
    Err(WorkError::Refused(match available {
        None => format!("unknown commodity {:?}", body.commodity),
        Some(available) => format!(
            "not enough stock of {}: {available} available, {} asked",
            body.commodity, body.count
        ),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::pg_pool(&args.database_url).await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    for (code, count) in &args.seeds {
        sqlx::query(
            "INSERT INTO stock (commodity_code, count) VALUES ($1, $2) \
             ON CONFLICT (commodity_code) DO NOTHING",
        )
        .bind(code)
        .bind(count)
        .execute(&pool)
        .await?;
    }

    let client = service::connect("stock-service-at", &args.common.tc).await?;
    // Creates undo_log if missing and registers the database with the TC as an AT resource.
    let stock = AtDataSource::builder(pool, client.clone()).build().await?;

    let app = axum::Router::new()
        .route("/stock/reserve", post(reserve))
        .with_state(stock)
        .layer(XidLayer::new());
    service::serve("stock service (AT)", args.common.listen, app, &client).await
}
