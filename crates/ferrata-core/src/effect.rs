//! What the coordinator asks its runtime to do: persist records, answer requests, send
//! phase-2 requests to resource managers. The runtime executes effects in order and releases
//! replies and branch requests only after every record before them is durable.

use ferrata_proto::{BranchType, GlobalStatus, TransactionExceptionCode};

use crate::id::{BranchId, TransactionId};
use crate::model::Record;
use crate::request::RequestKind;

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

/// The answer to one request. Each variant is the answer to one [`RequestKind`], so the runtime
/// builds the response message from the reply alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// GlobalBegin succeeded.
    Began { xid: String },
    /// BranchRegister succeeded.
    BranchRegistered { branch_id: BranchId },
    /// BranchReport succeeded.
    BranchReported,
    /// The global status after GlobalCommit.
    GlobalCommit { status: GlobalStatus },
    /// The global status after GlobalRollback.
    GlobalRollback { status: GlobalStatus },
    /// The stored global status (Finished for a transaction the TC no longer holds).
    GlobalStatus { status: GlobalStatus },
    /// The global status after GlobalReport.
    GlobalReport { status: GlobalStatus },
    /// GlobalLockQuery: whether every row asked about is free or held by the asker.
    Lockable(bool),
    /// The request failed; `request` says which response carries the error.
    Failed {
        request: RequestKind,
        error: TxError,
    },
}

impl Reply {
    /// The request this reply answers.
    pub fn kind(&self) -> RequestKind {
        match self {
            Reply::Began { .. } => RequestKind::Begin,
            Reply::BranchRegistered { .. } => RequestKind::BranchRegister,
            Reply::BranchReported => RequestKind::BranchReport,
            Reply::GlobalCommit { .. } => RequestKind::GlobalCommit,
            Reply::GlobalRollback { .. } => RequestKind::GlobalRollback,
            Reply::GlobalStatus { .. } => RequestKind::GlobalStatus,
            Reply::GlobalReport { .. } => RequestKind::GlobalReport,
            Reply::Lockable(_) => RequestKind::LockQuery,
            Reply::Failed { request, .. } => *request,
        }
    }
}

/// A phase-2 request for one branch, with what the runtime needs to pick a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRequest {
    pub transaction_id: TransactionId,
    pub xid: String,
    pub branch_id: BranchId,
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

/// One thing for the runtime to do. Effects are executed in the order they were produced; the
/// durability rule of each variant says what must be durable before it takes effect outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append this record to the store. Durable once the store says so (fsync or a committed
    /// database transaction); records of one transaction are appended in order.
    Persist(Record),
    /// Answer the request that carried `token`. Released only once every record produced before
    /// it is durable: never acknowledge what is not durable (ARCHITECTURE.md, principle 2).
    Reply { token: ReplyToken, reply: Reply },
    /// Send BranchCommit to the branch's RM. Sent only once the records of its transaction
    /// produced before it (the commit decision, the branch's data) are durable; records of other
    /// transactions need not be.
    BranchCommit(BranchRequest),
    /// Send BranchRollback to the branch's RM; the same rule as [`Effect::BranchCommit`].
    BranchRollback(BranchRequest),
    /// Ask every connected AT resource to delete undo logs older than `save_days`. Depends on no
    /// record: it may be sent at any time.
    UndoLogDelete { save_days: i16 },
    /// Reserve `count` more ids in the store and hand the range to
    /// [`crate::Coordinator::add_id_range`] ([`crate::config::IdSource::StoreRanges`] only).
    /// Depends on no record.
    ReserveIds { count: i64 },
}
