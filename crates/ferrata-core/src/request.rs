//! The requests a TM or RM sends the coordinator, one variant per Seata request message, and
//! [`RequestKind`], which names the request (and so the response) without its fields.

use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};

use crate::id::BranchId;

/// Who sent a request: the registration of the connection it arrived on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requester {
    pub application_id: String,
    pub transaction_service_group: String,
    /// `applicationId:ip:port`, used to route phase-2 requests back.
    pub client_id: String,
}

/// The fields of a BranchRegisterRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRegistration {
    pub xid: String,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub lock_key: String,
    pub application_data: String,
}

/// A transaction request, handled by [`crate::Coordinator::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// GlobalBeginRequest: open a global transaction.
    Begin {
        /// As the TM asked; not clamped (semantics §1.2), only checked against the limit.
        timeout_ms: i32,
        transaction_name: String,
    },
    /// BranchRegisterRequest: join a branch, taking its AT row locks.
    BranchRegister(BranchRegistration),
    /// BranchReportRequest: the RM's phase-1 outcome for a branch.
    BranchReport {
        xid: String,
        branch_id: BranchId,
        status: BranchStatus,
        application_data: String,
    },
    GlobalCommit {
        xid: String,
    },
    GlobalRollback {
        xid: String,
    },
    GlobalStatus {
        xid: String,
    },
    /// GlobalReportRequest: a Saga TM reporting the outcome it reached (semantics §6.4).
    GlobalReport {
        xid: String,
        status: Option<GlobalStatus>,
    },
    /// GlobalLockQueryRequest: are these rows free (or held by `xid` itself)?
    LockQuery {
        xid: String,
        branch_type: BranchType,
        resource_id: String,
        lock_key: String,
    },
}

/// Which request a [`Request`] or [`crate::Reply`] is about; fixes the response message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    Begin,
    BranchRegister,
    BranchReport,
    GlobalCommit,
    GlobalRollback,
    GlobalStatus,
    GlobalReport,
    LockQuery,
}

impl RequestKind {
    /// The SEATA type code of the request message.
    pub fn type_code(self) -> u16 {
        match self {
            RequestKind::Begin => 1,
            RequestKind::GlobalCommit => 7,
            RequestKind::GlobalRollback => 9,
            RequestKind::BranchRegister => 11,
            RequestKind::BranchReport => 13,
            RequestKind::GlobalStatus => 15,
            RequestKind::GlobalReport => 17,
            RequestKind::LockQuery => 21,
        }
    }
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Begin { .. } => RequestKind::Begin,
            Request::BranchRegister(_) => RequestKind::BranchRegister,
            Request::BranchReport { .. } => RequestKind::BranchReport,
            Request::GlobalCommit { .. } => RequestKind::GlobalCommit,
            Request::GlobalRollback { .. } => RequestKind::GlobalRollback,
            Request::GlobalStatus { .. } => RequestKind::GlobalStatus,
            Request::GlobalReport { .. } => RequestKind::GlobalReport,
            Request::LockQuery { .. } => RequestKind::LockQuery,
        }
    }
}
