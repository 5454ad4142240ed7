//! GlobalReport drives Saga transactions (§6.4).

use super::*;

#[test]
fn saga_committed_report_ends_the_transaction() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::Committed));
    assert_eq!(
        h.effects(),
        vec![remove_global(&tx), report_reply(3, GlobalStatus::Committed)]
    );
    assert_eq!(h.tc.status_of(tx.id), None);
}

#[test]
fn saga_rollbacked_or_finished_report_ends_rollbacked() {
    for reported in [GlobalStatus::Rollbacked, GlobalStatus::Finished] {
        let mut h = Harness::new();
        let tx = h.begin_named(T0, 60_000, "$Saga_order");
        h.register(&tx, BranchType::Saga, "order#reduce", "", "");
        h.report(T0 + 5, 3, &tx.xid, Some(reported));
        assert_eq!(
            h.effects(),
            vec![
                remove_global(&tx),
                report_reply(3, GlobalStatus::Rollbacked)
            ],
            "{reported:?}"
        );
    }
}

#[test]
fn saga_rollbacked_report_after_a_timeout_ends_timeout_rollbacked() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 1_000, "$Saga_order");
    h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.tc.tick(T0 + 1_001);
    // The engine is asked to compensate the whole saga, not the branch.
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.saga_rollback(&tx, GlobalStatus::TimeoutRollbacking)
        ]
    );
    h.report(T0 + 1_005, 3, &tx.xid, Some(GlobalStatus::Rollbacked));
    assert_eq!(
        h.effects(),
        vec![
            remove_global(&tx),
            report_reply(3, GlobalStatus::TimeoutRollbacked)
        ]
    );
    // The engine's late answer is ignored.
    h.tc.branch_result(T0 + 1_006, tx.id, SAGA_ENGINE, ROLLBACKED);
    h.assert_quiet();
}

#[test]
fn saga_retry_reports_are_stored_and_queued() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::RollbackRetrying));
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackRetrying),
            report_reply(3, GlobalStatus::RollbackRetrying)
        ]
    );
    h.tc.tick(T0 + 5);
    assert_eq!(
        h.effects(),
        vec![h.saga_rollback(&tx, GlobalStatus::RollbackRetrying)]
    );

    let forward = h.begin_named(T0, 60_000, "$Saga_pay");
    h.report(T0 + 6, 4, &forward.xid, Some(GlobalStatus::CommitRetrying));
    assert_eq!(
        h.effects(),
        vec![
            update(&forward, GlobalStatus::CommitRetrying),
            report_reply(4, GlobalStatus::CommitRetrying)
        ]
    );
    h.tc.tick(T0 + 6);
    assert_eq!(
        h.effects(),
        vec![h.saga_commit(&forward, GlobalStatus::CommitRetrying)]
    );
    // Neither times out any more: their timeouts were cancelled.
    h.tc.branch_result(T0 + 7, tx.id, SAGA_ENGINE, ROLLBACK_RETRYABLE);
    h.tc.branch_result(T0 + 7, forward.id, SAGA_ENGINE, COMMIT_RETRYABLE);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::RollbackRetrying));
    assert_eq!(
        h.tc.status_of(forward.id),
        Some(GlobalStatus::CommitRetrying)
    );
}

#[test]
fn every_reported_status_leaves_the_saga_ended_or_queued() {
    // Whatever the engine reports, the transaction either ends or has a pass coming: none
    // stays in a status nothing drives.
    for &reported in GlobalStatus::ALL {
        let mut h = Harness::new();
        let tx = h.begin_named(T0, 60_000, "$Saga_order");
        h.report(T0 + 5, 3, &tx.xid, Some(reported));
        h.effects();
        let Some(status) = h.tc.status_of(tx.id) else {
            continue;
        };
        // Past the transaction's timeout and any backoff: something is sent or it ended.
        h.tc.tick(T0 + 120_000);
        let effects = h.effects();
        let driven = effects.iter().any(|e| {
            matches!(e, Effect::BranchCommit(r) | Effect::BranchRollback(r) if r.branch_id == SAGA_ENGINE)
        });
        let ended = h.tc.status_of(tx.id).is_none_or(|s| s.is_final());
        assert!(
            driven || ended,
            "reported {reported:?}: stuck in {status:?} with {effects:?}"
        );
    }
}
#[test]
fn global_report_is_a_no_op_for_other_modes() {
    // A `$Saga_` name makes a saga whatever joined (Ferrata widens Seata's first-branch rule,
    // see saga_participants.rs); any other transaction ignores the report.
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    h.tcc(&tx, "debit");
    let log_len = h.log.len();
    for reported in [
        Some(GlobalStatus::Committed),
        Some(GlobalStatus::Rollbacked),
        None,
    ] {
        h.report(T0 + 5, 3, &tx.xid, reported);
        assert_eq!(h.effects(), vec![report_reply(3, GlobalStatus::Begin)]);
    }
    assert_eq!(h.log.len(), log_len);
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));
}
