//! XID propagation for HTTP and gRPC, each behind a cargo feature: a tower layer binding the
//! inbound `TX_XID` (axum routers, tonic servers), a reqwest middleware and a tonic interceptor
//! sending it.

#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower")]
pub mod tower;
