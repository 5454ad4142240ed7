//! Global row locks for AT branches (semantics §2): lock-key parsing, atomic per-branch
//! acquisition, re-entrancy per transaction, and release by branch. A locked row costs its
//! primary key and its holder: resource and table names are stored once per table, so a hostile
//! lock key cannot multiply memory by repeating a long table name for every row.

use std::collections::{HashMap, HashSet};

use ferrata_proto::GlobalStatus;

use crate::id::{BranchId, TransactionId};

/// One row of a parsed lock key: `(table, primary key)`, borrowed from the lock key.
pub type LockRow<'a> = (&'a str, &'a str);

/// Why a lock key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockKeyError {
    #[error(
        "lock key of {bytes} bytes exceeds the limit of {limit} bytes (limits.max_lock_key_bytes)"
    )]
    TooLong { bytes: usize, limit: usize },
    #[error(
        "lock key names more than {limit} rows (limits.max_rows_per_branch); lock fewer rows per branch"
    )]
    TooManyRows { limit: usize },
}

/// Bounds on one lock key (one branch, or one lock query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockKeyLimits {
    pub max_bytes: usize,
    pub max_rows: usize,
}

impl LockKeyLimits {
    /// No bounds: for lock keys that were accepted before (recovery, release).
    pub const NONE: LockKeyLimits = LockKeyLimits {
        max_bytes: usize::MAX,
        max_rows: usize::MAX,
    };
}

/// Splits a lock key (`t1:pk1,pk2;t2:pk3`) into de-duplicated rows: tables separated by `;`,
/// table and keys by the first `:`, keys by `,`; blank parts are skipped and parsing stops at a
/// group without `:` (as Seata does). Fails before doing work proportional to an oversized key.
pub fn parse_lock_key(
    lock_key: &str,
    limits: LockKeyLimits,
) -> Result<Vec<LockRow<'_>>, LockKeyError> {
    if lock_key.len() > limits.max_bytes {
        return Err(LockKeyError::TooLong {
            bytes: lock_key.len(),
            limit: limits.max_bytes,
        });
    }
    let mut rows: Vec<LockRow<'_>> = Vec::new();
    // A set keeps de-duplication linear: branches may lock thousands of rows.
    let mut seen: HashSet<LockRow<'_>> = HashSet::new();
    for group in lock_key.split(';') {
        if group.trim().is_empty() {
            continue;
        }
        let Some((table, pks)) = group.split_once(':') else {
            break;
        };
        for pk in pks.split(',') {
            if pk.trim().is_empty() {
                continue;
            }
            if seen.insert((table, pk)) {
                if rows.len() == limits.max_rows {
                    return Err(LockKeyError::TooManyRows {
                        limit: limits.max_rows,
                    });
                }
                rows.push((table, pk));
            }
        }
    }
    Ok(rows)
}

/// Whether the AT branches of a transaction in `status` hold their rows: while it is open
/// (Begin) and while it rolls back or failed to (its rows must not change before the undo), but
/// not once committing, since phase 1 already made the changes final (semantics §2). A
/// rollback that gave up on retrying (RollbackRetryTimeout) releases them only when
/// `rollback_retry_timeout_unlock` says so (Seata's `server.rollbackRetryTimeoutUnlockEnable`).
pub fn status_holds_locks(status: GlobalStatus, rollback_retry_timeout_unlock: bool) -> bool {
    match status {
        GlobalStatus::Begin => true,
        GlobalStatus::RollbackRetryTimeout => !rollback_retry_timeout_unlock,
        _ => is_rollback_lock_status(status),
    }
}

/// Statuses a transaction reaches through Rollbacking or TimeoutRollbacking while its rows may
/// still be locked. Seata marks those locks Rollbacking and never unmarks them (semantics §2.3),
/// which is what fail-fast keys on (§2.2).
pub fn is_rollback_lock_status(status: GlobalStatus) -> bool {
    status.is_rollbacking()
        || matches!(
            status,
            GlobalStatus::RollbackFailed
                | GlobalStatus::TimeoutRollbackFailed
                | GlobalStatus::RollbackRetryTimeout
        )
}

/// Who holds a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    pub transaction_id: TransactionId,
    pub branch_id: BranchId,
}

type Table = HashMap<Box<str>, LockHolder>;

/// The in-memory lock table: resource → table → primary key → holder. It is not persisted: locks
/// are rebuilt from branch records, and released by re-reading the branch's own lock key.
#[derive(Debug, Default)]
pub struct LockManager {
    resources: HashMap<Box<str>, HashMap<Box<str>, Table>>,
    rows: usize,
}

impl LockManager {
    pub fn new() -> LockManager {
        LockManager::default()
    }

