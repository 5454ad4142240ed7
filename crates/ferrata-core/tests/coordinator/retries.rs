//! Phase-2 retries: exponential backoff, retry timeouts and their lock rules (§1.4, §1.7).

use super::*;

fn backoff_config() -> ferrata_core::CoordinatorConfig {
    ferrata_core::CoordinatorConfig {
        retry_backoff_initial_ms: 1_000,
        retry_backoff_max_ms: 3_000,
        ..config()
    }
}

#[test]
fn commit_retries_back_off_exponentially_up_to_the_cap() {
    let mut h = Harness::with_config(backoff_config());
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    let t2 = h.tcc(&tx, "credit");
    h.commit(T0 + 10, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    h.tc.branch_result(T0 + 20, tx.id, t1, COMMIT_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying),
        ]
    );
    // The TM asking again sees the retrying status.
    h.commit(T0 + 21, 2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![commit_reply(2, GlobalStatus::CommitRetrying)]
    );

    // First retry after the initial backoff, not before.
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 1_020));
    h.tc.tick(T0 + 1_019);
    h.assert_quiet();
    h.tc.tick(T0 + 1_020);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);

    // Second failure (no answer at all): the backoff doubles, nothing new is persisted.
    h.tc.branch_result(T0 + 1_030, tx.id, t1, BranchOutcome::Unreachable);
    h.assert_quiet();
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 3_030));
    h.tc.tick(T0 + 3_029);
    h.assert_quiet();
    h.tc.tick(T0 + 3_030);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);

    // Third failure: 4000 ms capped at 3000 ms, and it stays capped.
    h.tc.branch_result(T0 + 3_040, tx.id, t1, COMMIT_RETRYABLE);
    h.assert_quiet();
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 6_040));
    h.tc.tick(T0 + 6_040);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);
    h.tc.branch_result(T0 + 6_050, tx.id, t1, BranchOutcome::Unreachable);
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 9_050));
    h.tc.tick(T0 + 9_050);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);

    // Success: the rest of the pass continues; the TM already had its answer.
    h.tc.branch_result(T0 + 9_060, tx.id, t1, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
    h.tc.branch_result(T0 + 9_070, tx.id, t2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, t2), remove_global(&tx)]
    );
    h.tc.tick(T0 + 100_000);
    h.assert_quiet();
}

#[test]
fn an_unreachable_branch_on_the_first_attempt_moves_to_commit_retrying() {
    let mut h = Harness::with_config(backoff_config());
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    h.commit(T0 + 10, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    h.tc.branch_result(T0 + 20, tx.id, t1, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying),
        ]
    );
    h.tc.tick(T0 + 1_020);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);
    h.tc.branch_result(T0 + 1_030, tx.id, t1, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, t1), remove_global(&tx)]
    );
}

#[test]
fn commit_retries_give_up_after_max_commit_retry_timeout() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        max_commit_retry_timeout_ms: Some(5_000),
        retry_backoff_max_ms: 1_000,
        ..backoff_config()
    });
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    h.commit(T0 + 3_900, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    h.tc.branch_result(T0 + 4_000, tx.id, t1, COMMIT_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying),
        ]
    );
    // Age exactly at the limit: still retried.
    h.tc.tick(T0 + 5_000);
    assert_eq!(h.effects(), vec![h.commit_of(t1)]);
    h.tc.branch_result(T0 + 5_010, tx.id, t1, COMMIT_RETRYABLE);
    h.assert_quiet();
    // Past the limit (measured from begin time): give up, keep the session for an operator.
    h.tc.tick(T0 + 6_010);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::CommitRetryTimeout)]
    );
    assert_eq!(
        h.tc.status_of(tx.id),
        Some(GlobalStatus::CommitRetryTimeout)
    );
    assert_eq!(h.global_status(&tx), GlobalStatus::CommitRetryTimeout);
    h.tc.tick(T0 + 100_000);
    h.assert_quiet();
    assert_eq!(h.tc.stats().branches, 1);
    h.assert_log_matches_state();
}

#[test]
fn async_commit_failures_keep_async_committing_and_are_retried_without_a_deadline() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        max_commit_retry_timeout_ms: Some(5_000),
        ..backoff_config()
    });
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    h.commit(T0 + 10, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::AsyncCommitting),
            commit_reply(1, GlobalStatus::Committed),
            h.commit_of(a1),
        ]
    );
    h.tc.branch_result(T0 + 20, tx.id, a1, BranchOutcome::Unreachable);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::AsyncCommitting));
    h.tc.tick(T0 + 1_019);
    h.assert_quiet();
    // Long past max_commit_retry_timeout: undo-log deletion is still simply retried
    // (semantics §1.4: only Committing / CommitRetrying time out).
    h.tc.tick(T0 + 10_000);
    assert_eq!(h.effects(), vec![h.commit_of(a1)]);
    h.tc.branch_result(T0 + 10_010, tx.id, a1, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, a1), remove_global(&tx)]
    );
}

