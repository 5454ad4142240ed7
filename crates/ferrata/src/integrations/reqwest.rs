//! Client side of XID propagation over HTTP: a `reqwest-middleware` middleware that adds the
//! task's XID as the `TX_XID` header (and `TX_BRANCH_TYPE` when a branch type is bound).
//!
//! ```no_run
//! use ferrata::{reqwest, reqwest_middleware};
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ferrata::integrations::reqwest::XidPropagation)
//!     .build();
//! # let _ = client;
//! ```

use http::{HeaderName, HeaderValue};
use reqwest_middleware::{Middleware, Next, Result};

use crate::context::{BRANCH_TYPE_HEADER, XID_HEADER, current_branch_type, current_xid};

/// Adds `TX_XID` to every request sent inside a global transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct XidPropagation;

/// The headers to send for the running task's context (none outside a transaction). Use it
/// with a plain `reqwest::RequestBuilder` when the middleware is not wanted.
pub fn xid_headers() -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let Some(xid) = current_xid() else {
        return headers;
    };
    match HeaderValue::from_str(&xid) {
        Ok(value) => headers.push((HeaderName::from_static("tx_xid"), value)),
        Err(_) => {
            tracing::warn!(%xid, "XID is not a valid header value; not propagated");
            return headers;
        }
    }
    if let Some(branch_type) = current_branch_type() {
        headers.push((
            HeaderName::from_static("tx_branch_type"),
            HeaderValue::from_static(branch_type.name()),
        ));
    }
    debug_assert!(XID_HEADER.eq_ignore_ascii_case("tx_xid"));
    debug_assert!(BRANCH_TYPE_HEADER.eq_ignore_ascii_case("tx_branch_type"));
    headers
}

#[async_trait::async_trait]
impl Middleware for XidPropagation {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        for (name, value) in xid_headers() {
            request.headers_mut().insert(name, value);
        }
        next.run(request, extensions).await
    }
}
