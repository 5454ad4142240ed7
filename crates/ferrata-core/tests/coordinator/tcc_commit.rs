//! TCC commit: answered only after every branch committed; mixed AT/TCC commits (§1.4, §5.3).

use super::*;

#[test]
fn tcc_commit_answers_only_after_every_branch_committed() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    let t2 = h.tcc(&tx, "credit");
    h.commit(T0 + 10, 3, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    // The TM still waits; a status query sees Committing.
    assert_eq!(h.global_status(&tx), GlobalStatus::Committing);
    h.tc.branch_result(T0 + 20, tx.id, t1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
    h.tc.branch_result(T0 + 30, tx.id, t2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, t2),
            remove_global(&tx),
            commit_reply(3, GlobalStatus::Committed),
        ]
    );
    assert!(h.replay().is_empty());
}

#[test]
fn mixed_commit_runs_tcc_synchronously_then_answers_then_commits_at_asynchronously() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let t1 = h.tcc(&tx, "debit");
    let a2 = h.at(&tx, "orders:2");
    let t2 = h.tcc(&tx, "credit");
    let other = h.begin(T0, 60_000);

    h.commit(T0 + 10, 3, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    // AT rows are released by the decision, even while TCC branches are still committing.
    assert!(h.lockable(&other.xid, "orders:1,2"));
    assert_eq!(h.tc.stats().locked_rows, 0);

    h.tc.branch_result(T0 + 20, tx.id, t1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
    h.tc.branch_result(T0 + 30, tx.id, t2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, t2),
            update(&tx, GlobalStatus::AsyncCommitting),
            commit_reply(3, GlobalStatus::Committed),
            h.commit_of(a1),
        ]
    );
    h.tc.branch_result(T0 + 40, tx.id, a1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a1), h.commit_of(a2)]);
    h.tc.branch_result(T0 + 50, tx.id, a2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, a2), remove_global(&tx)]
    );
    h.assert_log_matches_state();
}
