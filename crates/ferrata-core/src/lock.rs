//! Global row locks for AT branches (semantics §2): lock-key parsing, atomic per-branch
//! acquisition, re-entrancy per transaction, and release by branch or by transaction.

use std::collections::{HashMap, HashSet};

/// One locked row: `(resourceId, table, primary key)`, joined the way Seata builds row keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowKey(String);

impl RowKey {
    pub fn new(resource_id: &str, table: &str, pk: &str) -> RowKey {
        RowKey(format!("{resource_id}^^^{table}^^^{pk}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Splits a lock key (`t1:pk1,pk2;t2:pk3`) into de-duplicated row keys: tables separated by
/// `;`, table and keys by the first `:`, keys by `,`; blank parts are skipped and parsing stops
/// at a group without `:` (as Seata does).
pub fn parse_lock_key(resource_id: &str, lock_key: &str) -> Vec<RowKey> {
    let mut rows: Vec<RowKey> = Vec::new();
    // A set keeps de-duplication linear: branches may lock thousands of rows.
    let mut seen: HashSet<RowKey> = HashSet::new();
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
            let row = RowKey::new(resource_id, table, pk);
            if seen.insert(row.clone()) {
                rows.push(row);
            }
        }
    }
    rows
}

/// Who holds a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    pub transaction_id: i64,
    pub branch_id: i64,
}

/// The in-memory lock table. It is not persisted: locks are rebuilt from branch records.
#[derive(Debug, Default)]
pub struct LockManager {
    rows: HashMap<RowKey, LockHolder>,
    by_branch: HashMap<i64, Vec<RowKey>>,
}

impl LockManager {
    pub fn new() -> LockManager {
        LockManager::default()
    }

    /// Takes every row for the branch, or none: on conflict returns the first foreign holder and
    /// changes nothing. Rows already held by the same transaction stay with their branch.
    pub fn acquire(&mut self, holder: LockHolder, rows: Vec<RowKey>) -> Result<(), LockHolder> {
        if let Some(conflict) = self.conflict(holder.transaction_id, &rows) {
            return Err(conflict);
        }
        let mut taken = Vec::new();
        for row in rows {
            if !self.rows.contains_key(&row) {
                self.rows.insert(row.clone(), holder);
                taken.push(row);
            }
        }
        if !taken.is_empty() {
            self.by_branch
                .entry(holder.branch_id)
                .or_default()
                .extend(taken);
        }
        Ok(())
    }

    /// The first row held by another transaction, if any.
    pub fn conflict(&self, transaction_id: i64, rows: &[RowKey]) -> Option<LockHolder> {
        rows.iter()
            .filter_map(|row| self.rows.get(row))
            .find(|holder| holder.transaction_id != transaction_id)
            .copied()
    }

    pub fn release_branch(&mut self, branch_id: i64) {
        if let Some(rows) = self.by_branch.remove(&branch_id) {
            for row in rows {
                if self
                    .rows
                    .get(&row)
                    .is_some_and(|h| h.branch_id == branch_id)
                {
                    self.rows.remove(&row);
                }
            }
        }
    }

    pub fn release_branches(&mut self, branch_ids: impl IntoIterator<Item = i64>) {
        for branch_id in branch_ids {
            self.release_branch(branch_id);
        }
    }

    /// Number of locked rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn holder(&self, row: &RowKey) -> Option<LockHolder> {
        self.rows.get(row).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(tx: i64, branch: i64) -> LockHolder {
        LockHolder {
            transaction_id: tx,
            branch_id: branch,
        }
    }

    #[test]
    fn parses_seata_lock_keys() {
        let rows = parse_lock_key("db", "orders:7,9;order_item:7_1,7_2;;orders:7, ;bad;t:1");
        let names: Vec<&str> = rows.iter().map(RowKey::as_str).collect();
        assert_eq!(
            names,
            [
                "db^^^orders^^^7",
                "db^^^orders^^^9",
                "db^^^order_item^^^7_1",
                "db^^^order_item^^^7_2"
            ]
        );
        assert!(parse_lock_key("db", "").is_empty());
    }

    #[test]
    fn acquisition_is_atomic_and_reentrant_per_transaction() {
        let mut locks = LockManager::new();
        locks
            .acquire(holder(1, 10), parse_lock_key("db", "t:1,2"))
            .expect("free rows");
        // Same transaction, other branch: owned rows are not re-attributed.
        locks
            .acquire(holder(1, 11), parse_lock_key("db", "t:2,3"))
            .expect("re-entrant");
        assert_eq!(
            locks.holder(&RowKey::new("db", "t", "2")),
            Some(holder(1, 10))
        );
        // Another transaction conflicts on row 3 and takes nothing, not even row 4.
        assert_eq!(
            locks.acquire(holder(2, 20), parse_lock_key("db", "t:4,3")),
            Err(holder(1, 11))
        );
        assert_eq!(locks.holder(&RowKey::new("db", "t", "4")), None);
        // Other resource, same table and key: no conflict.
        locks
            .acquire(holder(2, 20), parse_lock_key("db2", "t:1"))
            .expect("other resource");
        locks.release_branch(11);
        locks
            .acquire(holder(2, 21), parse_lock_key("db", "t:3"))
            .expect("released");
        locks.release_branches([10, 20, 21]);
        assert!(locks.is_empty());
    }
}
