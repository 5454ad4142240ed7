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

/// Why a shared store did not apply a write ([`Effect::PersistIf`], or an AT branch's rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The transaction's stored status was no longer the expected one: another node decided.
    StatusChanged { actual: GlobalStatus },
    /// The transaction is not stored (any more): another node ended it.
    Gone,
    /// A row of the branch is held by another transaction (of another node).
    RowLocked {
        table: String,
        pk: String,
        holder: TransactionId,
    },
    /// A value does not fit the store's columns.
    Unstorable { reason: String },
}

impl Refusal {
    /// The answer a request gets in place of the one that depended on the refused write.
    pub fn reply(&self, request: RequestKind, xid: &str) -> Reply {
        use ferrata_proto::TransactionExceptionCode as Code;
        let failed = |code, message: String| Reply::Failed {
            request,
            error: TxError::new(code, message),
        };
        match (self, request) {
            (Refusal::StatusChanged { actual }, RequestKind::GlobalCommit) => {
                Reply::GlobalCommit { status: *actual }
            }
            (Refusal::StatusChanged { actual }, RequestKind::GlobalRollback) => {
                Reply::GlobalRollback { status: *actual }
            }
            // Finished would tell a TM its commit was applied; it was not.
            (Refusal::Gone, RequestKind::GlobalRollback) => Reply::GlobalRollback {
                status: GlobalStatus::Finished,
            },
            (Refusal::RowLocked { table, pk, holder }, _) => failed(
                Code::LockKeyConflict,
                format!(
                    "global lock acquire failed: xid {xid}: row {table}:{pk} is locked by transaction {holder}"
                ),
            ),
            (Refusal::StatusChanged { actual }, _) => failed(
                Code::GlobalTransactionStatusInvalid,
                format!("{xid} is no longer Begin (now {actual:?}): another TC node decided it"),
            ),
            (Refusal::Gone, _) => failed(
                Code::GlobalTransactionNotExist,
                format!("{xid} no longer exists: another TC node ended it"),
            ),
            (Refusal::Unstorable { reason }, _) => failed(
                match request {
                    RequestKind::Begin => Code::BeginFailed,
                    _ => Code::FailedToAddBranch,
                },
                format!("{xid}: the store cannot hold it: {reason}"),
            ),
        }
    }
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
    /// [`Effect::Persist`] applied only if the transaction's stored status is still `status`
    /// ([`crate::StoreSharing::Shared`] only: every write of a transaction carries the status
    /// this node believes is stored, so a node that lost a race writes nothing more). The
    /// same durability rule; when the store refuses it, whatever followed it for the same
    /// transaction (its reply, its phase-2 requests) must not go out, and the refusal goes to
    /// [`crate::Coordinator::store_refused`].
    PersistIf {
        record: Record,
        status: GlobalStatus,
    },
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
    /// Answer the GlobalLockQuery of `token` from the shared store's lock table: lockable when
    /// every row of `rows` (table, primary key) of `resource_id` is free or held by
    /// `transaction_id` ([`crate::StoreSharing::Shared`] only: other nodes' locks are there,
    /// not in memory). Read after every write before it is durable.
    CheckLocks {
        token: ReplyToken,
        transaction_id: TransactionId,
        resource_id: String,
        rows: Vec<(String, String)>,
    },
    /// Answer the GlobalStatus of `token` with the status the shared store holds for
    /// `transaction_id` (Finished when it holds none): a transaction another node drives
    /// ([`crate::StoreSharing::Shared`] only).
    CheckStatus {
        token: ReplyToken,
        transaction_id: TransactionId,
    },
    /// Reserve `count` more ids in the store and hand the range to
    /// [`crate::Coordinator::add_id_range`] ([`crate::config::IdSource::StoreRanges`] only).
    /// Depends on no record.
    ReserveIds { count: i64 },
}
