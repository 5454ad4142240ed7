//! The SDK guide's example (docs/guide/sdk.md shows this file verbatim, and a test runs it
//! against a real ferrata-server and PostgreSQL): a stock service whose TCC participant runs
//! behind the fence, and an order service (TM) that buys from it over HTTP inside one global
//! transaction. Run: `cargo run -p ferrata-tcc --example purchase` with ferrata-server on
//! 127.0.0.1:8091 (or FERRATA_TC=host:port) and PostgreSQL at DATABASE_URL.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferrata::integrations::reqwest::XidPropagation;
use ferrata::integrations::tower::XidLayer;
use ferrata::{Client, ClientConfig, TransactionOptions, reqwest, reqwest_middleware};
use ferrata_tcc::sqlx::{self, PgPool, Postgres, Transaction};
use ferrata_tcc::{TccAction, TccContext, TccError, TccFence, TccParticipant, TccResource};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a try reserved. It is the branch's action context: registered with the branch, and
/// handed back to confirm and cancel (a serde type, so a misspelt field does not compile).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub sku: String,
    pub quantity: i64,
}

/// How a phase of the stock action fails: `OutOfStock` is the business answer to the caller,
/// anything else in phase two means "not done yet" and the TC calls again.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("not enough {0} in stock")]
    OutOfStock(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The stock service's TCC action. Each phase's statements run in the fence's local
/// transaction and commit together with its `tcc_fence_log` row, so confirm and cancel take
/// effect once however often the TC calls, a cancel that arrives before its try is recorded
/// (and does nothing), and a try that arrives after its cancel is refused.
#[derive(Debug)]
pub struct ReserveStock;

impl TccParticipant for ReserveStock {
    type Local = Transaction<'static, Postgres>;
    type Args = Reservation;
    type Output = ();
    type Params = Reservation;
    type Error = StockError;

    fn action_name(&self) -> &str {
        "stock-reserve"
    }

    fn params(&self, args: &Reservation) -> Reservation {
        args.clone()
    }

    /// Try: move units from `available` to `reserved`.
    async fn prepare(
        &self,
        tx: &mut Self::Local,
        ctx: &mut TccContext<Reservation>,
        _: Reservation,
    ) -> Result<(), StockError> {
        let Reservation { sku, quantity } = &ctx.params;
        let moved = sqlx::query(
            "UPDATE stock SET available = available - $1, reserved = reserved + $1 \
             WHERE sku = $2 AND available >= $1",
        )
        .bind(quantity)
        .bind(sku)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if moved == 1 {
            Ok(())
        } else {
            Err(StockError::OutOfStock(sku.clone()))
        }
    }

    /// Confirm: the reserved units are sold.
    async fn confirm(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Reservation>,
    ) -> Result<(), StockError> {
        let Reservation { sku, quantity } = &ctx.params;
        sqlx::query("UPDATE stock SET reserved = reserved - $1 WHERE sku = $2")
            .bind(quantity)
            .bind(sku)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Cancel: the reserved units go back on the shelf.
    async fn cancel(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Reservation>,
    ) -> Result<(), StockError> {
        let Reservation { sku, quantity } = &ctx.params;
        sqlx::query(
            "UPDATE stock SET available = available + $1, reserved = reserved - $1 WHERE sku = $2",
        )
        .bind(quantity)
        .bind(sku)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

type StockAction = TccAction<ReserveStock, TccFence<Postgres>>;

/// `POST /reserve/{sku}/{quantity}`: the try, inside the caller's global transaction (XidLayer
/// bound its TX_XID header to this task).
async fn reserve(
    State(action): State<StockAction>,
    Path((sku, quantity)): Path<(String, i64)>,
) -> (StatusCode, String) {
    match action.call(Reservation { sku, quantity }).await {
        Ok(()) => (StatusCode::OK, "reserved".to_owned()),
        Err(TccError::Business { source, .. }) => (StatusCode::CONFLICT, source.to_string()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

/// Starts the stock service on a free port; returns its base URL.
pub async fn start_stock_service(tc: &str, pool: PgPool) -> Result<String, BoxError> {
    let client = Client::connect(
        ClientConfig::builder("stock-service")
            .tc_addresses([tc])
            .build()?,
    )
    .await?;
    // Creates tcc_fence_log if it is missing and deletes finished rows once a day.
    let fence = TccFence::builder(pool).start().await?;
    // Registers the action with the TC under its name; the handle is cheap to clone.
    let action = TccResource::with_guard(ReserveStock, fence)
        .register(&client)
        .await?;

    let app = axum::Router::new()
        .route("/reserve/{sku}/{quantity}", axum::routing::post(reserve))
        .with_state(action)
        .layer(XidLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The order service: one purchase is one global transaction.
pub async fn purchase(
    orders: &Client,
    http: &reqwest_middleware::ClientWithMiddleware,
    reserve_url: &str,
    quantity: i64,
    payment_ok: bool,
) -> Result<String, BoxError> {
    let options = TransactionOptions::new("purchase").timeout(Duration::from_secs(30));
    let order = orders
        .in_global_transaction(options, |tx| async move {
            // XidPropagation adds TX_XID, so the stock service's try joins this transaction.
            http.post(format!("{reserve_url}/{quantity}"))
                .send()
                .await?
                .error_for_status()?;
            if !payment_ok {
                // Err rolls the whole transaction back: the TC has the stock service cancel.
                return Err::<String, BoxError>("payment declined".into());
            }
            Ok(format!("order in {}", tx.xid))
        })
        .await?;
    // Ok: the TC decided to commit. Confirm runs after this returns (the TC retries it until
    // it succeeds), so the reserved units are sold shortly afterwards.
    Ok(order)
}

/// The stock table, with `units` of `sku` on the shelf.
pub async fn stock_up(pool: &PgPool, sku: &str, units: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS stock \
         (sku VARCHAR(64) PRIMARY KEY, available BIGINT NOT NULL, reserved BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO stock (sku, available, reserved) VALUES ($1, $2, 0) \
         ON CONFLICT (sku) DO UPDATE SET available = $2, reserved = 0",
    )
    .bind(sku)
    .bind(units)
    .execute(pool)
    .await?;
    Ok(())
}

/// `(available, reserved)` units of `sku`.
pub async fn stock_of(pool: &PgPool, sku: &str) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT available, reserved FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_one(pool)
        .await
}

/// Buys 2 units of `sku` (committed), then 3 with a failing payment (rolled back).
pub async fn run(tc: &str, pool: PgPool, sku: &str) -> Result<(), BoxError> {
    let stock = start_stock_service(tc, pool).await?;
    let orders = Client::connect(
        ClientConfig::builder("order-service")
            .tc_addresses([tc])
            .build()?,
    )
    .await?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XidPropagation)
        .build();
    let reserve_url = format!("{stock}/reserve/{sku}");

    let order = purchase(&orders, &http, &reserve_url, 2, true).await?;
    println!("committed: {order}");
    match purchase(&orders, &http, &reserve_url, 3, false).await {
        Ok(order) => println!("unexpectedly committed: {order}"),
        Err(error) => println!("rolled back: {error}"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tc = std::env::var("FERRATA_TC").unwrap_or_else(|_| "127.0.0.1:8091".to_owned());
    let pool = PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    stock_up(&pool, "apple", 10).await?;
    run(&tc, pool.clone(), "apple").await?;
    // Phase two runs after the global transactions end; give it a moment before looking.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (available, reserved) = stock_of(&pool, "apple").await?;
    println!("available: {available}, reserved: {reserved}");
    Ok(())
}
