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
    let s1 = h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(s1)
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
    // The RM's late answer is ignored.
    h.tc.branch_result(T0 + 1_006, tx.id, s1, ROLLBACKED);
    h.assert_quiet();
}

#[test]
fn saga_retry_reports_are_stored_and_queued() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    let s1 = h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::RollbackRetrying));
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::RollbackRetrying),
            report_reply(3, GlobalStatus::RollbackRetrying)
        ]
    );
    h.tc.tick(T0 + 5);
    assert_eq!(h.effects(), vec![h.rollback_of(s1)]);

    let forward = h.begin_named(T0, 60_000, "$Saga_pay");
    let p1 = h.register(&forward, BranchType::Saga, "pay#charge", "", "");
    h.report(T0 + 6, 4, &forward.xid, Some(GlobalStatus::CommitRetrying));
    assert_eq!(
        h.effects(),
        vec![
            update(&forward, GlobalStatus::CommitRetrying),
            report_reply(4, GlobalStatus::CommitRetrying)
        ]
    );
    h.tc.tick(T0 + 6);
    assert_eq!(h.effects(), vec![h.commit_of(p1)]);
    // Neither times out any more: their timeouts were cancelled.
    h.tc.branch_result(T0 + 7, tx.id, s1, ROLLBACK_RETRYABLE);
    h.tc.branch_result(T0 + 7, forward.id, p1, COMMIT_RETRYABLE);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::RollbackRetrying));
    assert_eq!(
        h.tc.status_of(forward.id),
        Some(GlobalStatus::CommitRetrying)
    );
}

#[test]
fn saga_branches_joining_during_commit_are_committed_by_another_pass() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_order");
    let s1 = h.register(&tx, BranchType::Saga, "order#reduce", "", "");
    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(s1)]
    );
    // Forward recovery registers another branch while the commit runs.
    let s2 = h.register(&tx, BranchType::Saga, "order#pay", "", "");
    h.tc.branch_result(T0 + 2, tx.id, s1, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, s1),
            commit_reply(1, GlobalStatus::Committing)
        ]
    );
    // Due at once: the next tick goes round again.
    h.tc.tick(T0 + 2);
    assert_eq!(h.effects(), vec![h.commit_of(s2)]);
    h.tc.branch_result(T0 + 3, tx.id, s2, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, s2), remove_global(&tx)]
    );
}

#[test]
fn global_report_is_a_no_op_for_other_modes() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    h.tcc(&tx, "debit");
    // Named like a Saga, but its first branch decides: TCC.
    let lookalike = h.begin_named(T0, 60_000, "$Saga_fake");
    h.tcc(&lookalike, "debit");
    let log_len = h.log.len();
    for reported in [
        Some(GlobalStatus::Committed),
        Some(GlobalStatus::Rollbacked),
        None,
    ] {
        h.report(T0 + 5, 3, &tx.xid, reported);
        h.report(T0 + 5, 4, &lookalike.xid, reported);
        assert_eq!(
            h.effects(),
            vec![
                report_reply(3, GlobalStatus::Begin),
                report_reply(4, GlobalStatus::Begin)
            ]
        );
    }
    assert_eq!(h.log.len(), log_len);
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));
}
