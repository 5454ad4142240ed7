//! What a store is asked to do and what it answers: operations with an optional condition,
//! one outcome per operation, leases, and the limits a backend puts on stored values.

use ferrata_core::{Record, TransactionId};
use ferrata_proto::GlobalStatus;

/// One change: a record, applied only if its condition holds. Records of one transaction keep
/// the order they have in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOp {
    pub record: Record,
    pub condition: Condition,
}

impl StoreOp {
    /// A record with no condition beyond the ones every record has (its transaction exists,
    /// its rows are free).
    pub fn put(record: Record) -> StoreOp {
        StoreOp {
            record,
            condition: Condition::Always,
        }
    }

    /// A record applied only while its transaction's stored status is `status`: a
    /// compare-and-set when the record is a [`Record::GlobalUpdate`].
    pub fn if_status(record: Record, status: GlobalStatus) -> StoreOp {
        StoreOp {
            record,
            condition: Condition::GlobalStatusIs(status),
        }
    }
}

/// What must hold for an operation to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// The operation's transaction is stored with this global status.
    GlobalStatusIs(GlobalStatus),
}

/// The result of one operation. Only `Applied` changed anything; every other outcome is an
/// ordinary answer (a lost race, a stale view), not a store failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    Applied,
    /// The transaction (or, for a branch update or removal, the branch) is not stored.
    NotFound,
    /// The condition's status differs from the stored one.
    StatusMismatch {
        actual: GlobalStatus,
    },
    /// A row of an AT branch's lock key is held by another transaction; no row was taken and
    /// the branch was not added.
    LockConflict(RowLock),
    /// A value does not fit the backend (see [`StoreLimits`]); nothing was written.
    Unstorable {
        reason: String,
    },
}

impl OpOutcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, OpOutcome::Applied)
    }
}

/// A locked row and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowLock {
    pub resource_id: String,
    pub table: String,
    pub pk: String,
    pub transaction_id: TransactionId,
    pub branch_id: ferrata_core::BranchId,
}

/// A row to ask about in [`crate::SessionStore::lock_holders`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub resource_id: String,
    pub table: String,
    pub pk: String,
}

/// A named lease: at most one holder at a time until `expires_at_ms`, renewable by its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Epoch milliseconds after which another holder may take it.
    pub expires_at_ms: i64,
}

/// The answer to [`crate::SessionStore::try_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease until `expires_at_ms` (taken, renewed, or taken over after
    /// it expired).
    Held { expires_at_ms: i64 },
    /// Someone else holds it.
    Taken(Lease),
}

/// Upper bounds a backend puts on stored values (characters, not bytes); `None` = unbounded.
/// Operations that exceed them are answered [`OpOutcome::Unstorable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreLimits {
    pub xid_chars: Option<usize>,
    pub application_id_chars: Option<usize>,
    pub transaction_service_group_chars: Option<usize>,
    pub transaction_name_chars: Option<usize>,
    pub application_data_chars: Option<usize>,
    pub resource_id_chars: Option<usize>,
    pub client_id_chars: Option<usize>,
    /// The branch type's name (`AT`, `SAGA_ANNOTATION`).
    pub branch_type_chars: Option<usize>,
    /// An AT lock row's table name and primary key, and its whole row key.
    pub lock_table_chars: Option<usize>,
    pub lock_pk_chars: Option<usize>,
    pub lock_row_key_chars: Option<usize>,
    /// Lease names and holders.
    pub lease_chars: Option<usize>,
    /// Whether strings may contain U+0000 (PostgreSQL text cannot).
    pub nul_allowed: bool,
}

impl StoreLimits {
    /// No bounds: the embedded log stores any value its format can encode.
    pub const NONE: StoreLimits = StoreLimits {
        xid_chars: None,
        application_id_chars: None,
        transaction_service_group_chars: None,
        transaction_name_chars: None,
        application_data_chars: None,
        resource_id_chars: None,
        client_id_chars: None,
        branch_type_chars: None,
        lock_table_chars: None,
        lock_pk_chars: None,
        lock_row_key_chars: None,
        lease_chars: None,
        nul_allowed: true,
    };

    /// Checks one value; the error names the field and the limit.
    pub fn check(&self, field: &str, value: &str, limit: Option<usize>) -> Result<(), String> {
        if !self.nul_allowed && value.contains('\0') {
            return Err(format!(
                "{field} contains U+0000, which this store cannot hold"
            ));
        }
        if let Some(limit) = limit {
            // Counting stops at the limit: a hostile value costs no more than the limit.
            if value.chars().take(limit + 1).count() > limit {
                return Err(format!(
                    "{field} is longer than the {limit} characters this store's column holds"
                ));
            }
        }
        Ok(())
    }
}
