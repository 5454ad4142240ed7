//! XA answers (semantics §1.5): XAER_NOTA (statuses 11/12) is retried until Seata's give-up
//! rule — begin + timeout + max(`xaer_nota_retry_timeout`, timeout) — then counts as done.

use super::*;

const NOTA_COMMIT: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable);
const NOTA_ROLLBACK: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable);

#[test]
fn xaer_nota_at_commit_is_retried_until_the_give_up_time_then_counts_as_committed() {
    let mut h = Harness::new();
    // Timeout 10 s, xaer_nota_retry_timeout 60 s: given up after begin + 70 s.
    let tx = h.begin(T0, 10_000);
    let x1 = h.register(&tx, BranchType::Xa, DB, "", "");
    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(x1)]
    );
    h.tc.branch_result(T0 + 2, tx.id, x1, NOTA_COMMIT);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying)
        ]
    );
    h.tc.tick(T0 + 70_000);
    assert_eq!(h.effects(), vec![h.commit_of(x1)]);
    // At the give-up time exactly: still retried.
    h.tc.branch_result(T0 + 70_000, tx.id, x1, NOTA_COMMIT);
    h.effects();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::CommitRetrying));
    h.tc.tick(T0 + 100_000);
    assert_eq!(h.effects(), vec![h.commit_of(x1)]);
    h.tc.branch_result(T0 + 100_000, tx.id, x1, NOTA_COMMIT);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, x1), remove_global(&tx)]
    );
}

#[test]
fn xaer_nota_at_rollback_counts_as_rolled_back_after_the_give_up_time() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        xaer_nota_retry_timeout_ms: 5_000,
        ..config()
    });
    // The longer of the two counts: timeout 20 s → begin + 40 s.
    let tx = h.begin(T0, 20_000);
    let x1 = h.register(&tx, BranchType::Xa, DB, "", "");
    h.rollback(2, &tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 30_000, tx.id, x1, NOTA_ROLLBACK);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackRetrying),
            rollback_reply(2, GlobalStatus::RollbackRetrying)
        ]
    );
    h.tc.tick(T0 + 40_001);
    assert_eq!(h.effects(), vec![h.rollback_of(x1)]);
    h.tc.branch_result(T0 + 40_001, tx.id, x1, NOTA_ROLLBACK);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, x1), remove_global(&tx)]
    );
}
