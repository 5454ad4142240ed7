//! The order service (MariaDB, TCC action `order-create`): try inserts the order as 'pending',
//! confirm marks it 'done', cancel deletes it; each phase commits together with its fence row.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::integrations::tower::XidLayer;
use ferrata_purchase_demo::api::{CreateOrder, OrderCreated};
use ferrata_purchase_demo::service::{self, CommonArgs};
use ferrata_purchase_demo::{ActionError, one_row};
use ferrata_tcc::{NoParams, TccAction, TccContext, TccFence, TccParticipant, TccResource};
use sqlx::MySql;

const RESOURCE: &str = "order-create";

type Tx = sqlx::Transaction<'static, MySql>;

/// Each order remembers the branch that created it, which is how phase 2 finds it again.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    xid            VARCHAR(128) NOT NULL,
    branch_id      BIGINT       NOT NULL,
    user_id        VARCHAR(64)  NOT NULL,
    commodity_code VARCHAR(64)  NOT NULL,
    count          BIGINT       NOT NULL,
    money          BIGINT       NOT NULL,
    status         VARCHAR(16)  NOT NULL,
    UNIQUE KEY uk_orders_branch (xid, branch_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

#[derive(Debug, Parser)]
#[command(about = "Order service of the purchase demo (MariaDB, TCC)")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// MariaDB/MySQL URL of the order database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

#[derive(Debug)]
struct OrderCreate;

impl TccParticipant for OrderCreate {
    type Local = Tx;
    type Args = CreateOrder;
    type Output = OrderCreated;
    // Nothing in the context: phase 2 finds the order by the branch's (xid, branch id).
    type Params = NoParams;
    type Error = ActionError;

    fn action_name(&self) -> &str {
        RESOURCE
    }

    fn params(&self, _: &CreateOrder) -> NoParams {
        NoParams {}
    }

    async fn prepare(
        &self,
        tx: &mut Tx,
        ctx: &mut TccContext<NoParams>,
        args: CreateOrder,
    ) -> Result<OrderCreated, ActionError> {
        if args.count <= 0 || args.money < 0 {
            return Err(ActionError::Refused(format!(
                "bad order: count {} and money {} must be positive",
                args.count, args.money
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO orders (xid, branch_id, user_id, commodity_code, count, money, status) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending')",
        )
        .bind(&ctx.xid)
        .bind(ctx.branch_id)
        .bind(&args.user)
        .bind(&args.commodity)
        .bind(args.count)
        .bind(args.money)
        .execute(&mut **tx)
        .await?;
        let order_id = inserted.last_insert_id();
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, order_id, "try: order pending");
        Ok(OrderCreated { order_id })
    }

    async fn confirm(&self, tx: &mut Tx, ctx: &TccContext<NoParams>) -> Result<(), ActionError> {
        // The fence runs confirm once, after a committed try: the pending row is there.
        let done = sqlx::query(
            "UPDATE orders SET status = 'done' \
             WHERE xid = ? AND branch_id = ? AND status = 'pending'",
        )
        .bind(&ctx.xid)
        .bind(ctx.branch_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        one_row(done, "confirm")?;
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, "confirm: order done");
        Ok(())
    }

    async fn cancel(&self, tx: &mut Tx, ctx: &TccContext<NoParams>) -> Result<(), ActionError> {
        // Deleting (rather than marking 'cancelled') leaves the table exactly as before the try.
        sqlx::query("DELETE FROM orders WHERE xid = ? AND branch_id = ? AND status = 'pending'")
            .bind(&ctx.xid)
            .bind(ctx.branch_id)
            .execute(&mut **tx)
            .await?;
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, "cancel: order deleted");
        Ok(())
    }
}

/// The registered action, shared by the request handlers.
type App = TccAction<OrderCreate, TccFence<MySql>>;

/// Runs the try inside the caller's global transaction (XidLayer bound its TX_XID).
async fn create(State(app): State<App>, Json(body): Json<CreateOrder>) -> Response {
    service::try_reply(app.call(body).await)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::mysql_pool(&args.database_url).await?;
    // Creates tcc_fence_log if missing and deletes finished rows after a day (Java's default).
    let fence = TccFence::builder(pool.clone()).start().await?;
    sqlx::query(SCHEMA).execute(&pool).await?;

    let client = service::connect("order-service", &args.common.tc).await?;
    let action = TccResource::with_guard(OrderCreate, fence)
        .register(&client)
        .await?;

    let app = axum::Router::new()
        .route("/order/create", post(create))
        .with_state(action)
        .layer(XidLayer::new());
    service::serve("order service", args.common.listen, app, &client).await
}
