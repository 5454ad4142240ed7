//! Server side of XID propagation: a tower `Layer` ([`tower_layer::Layer`]) that binds the XID of
//! an inbound request (`TX_XID` header / `tx_xid` gRPC metadata, `TX_BRANCH_TYPE=TCC`) to the
//! task context while the request is served. Works for axum routers and tonic servers alike.
//!
//! ```no_run
//! use ferrata::context::current_xid;
//! use ferrata::integrations::tower::XidLayer;
//!
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { current_xid().unwrap_or_default() }))
//!     .layer(XidLayer::new());
//! // tonic: tonic::transport::Server::builder().layer(XidLayer::new()).add_service(...)
//! # let _ = app;
//! ```

use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{self, BRANCH_TYPE_HEADER, TxContext, XID_HEADER};

/// Binds the inbound XID for the inner service (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct XidLayer;

impl XidLayer {
    pub fn new() -> XidLayer {
        XidLayer
    }
}

impl<S> Layer<S> for XidLayer {
    type Service = XidService<S>;

    fn layer(&self, inner: S) -> XidService<S> {
        XidService { inner }
    }
}

/// The service [`XidLayer`] produces.
#[derive(Debug, Clone)]
pub struct XidService<S> {
    inner: S,
}

/// The context an inbound request asks for: its `TX_XID` (header names are case-insensitive,
/// so gRPC's lowercase `tx_xid` matches) and a TCC branch type. A context already bound to the
/// serving task wins, as in Java's interceptors; a blank header binds nothing.
pub fn inbound_context<B>(request: &http::Request<B>) -> TxContext {
    let current = TxContext::current();
    if current.xid.is_some() {
        return current;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let xid = header(XID_HEADER);
    let branch_type = header(BRANCH_TYPE_HEADER);
    context::inbound_context(xid.as_deref(), branch_type.as_deref()).unwrap_or(current)
}

impl<S, B> Service<http::Request<B>> for XidService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<TxContext, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let bound = inbound_context(&request);
        if let Some(xid) = &bound.xid {
            tracing::trace!(%xid, "binding inbound XID");
        }
        // Unbinding is implicit: the scope ends with the response future.
        bound.scope(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_case_insensitively() {
        let request = http::Request::builder()
            .header("tx_xid", "127.0.0.1:8091:7")
            .header("TX_BRANCH_TYPE", "TCC")
            .body(())
            .expect("request");
        let bound = inbound_context(&request);
        assert_eq!(bound.xid.as_deref(), Some("127.0.0.1:8091:7"));
        assert_eq!(bound.branch_type, Some(crate::BranchType::Tcc));
        let blank = http::Request::builder()
            .header("TX_XID", " ")
            .body(())
            .expect("request");
        assert_eq!(inbound_context(&blank), TxContext::default());
    }
}
