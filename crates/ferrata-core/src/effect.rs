//! What the coordinator asks its runtime to do: persist records, answer requests, send
//! phase-2 requests to resource managers. The runtime executes effects in order and releases
//! replies and branch requests only after every record before them is durable.

use ferrata_proto::{BranchType, GlobalStatus, TransactionExceptionCode};

use crate::model::Record;

/// Opaque handle the runtime uses to route a reply back to the request that caused it.
pub type ReplyToken = u64;

/// A failed request: the Seata exception code and a message saying what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxError {
    pub code: TransactionExceptionCode,
    pub message: String,
}

impl TxError {
    pub fn new(code: TransactionExceptionCode, message: impl Into<String>) -> TxError {
        TxError {
            code,
            message: message.into(),
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Began {
        xid: String,
    },
    BranchRegistered {
        branch_id: i64,
    },
    BranchReported,
    /// The global status after GlobalCommit, GlobalRollback, GlobalStatus or GlobalReport.
    Status(GlobalStatus),
    Lockable(bool),
    /// A failed request; `status` is the stored global status for the global end requests.
    Failed {
        error: TxError,
        status: Option<GlobalStatus>,
    },
}

/// A phase-2 request for one branch, with what the runtime needs to pick a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRequest {
    pub transaction_id: i64,
    pub xid: String,
    pub branch_id: i64,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub application_data: String,
    /// `applicationId:ip:port` of the connection that registered the branch.
    pub client_id: String,
}

/// What came back from a phase-2 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchOutcome {
    /// The RM answered with this branch status.
    Status(ferrata_proto::BranchStatus),
    /// No answer: no connection for the resource, send failure or timeout. Retried later.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Persist(Record),
    Reply {
        token: ReplyToken,
        reply: Reply,
    },
    BranchCommit(BranchRequest),
    BranchRollback(BranchRequest),
    /// Ask every connected AT resource to delete undo logs older than `save_days`.
    UndoLogDelete {
        save_days: i16,
    },
}
