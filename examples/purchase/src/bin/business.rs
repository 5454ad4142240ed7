//! The business service (TM): `POST /purchase` runs one global transaction that calls stock,
//! order and account over HTTP (carrying TX_XID), committing only if all of them succeeded.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use ferrata::integrations::reqwest::XidPropagation;
use ferrata::{Client, TransactionError, TransactionOptions};
use ferrata_purchase_demo::api::{
    CreateOrder, Debit, ErrorBody, OrderCreated, PurchaseReply, PurchaseRequest, ReserveStock,
};
use ferrata_purchase_demo::service::{self, CommonArgs};
use reqwest_middleware::ClientWithMiddleware;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Parser)]
#[command(about = "Business service (TM) of the purchase demo")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Base URL of the stock service.
    #[arg(long, env = "STOCK_URL")]
    stock_url: String,
    /// Base URL of the order service.
    #[arg(long, env = "ORDER_URL")]
    order_url: String,
    /// Base URL of the account service.
    #[arg(long, env = "ACCOUNT_URL")]
    account_url: String,
    /// Price of one unit of any commodity, charged to the buyer's account.
    #[arg(long, env = "DEMO_PRICE", default_value_t = 5)]
    price: i64,
    /// Global transaction timeout, in seconds.
    #[arg(long, env = "DEMO_TX_TIMEOUT_SECS", default_value_t = 30)]
    tx_timeout_secs: u64,
}

struct App {
    client: Client,
    http: ClientWithMiddleware,
    args: Args,
}

impl App {
    /// POSTs `body` as JSON to `url`; any non-2xx answer is an error carrying the callee's
    /// reason, which makes the purchase roll back.
    async fn call<T: DeserializeOwned>(
        &self,
        service: &str,
        url: String,
        body: &impl Serialize,
    ) -> Result<T, String> {
        let body = serde_json::to_vec(body).map_err(|e| format!("cannot encode request: {e}"))?;
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{service} service at {url} unreachable: {e}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{service} service answer lost: {e}"))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|body| body.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(format!("{service} service answered {status}: {error}"));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{service} service answered {status} with an unknown body: {e}"))
    }
}

async fn purchase(State(app): State<Arc<App>>, Json(request): Json<PurchaseRequest>) -> Response {
    let Some(money) = request
        .count
        .checked_mul(app.args.price)
        .filter(|_| request.count > 0)
    else {
        return service::error_reply(
            StatusCode::BAD_REQUEST,
            format!("count must be positive and small, got {}", request.count),
        );
    };
    let options =
        TransactionOptions::new("purchase").timeout(Duration::from_secs(app.args.tx_timeout_secs));
    // Filled in by the work, so that every answer names the transaction, even a failed one.
    let mut xid = String::new();
    let seen = &mut xid;
    let (app_ref, request) = (&*app, &request);
    let outcome = app
        .client
        .in_global_transaction(options, |tx| async move {
            *seen = tx.xid;
            let args = &app_ref.args;
            tracing::info!(xid = %seen, ?request, "purchase begins");
            // Each call carries TX_XID (XidPropagation); each callee registers a branch (TCC or
            // AT, the TM need not know which).
            let _: serde_json::Value = app_ref
                .call(
                    "stock",
                    format!("{}/stock/reserve", args.stock_url),
                    &ReserveStock {
                        commodity: request.commodity.clone(),
                        count: request.count,
                    },
                )
                .await?;
            let order: OrderCreated = app_ref
                .call(
                    "order",
                    format!("{}/order/create", args.order_url),
                    &CreateOrder {
                        user: request.user.clone(),
                        commodity: request.commodity.clone(),
                        count: request.count,
                        money,
                    },
                )
                .await?;
            let _: serde_json::Value = app_ref
                .call(
                    "account",
                    format!("{}/account/debit", args.account_url),
                    &Debit {
                        user: request.user.clone(),
                        money,
                    },
                )
                .await?;
            if request.fail {
                return Err(
                    "failure forced by the request (fail: true) after every try \
                            succeeded"
                        .to_owned(),
                );
            }
            Ok(order)
        })
        .await;

    let reply = |outcome: &str, order_id, reason: Option<String>| PurchaseReply {
        outcome: outcome.to_owned(),
        xid: xid.clone(),
        order_id,
        money: Some(money),
        reason,
    };
    let (status, body) = match outcome {
        Ok(order) => (
            StatusCode::OK,
            reply("committed", Some(order.order_id), None),
        ),
        // Every participant whose try ran is cancelled by the TC before rollback returns.
        Err(TransactionError::Aborted(reason)) => (
            StatusCode::CONFLICT,
            reply("rolled_back", None, Some(reason)),
        ),
        Err(error @ TransactionError::RollbackFailed { .. }) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            reply("rollback_failed", None, Some(error.to_string())),
        ),
        Err(TransactionError::Transaction(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            reply("failed", None, Some(error.to_string())),
        ),
    };
    tracing::info!(xid = %body.xid, outcome = %body.outcome, reason = ?body.reason, "purchase ends");
    (status, Json(body)).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    let args = Args::parse();

    let client = service::connect("business-service", &args.common.tc).await?;
    let http = reqwest::Client::builder()
        // Services talk over loopback: a proxy from the environment must not intercept them.
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()?;
    let http = reqwest_middleware::ClientBuilder::new(http)
        .with(XidPropagation)
        .build();

    let listen = args.common.listen;
    let app = axum::Router::new()
        .route("/purchase", post(purchase))
        .with_state(Arc::new(App {
            client: client.clone(),
            http,
            args,
        }));
    service::serve("business service", listen, app, &client).await
}
