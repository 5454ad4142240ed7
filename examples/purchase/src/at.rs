//! What the three AT participants (`stock-at`, `order-at`, `account-at`) share: how their
//! ordinary SQL fails, and turning its outcome into HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferrata_at::AtError;
use serde::Serialize;

use crate::service::error_reply;

/// How an AT participant's work fails. A [`WorkError::Refused`] statement changed nothing (not
/// enough stock or money, unknown item): the caller gets 409 and rolls the global transaction
/// back, and AT undoes what the other participants committed. Anything else is 503.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    At(#[from] AtError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The HTTP answer to a participant's work: 200 with `body`, 409 for a refusal, 503 for
/// anything else (TC or database trouble). Any non-2xx makes the business service roll back.
pub fn reply<T: Serialize>(result: Result<T, WorkError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(WorkError::Refused(refused)) => {
            tracing::info!(%refused, "work refused");
            error_reply(StatusCode::CONFLICT, refused)
        }
        Err(error) => {
            tracing::warn!(%error, "work failed");
            error_reply(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}
