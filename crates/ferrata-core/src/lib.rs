//! `ferrata-core`: the sans-IO transaction coordinator. No sockets, files, threads or clocks:
//! time is an input, and everything the coordinator wants done comes out as an [`Effect`].
//!
//! ```text
//!   in (Coordinator methods)                       out (Effect, drained in order)
//!   handle(now_ms, token, requester, Request) ──┐   ┌──▶ Persist(Record)         → store
//!   branch_result(now_ms, tx, branch, outcome) ─┼──▶┼──▶ Reply { token, Reply }  → requester
//!   tick(now_ms)                               ─┘   ├──▶ BranchCommit / Rollback → one RM
//!   recover(config, SessionTable, now_ms): start    └──▶ UndoLogDelete           → AT RMs
//! ```
//!
//! Effects come out in the order they must take effect; each [`Effect`] variant says what must be
//! durable before the runtime may let it out.

pub mod branches;
pub mod config;
pub mod coordinator;
pub mod effect;
pub mod history;
pub mod id;
pub mod lock;
pub mod model;
pub mod rate_limit;
pub mod request;
pub mod stats;

pub use branches::Branches;
pub use config::{CoordinatorConfig, IdSource, RateLimit, StoreSharing};
pub use coordinator::admin::{
    AdminAction, LockFilter, LockPage, LockView, TransactionDetail, TransactionFilter,
    TransactionPage, TransactionSummary,
};
pub use coordinator::{
    Coordinator, CoordinatorStats, OUTBOX_PREFIX, transaction_id_of, xid_prefix,
};
pub use effect::{BranchOutcome, BranchRequest, Effect, Refusal, Reply, ReplyToken, TxError};
pub use history::{Event, History, Phase2Kind};
pub use id::{BranchId, TransactionId};
pub use model::{BranchSession, GlobalSession, Record, SessionTable, StoredTransaction};
pub use request::{BranchRegistration, Request, RequestKind, Requester};
pub use stats::{GroupCounts, MetricsSnapshot, SeataOutcome, TransactionCounts, Window};
