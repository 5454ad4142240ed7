//! Every row is locked by at most one transaction; exactly the rows of AT branches of
//! transactions that hold their locks are locked (Begin, the rollback family and failed
//! rollbacks; RollbackRetryTimeout unless unlocking is on), and lock queries agree
//! (semantics §2.2 acquire, §2.3 release, §1.4 session end).

use std::collections::BTreeMap;

use super::*;

fn rows_of(lock_key: &str) -> Vec<String> {
    lock_key
        .split_once(':')
        .map(|(table, pks)| {
            pks.split(',')
                .filter(|pk| !pk.is_empty())
                .map(|pk| format!("{table}:{pk}"))
                .collect()
        })
        .unwrap_or_default()
}

fn holds_locks(status: GlobalStatus, unlock: Unlock) -> bool {
    match status {
        GlobalStatus::Begin
        | GlobalStatus::Rollbacking
        | GlobalStatus::RollbackRetrying
        | GlobalStatus::TimeoutRollbacking
        | GlobalStatus::TimeoutRollbackRetrying
        | GlobalStatus::RollbackFailed
        | GlobalStatus::TimeoutRollbackFailed => true,
        GlobalStatus::RollbackRetryTimeout => unlock == Unlock::Keep,
        _ => false,
    }
}

struct RowsHaveOneOwner;

impl Invariant for RowsHaveOneOwner {
    fn check(&mut self, h: &mut Harness, model: &Model, _: &Step) -> Result<(), TestCaseError> {
        let mut expected_owner: BTreeMap<String, TransactionId> = BTreeMap::new();
        for tx in h.replay().transactions() {
            if !holds_locks(tx.global.status, model.unlock) {
                continue;
            }
            for branch in tx
                .branches
                .iter()
                .filter(|b| b.branch_type == BranchType::At)
            {
                for row in rows_of(&branch.lock_key) {
                    let owner = *expected_owner
                        .entry(row.clone())
                        .or_insert(tx.global.transaction_id);
                    prop_assert_eq!(
                        owner,
                        tx.global.transaction_id,
                        "row {} wanted by two transactions",
                        row
                    );
                }
            }
        }
        prop_assert_eq!(h.tc.stats().locked_rows, expected_owner.len());

        for row in 0..ROWS {
            let key = format!("orders:{row}");
            let free = h.lockable("", &key);
            let holders: Vec<TransactionId> = model
                .txs
                .iter()
                .filter(|tx| h.lockable(&tx.xid, &key))
                .map(|tx| tx.id)
                .collect();
            match expected_owner.get(&key) {
                None => {
                    prop_assert!(free, "{} is locked by nobody live", key);
                    prop_assert_eq!(holders.len(), model.txs.len());
                }
                Some(owner) => {
                    prop_assert!(!free, "{} must be locked by {}", key, owner);
                    prop_assert_eq!(holders, vec![*owner], "{} held by exactly its owner", key);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn each_row_has_at_most_one_owner((ops, unlock) in runs()) {
        run(ops, unlock, &mut RowsHaveOneOwner)?;
    }
}
