//! The SDK's error type: one variant per way a call can fail, each message saying what to do.
//! TC failure responses are mapped here from Seata's TransactionExceptionCode.

use std::time::Duration;

use ferrata_proto::{GlobalStatus, TransactionExceptionCode};

/// Which registration a TC connection carries (Java keeps TM and RM on separate connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Tm,
    Rm,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Tm => "TM",
            Role::Rm => "RM",
        })
    }
}

/// Everything an SDK call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (no TC address, unknown group, bad value).
    #[error("invalid ferrata configuration: {0}")]
    Config(String),

    /// No TC address of the configured cluster accepted a connection.
    #[error(
        "cannot reach a transaction coordinator ({role} connection to {addresses}): {reason}. \
         Check that ferrata-server is running there, and that service.vgroupMapping.<group> and \
         service.<cluster>.grouplist point at it"
    )]
    Unreachable {
        role: Role,
        addresses: String,
        reason: String,
    },

    /// The TC answered the RegisterTM/RegisterRM request with `identified = false`.
    #[error(
        "TC {addr} refused the {role} registration of application {application_id:?} in group \
         {group:?} (client version {version:?}, TC version {tc_version:?}); the TC log says why \
         (usually an unsupported client version or failed authentication)"
    )]
    RegistrationRejected {
        addr: String,
        role: Role,
        application_id: String,
        group: String,
        version: String,
        tc_version: String,
    },

    /// The request was sent but no answer came within the per-request timeout.
    #[error(
        "{operation} got no answer from TC {addr} within {timeout:?}; the TC may be overloaded \
         or the network slow. The request may still take effect: query the transaction status \
         before retrying, or raise transport.rpcTmRequestTimeout / transport.rpcRmRequestTimeout"
    )]
    Timeout {
        operation: &'static str,
        addr: String,
        timeout: Duration,
    },

    /// The connection closed while the request was outstanding.
    #[error(
        "the connection to TC {addr} closed before {operation} was answered; the SDK reconnects \
         by itself. The request may or may not have taken effect: query the status before retrying"
    )]
    ConnectionLost {
        operation: &'static str,
        addr: String,
    },

    /// An AT branch could not take its row locks because another global transaction holds them.
    #[error(
        "lock conflict: another global transaction holds rows of {lock_key:?} on {resource_id} \
         (xid {xid}){}. Retry after a short wait, or roll this transaction back",
        if *.fail_fast { ", and it is rolling back" } else { "" }
    )]
    LockConflict {
        xid: String,
        resource_id: String,
        lock_key: String,
        /// The holder is already rolling back (LockKeyConflictFailFast): retrying soon may work.
        fail_fast: bool,
        message: String,
    },

    /// The global transaction outlived its timeout; the TC rolls it back.
    #[error(
        "global transaction {xid} timed out (TC status {status:?}) and is rolled back by the TC; \
         raise the transaction timeout or shorten the work inside it"
    )]
    TransactionTimeout { xid: String, status: GlobalStatus },

    /// Commit was requested but the transaction did not commit.
    #[error(
        "global transaction {xid} was not committed: the TC reports {status:?}. {}",
        commit_hint(*.status)
    )]
    CommitFailed { xid: String, status: GlobalStatus },

    /// Rollback was requested but did not complete.
    #[error(
        "rollback of global transaction {xid} ended as {status:?}; the TC keeps retrying the \
         branches that failed, check the resource managers' logs"
    )]
    RollbackFailed { xid: String, status: GlobalStatus },

    /// The TC answered with a failure result (anything but a lock conflict).
    #[error("TC refused {operation} ({code:?}): {message}. {}", code_hint(*.code))]
    Rejected {
        operation: &'static str,
        code: TransactionExceptionCode,
        message: String,
    },

    /// MANDATORY propagation with no global transaction bound to the task.
    #[error(
        "propagation MANDATORY requires an existing global transaction, but none is bound to \
         this task; call it inside in_global_transaction or bind an XID with context::with_xid"
    )]
    NoTransaction,

    /// NEVER propagation with a global transaction bound to the task.
    #[error(
        "propagation NEVER forbids a global transaction, but {xid} is bound to this task; run \
         the call outside it or use NOT_SUPPORTED to suspend it"
    )]
    ExistingTransaction { xid: String },

    /// The TC sent something that does not answer the request (a protocol bug on either side).
    #[error("unexpected answer to {operation}: {detail}; this is a bug, please report it")]
    Protocol {
        operation: &'static str,
        detail: String,
    },

    /// The client was shut down (or dropped) while the call was in progress.
    #[error("the ferrata client has been shut down; create a new one")]
    Shutdown,
}

fn commit_hint(status: GlobalStatus) -> &'static str {
    match status {
        GlobalStatus::Finished => {
            "The TC no longer knows the transaction (it ended earlier, e.g. by timeout): check the \
             resources for its outcome"
        }
        GlobalStatus::CommitFailed | GlobalStatus::CommitRetryTimeout => {
            "A branch refused to commit; check the resource managers' logs"
        }
        _ => "It was rolled back instead",
    }
}

fn code_hint(code: TransactionExceptionCode) -> &'static str {
    use TransactionExceptionCode as C;
    match code {
        C::GlobalTransactionNotExist => {
            "The XID is unknown to this TC: it ended already or belongs to another TC"
        }
        C::GlobalTransactionNotActive | C::GlobalTransactionStatusInvalid => {
            "The transaction is already ending (committing, rolling back or timed out); \
             do not register more branches in it"
        }
        C::BranchTransactionNotExist => "The branch id is unknown to the TC",
        C::FailedStore | C::FailedWriteSession => {
            "The TC could not persist the change; check its disk and log"
        }
        C::NotRaftLeader => "This TC node is not the leader; retry on another node",
        _ => "See the TC log for details",
    }
}

impl Error {
    /// True when retrying the same call later may succeed (transport trouble, lock conflicts).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::ConnectionLost { .. }
                | Error::LockConflict { .. }
        )
    }

    /// Maps a TC failure response for `operation` to an error.
    pub(crate) fn from_result(
        operation: &'static str,
        code: TransactionExceptionCode,
        message: String,
    ) -> Error {
        Error::Rejected {
            operation,
            code,
            message,
        }
    }
}
