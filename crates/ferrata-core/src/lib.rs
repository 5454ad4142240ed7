//! `ferrata-core`: the sans-IO transaction coordinator. Commands go in (requests, phase-2
//! results, timer ticks), effects come out (records to persist, replies, branch requests).
//! No sockets, files, threads or clocks: time is an input.

pub mod branches;
pub mod config;
pub mod coordinator;
pub mod effect;
pub mod id;
pub mod lock;
pub mod model;
pub mod rate_limit;

pub use branches::Branches;
pub use config::{CoordinatorConfig, RateLimit};
pub use coordinator::{
    BranchRegistration, Coordinator, CoordinatorStats, Requester, transaction_id_of,
};
pub use effect::{BranchOutcome, BranchRequest, Effect, Reply, ReplyToken, TxError};
pub use model::{BranchSession, GlobalSession, Record, SessionTable, StoredTransaction};
