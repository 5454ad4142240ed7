//! The JSON bodies of the demo's HTTP calls: client → business, and business → each participant.
//! One place, so caller and callee cannot drift apart.

use serde::{Deserialize, Serialize};

/// `POST /purchase` on the business service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub user: String,
    pub commodity: String,
    pub count: i64,
    /// Fail on purpose after every participant's try succeeded, to show the global rollback.
    #[serde(default)]
    pub fail: bool,
}

/// The business service's answer: what happened to the global transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurchaseReply {
    /// `committed`, `rolled_back`, `rollback_failed` or `failed` (begin/commit trouble).
    pub outcome: String,
    /// The global transaction, so a caller can look up its branches (empty if none began).
    pub xid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /stock/reserve`: freeze `count` units of `commodity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveStock {
    pub commodity: String,
    pub count: i64,
}

/// `POST /order/create`: a pending order of `user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateOrder {
    pub user: String,
    pub commodity: String,
    pub count: i64,
    pub money: i64,
}

/// The order service's answer to [`CreateOrder`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: u64,
}

/// `POST /account/debit`: freeze `money` of `user`'s balance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Debit {
    pub user: String,
    pub money: i64,
}

/// Every non-2xx answer of the demo's services.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
