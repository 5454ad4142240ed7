//! Errors of TCC calls: one enum for the try path, one for the fence; each message says what
//! happened to the business work and what the caller should do next.

use crate::context::ContextError;

/// The error type business callbacks return (try, confirm, cancel).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Fence statuses as stored in `tcc_fence_log.status` (Java `CommonFenceConstant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum FenceStatus {
    /// The try ran and committed.
    Tried = 1,
    /// Confirm ran and committed.
    Committed = 2,
    /// Cancel ran and committed.
    Rollbacked = 3,
    /// A rollback arrived before any try (empty rollback); blocks a late try.
    Suspended = 4,
}

impl FenceStatus {
    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(code: i64) -> Option<FenceStatus> {
        match code {
            1 => Some(FenceStatus::Tried),
            2 => Some(FenceStatus::Committed),
            3 => Some(FenceStatus::Rollbacked),
            4 => Some(FenceStatus::Suspended),
            _ => None,
        }
    }
}

/// The fence's database operations, as named in `FenceError::Database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FenceOperation {
    Begin,
    InsertTried,
    /// An empty rollback's insert, which may lose a race to a concurrent try.
    InsertSuspended,
    SelectForUpdate,
    SelectStatus,
    UpdateStatus,
    CommitTry,
    CommitPhaseTwo,
    CommitEmptyRollback,
    DeleteOldRows,
    LockForCreateTable,
    LookUpTable,
    CreateTable,
    CommitCreateTable,
}

impl std::fmt::Display for FenceOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FenceOperation::Begin => "begin transaction",
            FenceOperation::InsertTried => "insert tried row",
            FenceOperation::InsertSuspended => "insert suspended row",
            FenceOperation::SelectForUpdate => "select for update",
            FenceOperation::SelectStatus => "select status",
            FenceOperation::UpdateStatus => "update status",
            FenceOperation::CommitTry => "commit try",
            FenceOperation::CommitPhaseTwo => "commit phase 2",
            FenceOperation::CommitEmptyRollback => "commit empty rollback",
            FenceOperation::DeleteOldRows => "delete old rows",
            FenceOperation::LockForCreateTable => "lock for create table",
            FenceOperation::LookUpTable => "look up table",
            FenceOperation::CreateTable => "create table",
            FenceOperation::CommitCreateTable => "commit create table",
        })
    }
}

/// Why a guarded phase (fenced or not) did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The business callback failed; its local work was rolled back with the fence step.
    #[error("{0}")]
    Business(#[source] BoxError),

    /// A try arrived after the branch had been rolled back (an empty rollback left status 4):
    /// its business work was rolled back too. The global transaction is ending as rolled back;
    /// do not retry this try.
    #[error("branch {branch_id} of {xid} was rolled back before its try arrived")]
    Suspended { xid: String, branch_id: i64 },

    /// Phase 2 commit found no fence row: the try never committed on this database (is the
    /// fence pointed at the try's database?). Answered retryable, so the TC tries again.
    #[error("no tcc_fence_log row for branch {branch_id} of {xid}")]
    NoRecord { xid: String, branch_id: i64 },

    /// The fence row holds a status this code does not know; valid statuses are 1 (tried),
    /// 2 (committed), 3 (rollbacked), 4 (suspended): fix the row.
    #[error("tcc_fence_log row for branch {branch_id} of {xid} has unknown status {status}")]
    UnknownStatus {
        xid: String,
        branch_id: i64,
        status: i64,
    },

    /// The configured fence table name is not a plain SQL identifier (letters, digits, `_`,
    /// optionally `schema.table`).
    #[error("fence table name {0:?} is not a plain identifier")]
    BadTableName(String),

    /// The database failed (connection, missing table, deadlock, ...): check it is reachable
    /// and the table exists (`TccFence::builder` creates it). Phase 2 answers retryable, so the
    /// TC tries again.
    #[cfg(any(feature = "mysql", feature = "postgres"))]
    #[error("fence {operation} on {table} failed: {source}")]
    Database {
        operation: FenceOperation,
        table: String,
        #[source]
        source: Box<sqlx::Error>,
    },
}

/// Why a TCC try (phase 1) failed. `E` is the participant's own error type, returned as
/// [`TccError::Business`] without downcasting. In every case, roll the global transaction back
/// (returning `Err` from the transaction scope does): the TC then cancels the branch if it was
/// registered.
#[derive(Debug, thiserror::Error)]
pub enum TccError<E> {
    /// No XID is bound to this task: call the action inside the TM's transaction scope, or
    /// bind the caller's XID (`ferrata::context::with_xid`, or the axum/tower layer).
    #[error("TCC action {action:?} called outside a global transaction")]
    NoGlobalTransaction { action: String },

    /// BranchRegister failed; the try did not run.
    #[error("registering the branch of TCC action {action:?} failed: {source}")]
    Register {
        action: String,
        xid: String,
        #[source]
        source: ferrata::Error,
    },

    /// The participant's `prepare` failed; its local work was rolled back.
    #[error("{source}")]
    Business {
        action: String,
        xid: String,
        branch_id: i64,
        #[source]
        source: E,
    },

    /// The fence refused the try (the branch was rolled back before it arrived:
    /// [`FenceError::Suspended`]) or its database failed; the local work was rolled back.
    #[error("try of TCC action {action:?} failed: {source}")]
    Fence {
        action: String,
        xid: String,
        branch_id: i64,
        #[source]
        source: FenceError,
    },

    /// Reporting the context the try changed failed: phase 2 would not see the new values.
    #[error("reporting the action context of branch {branch_id} failed: {source}")]
    Report {
        xid: String,
        branch_id: i64,
        #[source]
        source: ferrata::Error,
    },

    /// The participant's parameters could not be written as the action context.
    #[error(transparent)]
    Context(#[from] ContextError),
}

impl<E> TccError<E> {
    /// The participant's own error, when that is what failed.
    pub fn business(&self) -> Option<&E> {
        match self {
            TccError::Business { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The participant's own error, when that is what failed.
    pub fn into_business(self) -> Option<E> {
        match self {
            TccError::Business { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Which phase-2 call of a TCC action ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseTwo {
    /// Confirm, for the TC's BranchCommit.
    Commit,
    /// Cancel, for the TC's BranchRollback.
    Rollback,
}

impl std::fmt::Display for PhaseTwo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PhaseTwo::Commit => "confirm",
            PhaseTwo::Rollback => "cancel",
        })
    }
}

/// Why a phase-2 call did not succeed; every case is answered to the TC as retryable.
#[derive(Debug, thiserror::Error)]
pub enum PhaseTwoError {
    /// A phase-2 request for another resource id (cannot happen through
    /// `TccResource::register`, which registers under the action name).
    #[error("phase 2 for resource {resource_id:?} reached the TCC action {action:?}")]
    WrongResource { resource_id: String, action: String },

    /// The TC retries, but the applicationData must be fixed for the branch to finish.
    #[error("cannot rebuild the action context of branch {branch_id} of {xid}: {source}")]
    Context {
        xid: String,
        branch_id: i64,
        #[source]
        source: ContextError,
    },

    /// Build the resource with `TccResource::with_guard(participant, fence)` on the database
    /// the try used.
    #[error("branch {branch_id} of {xid} was registered with the fence, and this action has none")]
    FenceRequired { xid: String, branch_id: i64 },

    #[error("{phase} of branch {branch_id} of {xid} failed: {source}")]
    Failed {
        phase: PhaseTwo,
        xid: String,
        branch_id: i64,
        #[source]
        source: FenceError,
    },
}
