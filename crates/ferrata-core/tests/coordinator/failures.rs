//! Unretryable phase-2 failures end the transaction in a failed status with its locks (§1.4).

use super::*;

#[test]
fn unretryable_commit_ends_commit_failed_and_keeps_the_session() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    h.tcc(&tx, "credit");
    h.commit(T0 + 10, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    h.tc.branch_result(T0 + 20, tx.id, t1, COMMIT_UNRETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitFailed),
            commit_reply(1, GlobalStatus::CommitFailed),
        ]
    );
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::CommitFailed));
    assert_eq!(h.global_status(&tx), GlobalStatus::CommitFailed);
    assert_eq!(h.tc.stats().branches, 2);
    // Nothing is retried any more.
    h.tc.tick(T0 + 1_000_000);
    h.assert_quiet();
    h.commit(T0 + 1_000_001, 2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![commit_reply(2, GlobalStatus::CommitFailed)]
    );
    h.assert_log_matches_state();
}

#[test]
fn unretryable_async_commit_ends_commit_failed_without_a_reply() {
    let mut h = Harness::new();
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
    h.tc.branch_result(T0 + 20, tx.id, a1, COMMIT_UNRETRYABLE);
    assert_eq!(h.effects(), vec![update(&tx, GlobalStatus::CommitFailed)]);
    // The rows were released by the commit decision and stay free.
    assert_eq!(h.tc.stats().locked_rows, 0);
}

#[test]
fn unretryable_rollback_ends_rollback_failed_and_keeps_every_row_locked() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    h.at(&tx, "orders:1");
    let a2 = h.at(&tx, "orders:2");
    let other = h.begin(T0, 60_000);
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(a2)]
    );
    h.tc.branch_result(T0 + 10, tx.id, a2, ROLLBACK_UNRETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackFailed),
            rollback_reply(2, GlobalStatus::RollbackFailed),
        ]
    );
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::RollbackFailed));
    assert_eq!(h.tc.stats().locked_rows, 2);
    assert_eq!(h.try_at(&other, "orders:1", ""), Err(Code::LockKeyConflict));
    assert_eq!(h.try_at(&other, "orders:2", ""), Err(Code::LockKeyConflict));
    h.tc.tick(T0 + 1_000_000);
    // Only `other` times out; the failed session is left alone.
    assert_eq!(
        h.effects(),
        vec![
            update(&other, GlobalStatus::TimeoutRollbacking),
            remove_global(&other)
        ]
    );
    h.rollback(3, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![rollback_reply(3, GlobalStatus::RollbackFailed)]
    );
    assert_eq!(h.tc.stats().locked_rows, 2);
}

#[test]
fn unretryable_timeout_rollback_ends_timeout_rollback_failed() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 1_000);
    let a1 = h.at(&tx, "orders:1");
    let a2 = h.at(&tx, "orders:2");
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(a2)
        ]
    );
    h.tc.branch_result(T0 + 1_002, tx.id, a2, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a2), h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 1_003, tx.id, a1, ROLLBACK_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::TimeoutRollbackRetrying)]
    );
    h.tc.tick(T0 + 2_003);
    assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 2_004, tx.id, a1, ROLLBACK_UNRETRYABLE);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::TimeoutRollbackFailed)]
    );
    assert_eq!(
        h.tc.status_of(tx.id),
        Some(GlobalStatus::TimeoutRollbackFailed)
    );
    // a2 was undone and released; a1 was not and stays locked.
    let other = h.begin(T0 + 2_005, 60_000);
    h.at(&other, "orders:2");
    assert_eq!(h.try_at(&other, "orders:1", ""), Err(Code::LockKeyConflict));
}
