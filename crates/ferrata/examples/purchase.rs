//! The SDK guide's example (docs/guide/sdk.md shows this file verbatim, and a test runs it
//! against a real ferrata-server): an order service (TM) calls a stock service (RM participant)
//! over HTTP inside one global transaction. Run: `cargo run -p ferrata --example purchase`
//! with ferrata-server listening on 127.0.0.1:8091 (or FERRATA_TC=host:port).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use ferrata::context::current_xid;
use ferrata::integrations::reqwest::XidPropagation;
use ferrata::integrations::tower::XidLayer;
use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{
    BranchRegistration, BranchStatus, BranchType, Client, ClientConfig, TransactionOptions,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stock service's data: units on hand, and units reserved per global transaction.
#[derive(Debug, Clone)]
pub struct Stock {
    state: Arc<Mutex<(i64, HashMap<String, i64>)>>,
}

impl Stock {
    pub fn new(units: i64) -> Stock {
        Stock {
            state: Arc::new(Mutex::new((units, HashMap::new()))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (i64, HashMap<String, i64>)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Phase one ("try"): take units off the shelf and remember them under the XID.
    fn reserve(&self, xid: &str, quantity: i64) -> bool {
        let mut state = self.lock();
        if state.0 < quantity {
            return false;
        }
        state.0 -= quantity;
        *state.1.entry(xid.to_owned()).or_default() += quantity;
        true
    }

    pub fn available(&self) -> i64 {
        self.lock().0
    }

    pub fn reserved(&self) -> usize {
        self.lock().1.len()
    }
}

/// Phase two, called by the TC through the SDK. Both must be idempotent: the TC repeats a
/// request it got no answer to, and a rollback may arrive for a try that never ran.
impl BranchHandler for Stock {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        // Confirm: the reserved units are sold.
        self.lock().1.remove(&request.xid);
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        // Cancel: put the reserved units back on the shelf.
        let mut state = self.lock();
        if let Some(quantity) = state.1.remove(&request.xid) {
            state.0 += quantity;
        }
        BranchStatus::PhaseTwoRollbacked
    }
}

const RESOURCE: &str = "stock-reserve";

/// Starts the stock service on a free port; returns its base URL.
pub async fn start_stock_service(tc: &str, stock: Stock) -> Result<String, BoxError> {
    let config = ClientConfig::builder("stock-service")
        .tc_addresses([tc])
        .build()?;
    let client = Client::connect(config).await?;
    client.register_resource(RESOURCE, stock.clone()).await?;

    let reserve = move |Path(quantity): Path<i64>| async move {
        // XidLayer bound the caller's TX_XID header to this task.
        let Some(xid) = current_xid() else {
            return (
                StatusCode::BAD_REQUEST,
                "call me inside a global transaction".into(),
            );
        };
        // Register the branch first, so that a rollback reaches us even if the try fails.
        let context = format!(r#"{{"quantity":{quantity}}}"#);
        if let Err(error) = client
            .branch_register(
                BranchRegistration::new(&xid, BranchType::Tcc, RESOURCE).application_data(&context),
            )
            .await
        {
            return (StatusCode::SERVICE_UNAVAILABLE, error.to_string());
        }
        if stock.reserve(&xid, quantity) {
            (StatusCode::OK, "reserved".to_owned())
        } else {
            (StatusCode::CONFLICT, "not enough stock".to_owned())
        }
    };
    let app = axum::Router::new()
        .route("/reserve/{quantity}", axum::routing::post(reserve))
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
    stock_url: &str,
    quantity: i64,
    payment_ok: bool,
) -> Result<String, BoxError> {
    let options = TransactionOptions::new("purchase").timeout(Duration::from_secs(30));
    let order = orders
        .in_global_transaction(options, |tx| async move {
            // XidPropagation adds TX_XID, so the stock service joins this transaction.
            http.post(format!("{stock_url}/reserve/{quantity}"))
                .send()
                .await?
                .error_for_status()?;
            if !payment_ok {
                // Err rolls the whole transaction back: the stock service cancels.
                return Err::<String, BoxError>("payment declined".into());
            }
            Ok(format!("order in {}", tx.xid))
        })
        .await?;
    Ok(order)
}

/// Buys 2 units (committed), then 3 with a failing payment (rolled back).
pub async fn run(tc: &str, stock: Stock) -> Result<(), BoxError> {
    let stock_url = start_stock_service(tc, stock).await?;

    let orders = Client::connect(
        ClientConfig::builder("order-service")
            .tc_addresses([tc])
            .build()?,
    )
    .await?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XidPropagation)
        .build();

    let order = purchase(&orders, &http, &stock_url, 2, true).await?;
    println!("committed: {order}");
    match purchase(&orders, &http, &stock_url, 3, false).await {
        Ok(order) => println!("unexpectedly committed: {order}"),
        Err(error) => println!("rolled back: {error}"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tc = std::env::var("FERRATA_TC").unwrap_or_else(|_| "127.0.0.1:8091".to_owned());
    let stock = Stock::new(10);
    run(&tc, stock.clone()).await?;
    println!(
        "available: {}, open reservations: {}",
        stock.available(),
        stock.reserved()
    );
    Ok(())
}
