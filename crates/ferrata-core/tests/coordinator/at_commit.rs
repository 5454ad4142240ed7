//! AT commit: answered at once, branches committed asynchronously one by one (§1.4, §1.6).

use super::*;

#[test]
fn at_commit_answers_at_once_and_commits_branches_one_by_one() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let b1 = h.at(&tx, "orders:1,2");
    let b2 = h.at(&tx, "orders:3;order_item:1_1");
    let other = h.begin(T0 + 1, 60_000);
    assert_eq!(h.try_at(&other, "orders:2", ""), Err(Code::LockKeyConflict));
    assert_eq!(h.tc.stats().locked_rows, 4);

    h.commit(T0 + 10, 9, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::AsyncCommitting),
            commit_reply(9, GlobalStatus::Committed),
            h.commit_of(b1),
        ]
    );
    // The commit decision freed every row before phase 2 finished.
    assert_eq!(h.tc.stats().locked_rows, 0);
    assert!(h.lockable(&other.xid, "orders:1,2,3;order_item:1_1"));
    let taken = h.at(&other, "orders:1,2,3;order_item:1_1");
    assert!(taken > b2);

    // Commits are idempotent for the TM: AsyncCommitting is shown as Committed.
    h.commit(T0 + 11, 10, &tx.xid);
    assert_eq!(h.effects(), vec![commit_reply(10, GlobalStatus::Committed)]);
    h.rollback(11, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![rollback_reply(11, GlobalStatus::AsyncCommitting)]
    );
    assert_eq!(h.global_status(&tx), GlobalStatus::AsyncCommitting);
    // No more branches may join.
    assert_eq!(
        h.try_at(&tx, "orders:9", ""),
        Err(Code::GlobalTransactionNotActive)
    );

    h.tc.branch_result(T0 + 20, tx.id, b1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, b1), h.commit_of(b2)]);
    h.tc.branch_result(T0 + 30, tx.id, b2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, b2), remove_global(&tx)]
    );
    assert_eq!(h.tc.status_of(tx.id), None);
    assert_eq!(h.global_status(&tx), GlobalStatus::Finished);
    // The rows now belong to the other transaction only.
    assert!(!h.lockable(&tx.xid, "orders:1"));
    assert!(h.lockable(&other.xid, "orders:1"));
    h.assert_log_matches_state();
}

#[test]
fn at_branches_without_lock_keys_commit_the_same_way() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let b1 = h.at(&tx, "");
    assert_eq!(h.tc.stats().locked_rows, 0);
    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::AsyncCommitting),
            commit_reply(1, GlobalStatus::Committed),
            h.commit_of(b1),
        ]
    );
    h.tc.branch_result(T0 + 2, tx.id, b1, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, b1), remove_global(&tx)]
    );
}