#[test]
fn rollback_retries_back_off_and_keep_the_rows_locked() {
    let mut h = Harness::with_config(backoff_config());
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let other = h.begin(T0, 60_000);
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(a1)]
    );
    h.tc.branch_result(T0 + 20, tx.id, a1, ROLLBACK_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackRetrying),
            rollback_reply(2, GlobalStatus::RollbackRetrying),
        ]
    );
    assert!(!h.lockable(&other.xid, "orders:1"));
    h.tc.tick(T0 + 1_019);
    h.assert_quiet();
    h.tc.tick(T0 + 1_020);
    assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 1_030, tx.id, a1, BranchOutcome::Unreachable);
    h.assert_quiet();
    h.tc.tick(T0 + 3_029);
    h.assert_quiet();
    h.tc.tick(T0 + 3_030);
    assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 3_040, tx.id, a1, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, a1), remove_global(&tx)]
    );
    assert!(h.lockable(&other.xid, "orders:1"));
}

fn rollback_retry_timeout(unlock: bool) -> (Harness, Tx, Tx) {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        max_rollback_retry_timeout_ms: Some(5_000),
        rollback_retry_timeout_unlock: unlock,
        ..backoff_config()
    });
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let other = h.begin(T0, 60_000);
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(a1)]
    );
    h.tc.branch_result(T0 + 4_500, tx.id, a1, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackRetrying),
            rollback_reply(2, GlobalStatus::RollbackRetrying),
        ]
    );
    h.tc.tick(T0 + 5_500);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::RollbackRetryTimeout)]
    );
    assert_eq!(
        h.tc.status_of(tx.id),
        Some(GlobalStatus::RollbackRetryTimeout)
    );
    h.tc.tick(T0 + 50_000);
    h.assert_quiet();
    (h, tx, other)
}

#[test]
fn rollback_retry_timeout_keeps_the_rows_by_default() {
    let (mut h, tx, other) = rollback_retry_timeout(false);
    assert_eq!(h.try_at(&other, "orders:1", ""), Err(Code::LockKeyConflict));
    assert_eq!(h.tc.stats().locked_rows, 1);
    // Still so after a restart.
    h.recover(T0 + 200_000);
    h.assert_quiet();
    assert_eq!(
        h.tc.status_of(tx.id),
        Some(GlobalStatus::RollbackRetryTimeout)
    );
    assert_eq!(h.try_at(&other, "orders:1", ""), Err(Code::LockKeyConflict));
}

#[test]
fn rollback_retry_timeout_unlock_releases_the_rows_and_a_restart_does_not_retake_them() {
    let (mut h, tx, other) = rollback_retry_timeout(true);
    assert_eq!(h.tc.stats().locked_rows, 0);
    assert_eq!(
        h.tc.stats().branches,
        1,
        "the branch stays for manual handling"
    );
    h.at(&other, "orders:1");
    h.recover(T0 + 200_000);
    h.assert_quiet();
    assert_eq!(
        h.tc.status_of(tx.id),
        Some(GlobalStatus::RollbackRetryTimeout)
    );
    // The row belongs to `other` only.
    assert_eq!(h.tc.stats().locked_rows, 1);
    assert!(h.lockable(&other.xid, "orders:1"));
    assert!(!h.lockable(&tx.xid, "orders:1"));
}

#[test]
fn timeout_rollback_retries_keep_their_flavour_until_the_retry_timeout() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        max_rollback_retry_timeout_ms: Some(5_000),
        ..backoff_config()
    });
    let tx = h.begin(T0, 1_000);
    let a1 = h.at(&tx, "orders:1");
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(a1)
        ]
    );
    h.tc.branch_result(T0 + 1_010, tx.id, a1, ROLLBACK_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::TimeoutRollbackRetrying)]
    );
    h.tc.tick(T0 + 2_010);
    assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 2_020, tx.id, a1, ROLLBACK_RETRYABLE);
    h.assert_quiet();
    h.tc.tick(T0 + 4_020);
    assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 4_030, tx.id, a1, BranchOutcome::Unreachable);
    h.assert_quiet();
    // Next retry at 4030 + 3000 > 5000 ms of age: the timeout flavour is not preserved.
    h.tc.tick(T0 + 7_030);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::RollbackRetryTimeout)]
    );
}
