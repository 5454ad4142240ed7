//! The stock service (PostgreSQL, TCC action `stock-reserve`): try freezes units, confirm deducts
//! them, cancel releases them; every phase runs in one local transaction with the fence row.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::integrations::tower::XidLayer;
use ferrata_purchase_demo::api::ReserveStock;
use ferrata_purchase_demo::service::{self, CommonArgs};
use ferrata_purchase_demo::{ActionError, one_row};
use ferrata_tcc::{TccAction, TccContext, TccFence, TccParticipant, TccResource};
use serde_json::json;
use sqlx::Postgres;

const RESOURCE: &str = "stock-reserve";

type Tx = sqlx::Transaction<'static, Postgres>;

/// `count` is what is on hand, `frozen` what tries have reserved and not yet confirmed or
/// cancelled; only `count - frozen` can be reserved.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS stock (
    commodity_code VARCHAR(64) PRIMARY KEY,
    count          BIGINT NOT NULL CHECK (count >= 0),
    frozen         BIGINT NOT NULL DEFAULT 0 CHECK (frozen >= 0 AND frozen <= count)
)";

#[derive(Debug, Parser)]
#[command(about = "Stock service of the purchase demo (PostgreSQL, TCC)")]
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

#[derive(Debug)]
struct StockReserve;

impl TccParticipant for StockReserve {
    type Local = Tx;
    type Args = ReserveStock;
    type Output = ();
    type Params = ReserveStock;
    type Error = ActionError;

    fn action_name(&self) -> &str {
        RESOURCE
    }

    /// Registered with the branch, so confirm and cancel know what to deduct or release.
    fn params(&self, args: &ReserveStock) -> ReserveStock {
        args.clone()
    }

    async fn prepare(
        &self,
        tx: &mut Tx,
        ctx: &mut TccContext<ReserveStock>,
        args: ReserveStock,
    ) -> Result<(), ActionError> {
        if args.count <= 0 {
            return Err(ActionError::Refused(format!(
                "count must be positive, got {}",
                args.count
            )));
        }
        // One conditional UPDATE: the row lock makes check and reservation atomic.
        let reserved = sqlx::query(
            "UPDATE stock SET frozen = frozen + $1 \
             WHERE commodity_code = $2 AND count - frozen >= $1",
        )
        .bind(args.count)
        .bind(&args.commodity)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if reserved == 1 {
            tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, commodity = %args.commodity,
                count = args.count, "try: stock frozen");
            return Ok(());
        }
        let available: Option<i64> =
            sqlx::query_scalar("SELECT count - frozen FROM stock WHERE commodity_code = $1")
                .bind(&args.commodity)
                .fetch_optional(&mut **tx)
                .await?;
        Err(ActionError::Refused(match available {
            None => format!("unknown commodity {:?}", args.commodity),
            Some(available) => format!(
                "not enough stock of {}: {available} available, {} asked",
                args.commodity, args.count
            ),
        }))
    }

    async fn confirm(
        &self,
        tx: &mut Tx,
        ctx: &TccContext<ReserveStock>,
    ) -> Result<(), ActionError> {
        let ReserveStock { commodity, count } = &ctx.params;
        let done = sqlx::query(
            "UPDATE stock SET count = count - $1, frozen = frozen - $1 WHERE commodity_code = $2",
        )
        .bind(count)
        .bind(commodity)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, %commodity, count,
            "confirm: stock deducted");
        one_row(done, "deduct")
    }

    async fn cancel(&self, tx: &mut Tx, ctx: &TccContext<ReserveStock>) -> Result<(), ActionError> {
        // The fence only calls cancel after a committed try, so the units are frozen here.
        let ReserveStock { commodity, count } = &ctx.params;
        let done = sqlx::query("UPDATE stock SET frozen = frozen - $1 WHERE commodity_code = $2")
            .bind(count)
            .bind(commodity)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, %commodity, count,
            "cancel: stock released");
        one_row(done, "release")
    }
}

/// The registered action, shared by the request handlers.
type App = TccAction<StockReserve, TccFence<Postgres>>;

/// Runs the try inside the caller's global transaction (XidLayer bound its TX_XID).
async fn reserve(State(app): State<App>, Json(body): Json<ReserveStock>) -> Response {
    let count = body.count;
    let result = app.call(body).await;
    service::try_reply(result.map(|()| json!({ "reserved": count })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::pg_pool(&args.database_url).await?;
    // Creates tcc_fence_log if missing and deletes finished rows after a day (Java's default).
    let fence = TccFence::builder(pool.clone()).start().await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    for (code, count) in &args.seeds {
        sqlx::query(
            "INSERT INTO stock (commodity_code, count, frozen) VALUES ($1, $2, 0) \
             ON CONFLICT (commodity_code) DO NOTHING",
        )
        .bind(code)
        .bind(count)
        .execute(&pool)
        .await?;
    }

    let client = service::connect("stock-service", &args.common.tc).await?;
    let action = TccResource::with_guard(StockReserve, fence)
        .register(&client)
        .await?;

    let app = axum::Router::new()
        .route("/stock/reserve", post(reserve))
        .with_state(action)
        .layer(XidLayer::new());
    service::serve("stock service", args.common.listen, app, &client).await
}
