//! The account service (MariaDB, its own database, TCC action `account-debit`): try freezes money
//! (refusing when the balance is short), confirm deducts it, cancel unfreezes it, with the fence.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use clap::Parser;
use ferrata::integrations::tower::XidLayer;
use ferrata_purchase_demo::api::Debit;
use ferrata_purchase_demo::service::{self, CommonArgs};
use ferrata_purchase_demo::{ActionError, one_row};
use ferrata_tcc::{TccAction, TccContext, TccFence, TccParticipant, TccResource};
use serde_json::json;
use sqlx::MySql;

const RESOURCE: &str = "account-debit";

type Tx = sqlx::Transaction<'static, MySql>;

/// `frozen` is money promised to tries not yet confirmed or cancelled; only
/// `balance - frozen` can be promised again.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS account (
    user_id VARCHAR(64) NOT NULL PRIMARY KEY,
    balance BIGINT      NOT NULL,
    frozen  BIGINT      NOT NULL DEFAULT 0,
    CONSTRAINT ck_account_amounts CHECK (frozen >= 0 AND frozen <= balance)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

#[derive(Debug, Parser)]
#[command(about = "Account service of the purchase demo (MariaDB, TCC)")]
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

#[derive(Debug)]
struct AccountDebit;

impl TccParticipant for AccountDebit {
    type Local = Tx;
    type Args = Debit;
    type Output = ();
    type Params = Debit;
    type Error = ActionError;

    fn action_name(&self) -> &str {
        RESOURCE
    }

    /// Registered with the branch, so confirm and cancel know whose money and how much.
    fn params(&self, args: &Debit) -> Debit {
        args.clone()
    }

    async fn prepare(
        &self,
        tx: &mut Tx,
        ctx: &mut TccContext<Debit>,
        args: Debit,
    ) -> Result<(), ActionError> {
        if args.money <= 0 {
            return Err(ActionError::Refused(format!(
                "money must be positive, got {}",
                args.money
            )));
        }
        // One conditional UPDATE: the row lock makes check and freeze atomic.
        let frozen = sqlx::query(
            "UPDATE account SET frozen = frozen + ? WHERE user_id = ? AND balance - frozen >= ?",
        )
        .bind(args.money)
        .bind(&args.user)
        .bind(args.money)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if frozen == 1 {
            tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, user = %args.user,
                money = args.money, "try: money frozen");
            return Ok(());
        }
        let available: Option<i64> =
            sqlx::query_scalar("SELECT balance - frozen FROM account WHERE user_id = ?")
                .bind(&args.user)
                .fetch_optional(&mut **tx)
                .await?;
        Err(ActionError::Refused(match available {
            None => format!("unknown user {:?}", args.user),
            Some(available) => format!(
                "insufficient balance of {}: {available} available, {} needed",
                args.user, args.money
            ),
        }))
    }

    async fn confirm(&self, tx: &mut Tx, ctx: &TccContext<Debit>) -> Result<(), ActionError> {
        let Debit { user, money } = &ctx.params;
        let done = sqlx::query(
            "UPDATE account SET balance = balance - ?, frozen = frozen - ? WHERE user_id = ?",
        )
        .bind(money)
        .bind(money)
        .bind(user)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, %user, money,
            "confirm: money deducted");
        one_row(done, "deduct")
    }

    async fn cancel(&self, tx: &mut Tx, ctx: &TccContext<Debit>) -> Result<(), ActionError> {
        // The fence only calls cancel after a committed try, so the money is frozen here.
        let Debit { user, money } = &ctx.params;
        let done = sqlx::query("UPDATE account SET frozen = frozen - ? WHERE user_id = ?")
            .bind(money)
            .bind(user)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, %user, money,
            "cancel: money unfrozen");
        one_row(done, "unfreeze")
    }
}

/// The registered action, shared by the request handlers.
type App = TccAction<AccountDebit, TccFence<MySql>>;

/// Runs the try inside the caller's global transaction (XidLayer bound its TX_XID).
async fn debit(State(app): State<App>, Json(body): Json<Debit>) -> Response {
    let money = body.money;
    let result = app.call(body).await;
    service::try_reply(result.map(|()| json!({ "frozen": money })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let pool = service::mysql_pool(&args.database_url).await?;
    // Creates tcc_fence_log if missing and deletes finished rows after a day (Java's default).
    let fence = TccFence::builder(pool.clone()).start().await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    for (user, balance) in &args.seeds {
        // A no-op update on a duplicate keeps an existing balance (re-runs are idempotent).
        sqlx::query(
            "INSERT INTO account (user_id, balance, frozen) VALUES (?, ?, 0) \
             ON DUPLICATE KEY UPDATE user_id = user_id",
        )
        .bind(user)
        .bind(balance)
        .execute(&pool)
        .await?;
    }

    let client = service::connect("account-service", &args.common.tc).await?;
    let action = TccResource::with_guard(AccountDebit, fence)
        .register(&client)
        .await?;

    let app = axum::Router::new()
        .route("/account/debit", post(debit))
        .with_state(action)
        .layer(XidLayer::new());
    service::serve("account service", args.common.listen, app, &client).await
}
