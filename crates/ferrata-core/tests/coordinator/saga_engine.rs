//! Phase 2 of a Saga transaction (semantics §6.4): one request to the engine that began it,
//! branch id -1 on `<applicationId>#<txServiceGroup>`, and what each of its answers does.

use super::*;

/// A saga that timed out with no branch (the engine registers none by default).
fn timed_out_saga(h: &mut Harness) -> Tx {
    let tx = h.begin_named(T0, 1_000, "$Saga_order");
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.saga_rollback(&tx, GlobalStatus::TimeoutRollbacking)
        ]
    );
    tx
}

/// A saga the engine asked the TC to carry forward.
fn forwarded_saga(h: &mut Harness) -> Tx {
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::CommitRetrying));
    h.tc.tick(T0 + 5);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitRetrying),
            report_reply(3, GlobalStatus::CommitRetrying),
            h.saga_commit(&tx, GlobalStatus::CommitRetrying)
        ]
    );
    tx
}

#[test]
fn a_timed_out_saga_compensated_by_the_engine_ends_timeout_rollbacked() {
    let mut h = Harness::new();
    let tx = timed_out_saga(&mut h);
    h.tc.branch_result(T0 + 1_002, tx.id, SAGA_ENGINE, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_global(&tx)]);
    assert_eq!(h.tc.status_of(tx.id), None);
}

#[test]
fn registered_saga_branches_are_not_sent_phase_two_the_engine_is() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.register(&tx, BranchType::Saga, "order#pay", "", "");
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Rollbacking),
            h.saga_rollback(&tx, GlobalStatus::Rollbacking)
        ]
    );
    h.tc.branch_result(T0 + 1, tx.id, SAGA_ENGINE, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_global(&tx),
            rollback_reply(2, GlobalStatus::Rollbacked)
        ]
    );
}

#[test]
fn an_unreachable_engine_is_asked_again_later() {
    let mut h = Harness::new();
    let tx = timed_out_saga(&mut h);
    h.tc.branch_result(T0 + 1_002, tx.id, SAGA_ENGINE, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::TimeoutRollbackRetrying)]
    );
    h.tc.tick(T0 + 1_002 + 1_000);
    assert_eq!(
        h.effects(),
        vec![h.saga_rollback(&tx, GlobalStatus::TimeoutRollbackRetrying)]
    );
}

#[test]
fn forward_recovery_on_timeout_switches_the_saga_to_commit_retry() {
    // The machine's RecoverStrategy is Forward: the engine answers a timeout rollback with
    // CommitFailed_Retryable, and the TC then asks it to go forward.
    let mut h = Harness::new();
    let tx = timed_out_saga(&mut h);
    h.tc.branch_result(T0 + 1_002, tx.id, SAGA_ENGINE, COMMIT_RETRYABLE);
    assert_eq!(h.effects(), vec![update(&tx, GlobalStatus::CommitRetrying)]);
    h.tc.tick(T0 + 1_002 + 1_000);
    assert_eq!(
        h.effects(),
        vec![h.saga_commit(&tx, GlobalStatus::CommitRetrying)]
    );
    h.tc.branch_result(T0 + 2_003, tx.id, SAGA_ENGINE, COMMITTED);
    assert_eq!(h.effects(), vec![remove_global(&tx)]);
}

#[test]
fn a_forward_recovery_that_needs_compensation_switches_to_rollback_retry() {
    let mut h = Harness::new();
    let tx = forwarded_saga(&mut h);
    h.tc.branch_result(T0 + 6, tx.id, SAGA_ENGINE, ROLLBACK_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::RollbackRetrying)]
    );
    h.tc.tick(T0 + 6 + 1_000);
    assert_eq!(
        h.effects(),
        vec![h.saga_rollback(&tx, GlobalStatus::RollbackRetrying)]
    );
}

#[test]
fn the_engine_may_end_a_forward_recovery_compensated_or_failed() {
    let mut h = Harness::new();
    let tx = forwarded_saga(&mut h);
    h.tc.branch_result(T0 + 6, tx.id, SAGA_ENGINE, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_global(&tx)]);

    // Failed with nothing to compensate: the saga is finished.
    let mut h = Harness::new();
    let tx = forwarded_saga(&mut h);
    h.tc.branch_result(
        T0 + 6,
        tx.id,
        SAGA_ENGINE,
        BranchOutcome::Status(BranchStatus::PhaseOneFailed),
    );
    assert_eq!(h.effects(), vec![remove_global(&tx)]);
    assert_eq!(h.tc.status_of(tx.id), None);
}

#[test]
fn unretryable_engine_failures_end_the_saga_for_an_operator() {
    let mut h = Harness::new();
    let tx = forwarded_saga(&mut h);
    h.tc.branch_result(T0 + 6, tx.id, SAGA_ENGINE, COMMIT_UNRETRYABLE);
    assert_eq!(h.effects(), vec![update(&tx, GlobalStatus::CommitFailed)]);
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::CommitFailed));

    let mut h = Harness::new();
    let tx = timed_out_saga(&mut h);
    h.tc.branch_result(T0 + 1_002, tx.id, SAGA_ENGINE, ROLLBACK_UNRETRYABLE);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::TimeoutRollbackFailed)]
    );
}

#[test]
fn saga_annotation_branches_are_committed_without_their_rm_and_compensated_through_it() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.register(&tx, BranchType::SagaAnnotation, "reduceStock", "", "");
    let t2 = h.tcc(&tx, "debit");
    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Committing),
            remove_branch(&tx, a1),
            h.commit_of(t2)
        ]
    );

    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.register(&tx, BranchType::SagaAnnotation, "reduceStock", "", "");
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(a1)]
    );
    h.tc.branch_result(T0 + 1, tx.id, a1, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, a1),
            remove_global(&tx),
            rollback_reply(2, GlobalStatus::Rollbacked)
        ]
    );
}
