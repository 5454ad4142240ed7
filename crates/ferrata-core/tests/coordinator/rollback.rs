//! GlobalRollback: newest branch first, each branch releasing its rows (§1.4, §2.3).

use super::*;

#[test]
fn rollback_visits_branches_newest_first_and_releases_each_branch_s_rows() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let a2 = h.at(&tx, "orders:2");
    let t1 = h.tcc(&tx, "debit");
    let other = h.begin(T0, 60_000);

    h.rollback(4, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(t1)]
    );
    assert!(!h.lockable(&other.xid, "orders:1"));
    assert!(!h.lockable(&other.xid, "orders:2"));
    // Repeated end requests see the running rollback and change nothing.
    h.rollback(5, &tx.xid);
    h.commit(T0 + 1, 6, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            rollback_reply(5, GlobalStatus::Rollbacking),
            commit_reply(6, GlobalStatus::Rollbacking)
        ]
    );

    h.tc.branch_result(T0 + 10, tx.id, t1, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.rollback_of(a2)]);
    assert!(!h.lockable(&other.xid, "orders:2"));

    h.tc.branch_result(T0 + 20, tx.id, a2, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a2), h.rollback_of(a1)]);
    // a2's row is free once a2 is undone; a1's row is still protected.
    assert!(h.lockable(&other.xid, "orders:2"));
    assert!(!h.lockable(&other.xid, "orders:1"));
    assert_eq!(h.tc.stats().locked_rows, 1);

    h.tc.branch_result(T0 + 30, tx.id, a1, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, a1),
            remove_global(&tx),
            rollback_reply(4, GlobalStatus::Rollbacked),
        ]
    );
    assert!(h.lockable(&other.xid, "orders:1,2"));
    assert_eq!(h.tc.stats().locked_rows, 0);
    assert!(h.replay().get(tx.id).is_none());
}
