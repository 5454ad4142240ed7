//! `ferrata-saga`: long-running business processes with compensation. A state machine written
//! in Seata's JSON state language (or with the typed [`builder`]) runs on the [`engine`], its
//! progress kept in Seata's saga tables ([`store`]), its outcome reported to the TC as a Saga
//! transaction; [`svg`] draws a machine and an instance's path.

pub mod builder;
pub mod engine;
pub mod error;
#[cfg(feature = "axum")]
pub mod http;
pub mod json;
pub mod model;
pub mod store;
pub mod svg;
pub mod validate;

/// The expression language of Input, Output, Status and Choice (its own crate, `ferrata-expr`).
pub use ferrata_expr as expr;

/// The sqlx this crate is built against (pools for [`store::SqlStateLogStore`]).
pub use sqlx;
