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

/// The TC request a failed call was making.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    GlobalBegin,
    GlobalCommit,
    GlobalRollback,
    GlobalStatus,
    /// Saga mode: the engine reports how a Saga ended.
    GlobalReport,
    BranchRegister,
    BranchReport,
    GlobalLockQuery,
    /// RegisterTM or RegisterRM when a connection opens.
    Registration,
    /// RegisterRM for resources added on an open connection.
    ResourceRegistration,
    /// Any request, where the answer could not be matched to one.
    Request,
    /// A batch of merged requests.
    MergedRequest,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::GlobalBegin => "global begin",
            Operation::GlobalCommit => "global commit",
            Operation::GlobalRollback => "global rollback",
            Operation::GlobalStatus => "global status",
            Operation::GlobalReport => "global report",
            Operation::BranchRegister => "branch register",
            Operation::BranchReport => "branch report",
            Operation::GlobalLockQuery => "global lock query",
            Operation::Registration => "registration",
            Operation::ResourceRegistration => "resource registration",
            Operation::Request => "request",
            Operation::MergedRequest => "merged request",
        })
    }
}

/// Why a configuration cannot work. The properties to set are named in the variants' docs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Set `service.vgroupMapping.<group>=<cluster>`.
    #[error(
        "transaction-service group {group:?} maps to no cluster (service.vgroupMapping.{group})"
    )]
    NoCluster { group: String },
    /// Set `service.<cluster>.grouplist=host:port[,host:port...]`.
    #[error(
        "cluster {cluster:?} of group {group:?} has no TC addresses (service.{cluster}.grouplist)"
    )]
    NoAddresses { cluster: String, group: String },
    #[error("TC address {addr:?} is not host:port")]
    BadAddress { addr: String },
    /// Set both `seata.accessKey` and `seata.secretKey` (non-empty), or neither.
    #[error("only one of accessKey and secretKey is set")]
    HalfCredentials,
    /// Set `seata.application-id` (or the builder's application id).
    #[error("application id is not set")]
    NoApplicationId,
    /// Java signs registrations over a comma-separated text, so such a group cannot be signed.
    #[error("transaction-service group {group:?} contains a comma and cannot be signed")]
    GroupWithComma { group: String },
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("{key} must be {expected}, not {value:?}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    /// RegisterRM joins resource ids with commas.
    #[error("resource id {resource_id:?} must be non-empty and contain no comma")]
    BadResourceId { resource_id: String },
    #[error("TLS {what}: {reason}")]
    Tls { what: String, reason: String },
    /// A `registry.*` setting cannot work (unknown type, bad address, backend not compiled in).
    #[error("registry: {reason}")]
    Registry { reason: String },
}

