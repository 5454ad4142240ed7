//! Behaviour of the sans-IO coordinator (semantics §1, §2, §3.2): commands go in with explicit
//! `now` values and reply tokens, and every test asserts the exact effects that come out —
//! records to persist, replies, phase-2 branch requests and undo-log cleanup — in order.
//!
//! Layout: one file per behaviour (begin/end, AT, TCC, rollback, locks, timeouts, retries,
//! failures, branch reports, stale answers, recovery, undo log, Saga reports and the Saga
//! engine's phase 2, XA answers, two-phase messages); the property test of the global
//! invariants is the `invariants` test target.

#[path = "../support/mod.rs"]
mod support;

use ferrata_core::{
    BranchId, BranchOutcome, Coordinator, Effect, GlobalSession, Record, Reply, RequestKind,
    TransactionId, transaction_id_of,
};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};
use support::*;

/// AT application data of a connection in a user-managed local transaction.
const USER_TX: &str = r#"{"autoCommit":false}"#;

mod admin;
mod at_commit;
mod begin_and_end;
mod branch_reports;
mod failures;
mod locks;
mod metrics;
mod outbox;
mod recovery;
mod retries;
mod rollback;
mod saga_engine;
mod saga_participants;
mod saga_reports;
mod shared_store;
mod stale_answers;
mod tcc_commit;
mod timeouts;
mod undo_log;
mod xa;
