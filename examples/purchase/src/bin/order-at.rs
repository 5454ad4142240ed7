//! The order service in AT mode (MariaDB, its own database): `POST /order/create` inserts the
//! order with one ordinary INSERT in an AT local transaction. A global rollback deletes it again
//! (the undo log's before image is "no row").

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::integrations::tower::XidLayer;
use ferrata_at::{AtDataSource, query};
use ferrata_purchase_demo::api::{CreateOrder, OrderCreated};
use ferrata_purchase_demo::at::{self, WorkError};
use ferrata_purchase_demo::service::{self, CommonArgs};
use sqlx::MySql;

/// The order as it is: AT needs no status for phase 2, nor the branch that created it.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id        VARCHAR(64)  NOT NULL,
    commodity_code VARCHAR(64)  NOT NULL,
    count          BIGINT       NOT NULL,
    money          BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

#[derive(Debug, Parser)]
#[command(about = "Order service of the purchase demo (MariaDB, AT)")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// MariaDB/MySQL URL of the order database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

type App = AtDataSource<MySql>;

/// Creates the order in the caller's global transaction (XidLayer bound its TX_XID).
async fn create(State(orders): State<App>, Json(body): Json<CreateOrder>) -> Response {
    at::reply(insert(&orders, &body).await)
}

async fn insert(orders: &App, body: &CreateOrder) -> Result<OrderCreated, WorkError> {
    if body.count <= 0 || body.money < 0 {
        return Err(WorkError::Refused(format!(
            "bad order: count {} and money {} must be positive",
            body.count, body.money
        )));
    }
    let mut tx = orders.begin().await?;
    tx.execute(
        query("INSERT INTO orders (user_id, commodity_code, count, money) VALUES (?, ?, ?, ?)")
            .bind(body.user.as_str())
            .bind(body.commodity.as_str())
            .bind(body.count)
            .bind(body.money),
    )
    .await?;
    // A read on the same connection, which AT need not see.
    let order_id: u64 = sqlx::query_scalar("SELECT LAST_INSERT_ID()")
        .fetch_one(tx.connection()?)
        .await?;
    let xid = tx.xid().map(str::to_owned);
    // Registers the branch (lock key orders:<id>), writes the undo log, commits locally.
    tx.commit().await?;
    tracing::info!(
        ?xid,
        order_id,
        "order created (committed locally with its undo log)"
    );
    Ok(OrderCreated { order_id })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::mysql_pool(&args.database_url).await?;
    sqlx::query(SCHEMA).execute(&pool).await?;

    let client = service::connect("order-service-at", &args.common.tc).await?;
    // Creates undo_log if missing and registers the database with the TC as an AT resource.
    let orders = AtDataSource::builder(pool, client.clone()).build().await?;

    let app = axum::Router::new()
        .route("/order/create", post(create))
        .with_state(orders)
        .layer(XidLayer::new());
    service::serve("order service (AT)", args.common.listen, app, &client).await
}