    /// Takes every row for the branch, or none: on conflict returns the first foreign holder and
    /// changes nothing. Rows already held by the same transaction stay with their branch.
    pub fn acquire(
        &mut self,
        holder: LockHolder,
        resource_id: &str,
        rows: &[LockRow<'_>],
    ) -> Result<(), LockHolder> {
        if let Some(conflict) = self.conflict(holder.transaction_id, resource_id, rows) {
            return Err(conflict);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let tables = match self.resources.get_mut(resource_id) {
            Some(tables) => tables,
            None => self.resources.entry(resource_id.into()).or_default(),
        };
        for &(table, pk) in rows {
            let keys = match tables.get_mut(table) {
                Some(keys) => keys,
                None => tables.entry(table.into()).or_default(),
            };
            if !keys.contains_key(pk) {
                keys.insert(pk.into(), holder);
                self.rows += 1;
            }
        }
        Ok(())
    }

    /// The first row held by another transaction, if any.
    pub fn conflict(
        &self,
        transaction_id: TransactionId,
        resource_id: &str,
        rows: &[LockRow<'_>],
    ) -> Option<LockHolder> {
        let tables = self.resources.get(resource_id)?;
        rows.iter()
            .filter_map(|(table, pk)| tables.get(*table)?.get(*pk))
            .find(|holder| holder.transaction_id != transaction_id)
            .copied()
    }

    /// Releases the rows of `rows` that `branch_id` holds (rows it found already held by its
    /// own transaction stay with the branch that took them).
    pub fn release(&mut self, branch_id: BranchId, resource_id: &str, rows: &[LockRow<'_>]) {
        let Some(tables) = self.resources.get_mut(resource_id) else {
            return;
        };
        for &(table, pk) in rows {
            let Some(keys) = tables.get_mut(table) else {
                continue;
            };
            if keys.get(pk).is_some_and(|h| h.branch_id == branch_id) {
                keys.remove(pk);
                self.rows -= 1;
                if keys.is_empty() {
                    tables.remove(table);
                }
            }
        }
        if tables.is_empty() {
            self.resources.remove(resource_id);
        }
    }

    /// Number of locked rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Every locked row as (resource, table, primary key, holder), in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &str, &str, LockHolder)> {
        self.resources.iter().flat_map(|(resource, tables)| {
            tables.iter().flat_map(move |(table, keys)| {
                keys.iter()
                    .map(move |(pk, holder)| (&**resource, &**table, &**pk, *holder))
            })
        })
    }

    pub fn holder(&self, resource_id: &str, table: &str, pk: &str) -> Option<LockHolder> {
        self.resources
            .get(resource_id)?
            .get(table)?
            .get(pk)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(tx: i64, branch: i64) -> LockHolder {
        let (tx, branch) = (TransactionId(tx), BranchId(branch));
        LockHolder {
            transaction_id: tx,
            branch_id: branch,
        }
    }

    fn rows(lock_key: &str) -> Vec<LockRow<'_>> {
        parse_lock_key(lock_key, LockKeyLimits::NONE).unwrap_or_default()
    }

    #[test]
    fn parses_seata_lock_keys() {
        let parsed = rows("orders:7,9;order_item:7_1,7_2;;orders:7, ;bad;t:1");
        assert_eq!(
            parsed,
            [
                ("orders", "7"),
                ("orders", "9"),
                ("order_item", "7_1"),
                ("order_item", "7_2")
            ]
        );
        assert!(rows("").is_empty());
    }

    #[test]
    fn oversized_lock_keys_are_refused_before_they_are_parsed() {
        let limits = LockKeyLimits {
            max_bytes: 20,
            max_rows: 3,
        };
        assert_eq!(
            parse_lock_key("t:1,2,3,4,5,6,7,8,9,10,11", limits),
            Err(LockKeyError::TooLong {
                bytes: 25,
                limit: 20
            })
        );
        assert_eq!(
            parse_lock_key("t:1,2,3,4", limits),
            Err(LockKeyError::TooManyRows { limit: 3 })
        );
        // Duplicates do not count twice.
        assert_eq!(
            parse_lock_key("t:1,2,1,3,2", limits).map(|r| r.len()),
            Ok(3)
        );
    }

    #[test]
    fn acquisition_is_atomic_and_reentrant_per_transaction() {
        let mut locks = LockManager::new();
        locks
            .acquire(holder(1, 10), "db", &rows("t:1,2"))
            .expect("free rows");
        // Same transaction, other branch: owned rows are not re-attributed.
        locks
            .acquire(holder(1, 11), "db", &rows("t:2,3"))
            .expect("re-entrant");
        assert_eq!(locks.holder("db", "t", "2"), Some(holder(1, 10)));
        // Another transaction conflicts on row 3 and takes nothing, not even row 4.
        assert_eq!(
            locks.acquire(holder(2, 20), "db", &rows("t:4,3")),
            Err(holder(1, 11))
        );
        assert_eq!(locks.holder("db", "t", "4"), None);
        // Other resource, same table and key: no conflict.
        locks
            .acquire(holder(2, 20), "db2", &rows("t:1"))
            .expect("other resource");
        locks.release(BranchId(11), "db", &rows("t:2,3"));
        assert_eq!(locks.holder("db", "t", "2"), Some(holder(1, 10)));
        locks
            .acquire(holder(2, 21), "db", &rows("t:3"))
            .expect("released");
        locks.release(BranchId(10), "db", &rows("t:1,2"));
        locks.release(BranchId(20), "db2", &rows("t:1"));
        locks.release(BranchId(21), "db", &rows("t:3"));
        assert!(locks.is_empty());
        assert!(
            locks.resources.is_empty(),
            "empty tables and resources are dropped"
        );
    }

    #[test]
    fn a_long_table_name_is_stored_once_not_once_per_row() {
        let table = "t".repeat(64 * 1024);
        let key = format!(
            "{table}:{}",
            (0..1000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut locks = LockManager::new();
        locks
            .acquire(holder(1, 1), "db", &rows(&key))
            .expect("free rows");
        assert_eq!(locks.len(), 1000);
        let stored_name_bytes: usize = locks
            .resources
            .values()
            .flat_map(|tables| tables.keys())
            .map(|name| name.len())
            .sum();
        assert_eq!(stored_name_bytes, table.len());
    }
}
