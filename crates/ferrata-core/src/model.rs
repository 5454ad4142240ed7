//! The durable data of the coordinator: global and branch sessions, and the records that
//! change them. Stores persist records; replaying them with [`SessionTable`] rebuilds state.

use std::collections::BTreeMap;

use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};

use crate::branches::Branches;
use crate::id::{BranchId, TransactionId};

/// A global transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSession {
    pub transaction_id: TransactionId,
    pub xid: String,
    pub status: GlobalStatus,
    pub application_id: String,
    pub transaction_service_group: String,
    pub transaction_name: String,
    /// Milliseconds, as the TM asked; not clamped (semantics §1.2).
    pub timeout_ms: i32,
    /// Epoch milliseconds when the TC began the session.
    pub begin_time_ms: i64,
    pub application_data: String,
}

/// A branch transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchSession {
    pub branch_id: BranchId,
    pub transaction_id: TransactionId,
    pub resource_id: String,
    /// AT lock key (`table:pk1,pk2;table2:pk3`); empty for other modes.
    pub lock_key: String,
    pub branch_type: BranchType,
    pub status: BranchStatus,
    /// `applicationId:ip:port` of the RM connection that registered the branch.
    pub client_id: String,
    pub application_data: String,
}

/// One durable change. Records of one transaction are applied in the order they were appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    GlobalAdd(GlobalSession),
    GlobalUpdate {
        transaction_id: TransactionId,
        status: GlobalStatus,
    },
    GlobalRemove {
        transaction_id: TransactionId,
    },
    BranchAdd(BranchSession),
    BranchUpdate {
        transaction_id: TransactionId,
        branch_id: BranchId,
        status: BranchStatus,
        /// Replaces the stored application data when present.
        application_data: Option<String>,
    },
    BranchRemove {
        transaction_id: TransactionId,
        branch_id: BranchId,
    },
    /// Ids up to (excluding) `next_free_id` may have been handed out: after a restart the id
    /// generator starts at or above it whatever the clock says (RELIABILITY.md, "Ids").
    IdReserve {
        next_free_id: i64,
    },
}

impl Record {
    /// The global transaction this record belongs to; `None` for records of the TC itself.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        match self {
            Record::GlobalAdd(g) => Some(g.transaction_id),
            Record::BranchAdd(b) => Some(b.transaction_id),
            Record::GlobalUpdate { transaction_id, .. }
            | Record::GlobalRemove { transaction_id }
            | Record::BranchUpdate { transaction_id, .. }
            | Record::BranchRemove { transaction_id, .. } => Some(*transaction_id),
            Record::IdReserve { .. } => None,
        }
    }
}

/// A global session with its branches in registration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransaction {
    pub global: GlobalSession,
    pub branches: Branches,
}

/// The live state a sequence of records describes: what a store must give back on recovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTable {
    transactions: BTreeMap<TransactionId, StoredTransaction>,
    /// The highest [`Record::IdReserve`] seen (0 when none).
    next_free_id: i64,
}

impl SessionTable {
    pub fn new() -> SessionTable {
        SessionTable::default()
    }

    /// Applies one record. Records for unknown transactions or branches are ignored, so a
    /// replay that starts from a snapshot tolerates updates of sessions removed since.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::GlobalAdd(global) => {
                let entry = self
                    .transactions
                    .entry(global.transaction_id)
                    .or_insert_with(|| StoredTransaction {
                        global: global.clone(),
                        branches: Branches::new(),
                    });
                entry.global = global.clone();
            }
            Record::GlobalUpdate {
                transaction_id,
                status,
            } => {
                if let Some(tx) = self.transactions.get_mut(transaction_id) {
                    tx.global.status = *status;
                }
            }
            Record::GlobalRemove { transaction_id } => {
                self.transactions.remove(transaction_id);
            }
            Record::BranchAdd(branch) => {
                if let Some(tx) = self.transactions.get_mut(&branch.transaction_id) {
                    tx.branches.insert(branch.clone());
                }
            }
            Record::BranchUpdate {
                transaction_id,
                branch_id,
                status,
                application_data,
            } => {
                if let Some(branch) = self
                    .transactions
                    .get_mut(transaction_id)
                    .and_then(|tx| tx.branches.get_mut(*branch_id))
                {
                    branch.status = *status;
                    if let Some(data) = application_data {
                        branch.application_data = data.clone();
                    }
                }
            }
            Record::BranchRemove {
                transaction_id,
                branch_id,
            } => {
                if let Some(tx) = self.transactions.get_mut(transaction_id) {
                    tx.branches.remove(*branch_id);
                }
            }
            Record::IdReserve { next_free_id } => {
                self.next_free_id = self.next_free_id.max(*next_free_id);
            }
        }
    }

    /// Ids below this may have been used before the restart (0 when no reservation was logged).
    pub fn next_free_id(&self) -> i64 {
        self.next_free_id
    }

    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    pub fn get(&self, transaction_id: TransactionId) -> Option<&StoredTransaction> {
        self.transactions.get(&transaction_id)
    }

    /// Live transactions in transaction-id order.
    pub fn transactions(&self) -> impl Iterator<Item = &StoredTransaction> {
        self.transactions.values()
    }

    pub fn into_transactions(self) -> impl Iterator<Item = StoredTransaction> {
        self.transactions.into_values()
    }

    /// The records that recreate this state from nothing (used to compact a log).
    pub fn snapshot_records(&self) -> impl Iterator<Item = Record> + '_ {
        let reservation = (self.next_free_id > 0).then_some(Record::IdReserve {
            next_free_id: self.next_free_id,
        });
        reservation
            .into_iter()
            .chain(self.transactions.values().flat_map(|tx| {
                std::iter::once(Record::GlobalAdd(tx.global.clone()))
                    .chain(tx.branches.iter().cloned().map(Record::BranchAdd))
            }))
    }
}