/// Everything an SDK call can fail with. Messages are short, for logs and callers; what to do
/// about each is in the variant's docs and in [`Error::advice`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (no TC address, unknown group, bad value).
    #[error("invalid ferrata configuration: {0}")]
    Config(#[from] ConfigError),

    /// No TC address of the configured cluster accepted a connection. Check that
    /// ferrata-server is running there, and that `service.vgroupMapping.<group>` and
    /// `service.<cluster>.grouplist` point at it.
    #[error("cannot reach a transaction coordinator ({role} connection to {addresses}): {reason}")]
    Unreachable {
        role: Role,
        addresses: String,
        reason: String,
    },

    /// The TC answered the RegisterTM/RegisterRM request with `identified = false`; its log
    /// says why (usually an unsupported client version or failed authentication).
    #[error(
        "TC {addr} refused the {role} registration of {application_id:?} in group {group:?} \
         (client version {version:?}, TC version {tc_version:?})"
    )]
    RegistrationRejected {
        addr: String,
        role: Role,
        application_id: String,
        group: String,
        version: String,
        tc_version: String,
    },

    /// The request was sent but no answer came within the per-request timeout. It may still
    /// take effect: query the transaction status before retrying, or raise
    /// `transport.rpcTmRequestTimeout` / `transport.rpcRmRequestTimeout`.
    #[error("{operation} got no answer from TC {addr} within {timeout:?}")]
    Timeout {
        operation: Operation,
        addr: String,
        timeout: Duration,
    },

    /// The connection closed while the request was outstanding; the SDK reconnects by itself.
    /// The request may or may not have taken effect: query the status before retrying.
    #[error("the connection to TC {addr} closed before {operation} was answered")]
    ConnectionLost { operation: Operation, addr: String },

    /// An AT branch could not take its row locks because another global transaction holds
    /// them. Retry after a short wait, or roll this transaction back.
    #[error(
        "rows {lock_key:?} on {resource_id} are locked by another global transaction{}",
        if *.fail_fast { " (rolling back)" } else { "" }
    )]
    LockConflict {
        xid: String,
        resource_id: String,
        lock_key: String,
        /// The holder is already rolling back (LockKeyConflictFailFast): retrying soon may work.
        fail_fast: bool,
        message: String,
    },

    /// The global transaction outlived its timeout; the TC rolls it back. Raise the
    /// transaction timeout or shorten the work inside it.
    #[error("global transaction {xid} timed out ({status:?})")]
    TransactionTimeout { xid: String, status: GlobalStatus },

    /// Commit was requested but the transaction did not commit (see [`Error::advice`]).
    #[error("global transaction {xid} was not committed ({status:?})")]
    CommitFailed { xid: String, status: GlobalStatus },

    /// Rollback was requested but did not complete; the TC keeps retrying the branches that
    /// failed: check the resource managers' logs.
    #[error("rollback of global transaction {xid} ended as {status:?}")]
    RollbackFailed { xid: String, status: GlobalStatus },

    /// The TC answered with a failure result (anything but a lock conflict); see
    /// [`Error::advice`] for what its code means.
    #[error("TC refused {operation} ({code:?}): {message}")]
    Rejected {
        operation: Operation,
        code: TransactionExceptionCode,
        message: String,
    },

    /// MANDATORY propagation with no global transaction bound to the task: call it inside
    /// `in_global_transaction`, or bind an XID with `context::with_xid`.
    #[error("propagation Mandatory needs a global transaction, and none is bound")]
    NoTransaction,

    /// [`crate::Client::in_global_transaction`] was given a propagation mode that would run the
    /// work without a global transaction; use [`crate::Client::with_propagation`] for those.
    #[error("propagation {propagation:?} does not run in a global transaction")]
    NotTransactional { propagation: crate::Propagation },

    /// NEVER propagation with a global transaction bound to the task: run the call outside it,
    /// or use NotSupported to suspend it.
    #[error("propagation Never forbids a global transaction, and {xid} is bound")]
    ExistingTransaction { xid: String },

    /// The TC sent something that does not answer the request (a protocol bug on either side;
    /// please report it).
    #[error("unexpected answer to {operation}: {detail}")]
    Protocol {
        operation: Operation,
        detail: String,
    },

    /// The client was shut down (or dropped) while the call was in progress; create a new one.
    #[error("the ferrata client has been shut down")]
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
    /// What to do about this error (for operators and logs; the message itself is short).
    pub fn advice(&self) -> &'static str {
        match self {
            Error::Config(_) => "Fix the setting the message names",
            Error::Unreachable { .. } => {
                "Check that ferrata-server is running there, and that \
                 service.vgroupMapping.<group> and service.<cluster>.grouplist point at it"
            }
            Error::RegistrationRejected { .. } => {
                "The TC log says why (usually an unsupported client version or failed \
                 authentication)"
            }
            Error::Timeout { .. } => {
                "The request may still take effect: query the transaction status before \
                 retrying, or raise transport.rpcTmRequestTimeout / transport.rpcRmRequestTimeout"
            }
            Error::ConnectionLost { .. } => {
                "The SDK reconnects by itself; the request may or may not have taken effect: \
                 query the status before retrying"
            }
            Error::LockConflict { .. } => "Retry after a short wait, or roll this transaction back",
            Error::TransactionTimeout { .. } => {
                "The TC rolls it back; raise the transaction timeout or shorten the work inside it"
            }
            Error::CommitFailed { status, .. } => commit_hint(*status),
            Error::RollbackFailed { .. } => {
                "The TC keeps retrying the branches that failed; check the resource managers' logs"
            }
            Error::Rejected { code, .. } => code_hint(*code),
            Error::NoTransaction => {
                "Call it inside in_global_transaction, or bind an XID with context::with_xid"
            }
            Error::NotTransactional { .. } => "Use Client::with_propagation for this mode",
            Error::ExistingTransaction { .. } => {
                "Run the call outside the transaction, or use NotSupported to suspend it"
            }
            Error::Protocol { .. } => "This is a bug on one side; please report it",
            Error::Shutdown => "Create a new client",
        }
    }

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
        operation: Operation,
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
