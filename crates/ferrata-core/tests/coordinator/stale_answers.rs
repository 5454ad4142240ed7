//! Phase-2 answers that no request waits for change nothing.

use super::*;

#[test]
fn answers_for_other_branches_or_transactions_are_ignored() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    let t2 = h.tcc(&tx, "credit");
    let idle = h.begin(T0, 60_000);
    let i1 = h.tcc(&idle, "debit");

    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    // Not the branch in flight, not this transaction, no pass at all, unknown transaction.
    h.tc.branch_result(T0 + 2, tx.id, t2, COMMITTED);
    h.tc.branch_result(T0 + 2, tx.id, t2, COMMIT_UNRETRYABLE);
    h.tc.branch_result(T0 + 2, idle.id, t1, COMMITTED);
    h.tc.branch_result(T0 + 2, idle.id, i1, COMMITTED);
    h.tc.branch_result(T0 + 2, TransactionId(99), t1, COMMITTED);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Committing));
    assert_eq!(h.tc.status_of(idle.id), Some(GlobalStatus::Begin));
    assert_eq!(h.tc.stats().branches, 3);

    h.tc.branch_result(T0 + 3, tx.id, t1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
    // A duplicate of an answer already handled changes nothing.
    h.tc.branch_result(T0 + 4, tx.id, t1, COMMIT_UNRETRYABLE);
    h.assert_quiet();
    h.tc.branch_result(T0 + 5, tx.id, t2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, t2),
            remove_global(&tx),
            commit_reply(1, GlobalStatus::Committed)
        ]
    );
    // Late answers for an ended transaction are ignored too.
    h.tc.branch_result(T0 + 6, tx.id, t2, COMMITTED);
    h.assert_quiet();
}

#[test]
fn an_answer_arriving_after_a_retry_was_scheduled_is_ignored() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    h.commit(T0 + 1, 1, &tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 2, tx.id, t1, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying)
        ]
    );
    // The RM's real answer shows up after the request was given up on.
    h.tc.branch_result(T0 + 3, tx.id, t1, COMMITTED);
    h.assert_quiet();
    h.tc.tick(T0 + 1_002);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);
}
