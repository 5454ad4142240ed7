//! XID propagation over gRPC: an interceptor for tonic clients that puts the task's XID into
//! the `tx_xid` metadata (gRPC keys are lowercase). On the server side use
//! [`XidLayer`](crate::integrations::tower::XidLayer), which binds it for the whole call.
//!
//! ```no_run
//! # async fn demo(channel: tonic::transport::Channel) {
//! use ferrata::integrations::tonic::XidInterceptor;
//! let intercepted = tonic::service::interceptor::InterceptedService::new(channel, XidInterceptor);
//! // MyServiceClient::with_interceptor(channel, XidInterceptor) with generated clients.
//! # let _ = intercepted;
//! # }
//! ```

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::context::{
    BRANCH_TYPE_METADATA_KEY, XID_METADATA_KEY, current_branch_type, current_xid,
};

/// Adds `tx_xid` (and `tx_branch_type`) metadata to calls made inside a global transaction.
/// Interceptors run in the calling task, so the task-local XID is visible.
#[derive(Debug, Clone, Copy, Default)]
pub struct XidInterceptor;

impl Interceptor for XidInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        xid_interceptor(request)
    }
}

/// The same as a plain function, usable wherever tonic takes `fn(Request<()>) -> ...`.
pub fn xid_interceptor(mut request: Request<()>) -> Result<Request<()>, Status> {
    if let Some(xid) = current_xid() {
        match MetadataValue::try_from(xid.as_str()) {
            Ok(value) => {
                request.metadata_mut().insert(XID_METADATA_KEY, value);
            }
            Err(_) => tracing::warn!(%xid, "XID is not valid gRPC metadata; not propagated"),
        }
        if let Some(branch_type) = current_branch_type() {
            request.metadata_mut().insert(
                BRANCH_TYPE_METADATA_KEY,
                MetadataValue::from_static(branch_type.name()),
            );
        }
    }
    Ok(request)
}

/// The XID a tonic handler was called with, read from its request metadata (for handlers not
/// behind [`XidLayer`](crate::integrations::tower::XidLayer)).
pub fn request_xid<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(XID_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
