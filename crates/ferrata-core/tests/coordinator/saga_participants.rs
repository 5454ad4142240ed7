//! Participants of a Saga (a Ferrata extension to semantics §6.4): branches that services
//! called from a saga's steps registered under its XID (a TCC action, say) follow the saga's
//! outcome once its engine has decided — committed when it committed, else rolled back —
//! where Seata's TC would drop them unfinished.

use super::*;

fn saga_with_participant(h: &mut Harness) -> (Tx, BranchId) {
    let tx = h.begin_named(T0, 60_000, "$Saga_purchase");
    let tcc = h.tcc(&tx, "java-stock-action");
    (tx, tcc)
}

#[test]
fn a_committed_saga_commits_its_participants_before_it_ends() {
    let mut h = Harness::new();
    let (tx, tcc) = saga_with_participant(&mut h);
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::Committed));
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Committing),
            h.commit_of(tcc),
            report_reply(3, GlobalStatus::Committing)
        ]
    );
    h.tc.branch_result(T0 + 6, tx.id, tcc, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, tcc), remove_global(&tx)]
    );
    assert_eq!(h.tc.status_of(tx.id), None);
}

#[test]
fn a_compensated_or_failed_saga_rolls_its_participants_back() {
    for reported in [GlobalStatus::Rollbacked, GlobalStatus::Finished] {
        let mut h = Harness::new();
        let (tx, tcc) = saga_with_participant(&mut h);
        h.report(T0 + 5, 3, &tx.xid, Some(reported));
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::Rollbacking),
                h.rollback_of(tcc),
                report_reply(3, GlobalStatus::Rollbacking)
            ],
            "{reported:?}"
        );
        h.tc.branch_result(T0 + 6, tx.id, tcc, ROLLBACKED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&tx, tcc), remove_global(&tx)]
        );
    }
}

#[test]
fn a_timed_out_saga_asks_its_engine_first_then_rolls_participants_back() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 1_000, "$Saga_purchase");
    let tcc = h.tcc(&tx, "java-stock-action");
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.saga_rollback(&tx, GlobalStatus::TimeoutRollbacking)
        ]
    );
    // The engine compensated its steps; now the participant is rolled back too.
    h.tc.branch_result(T0 + 1_002, tx.id, SAGA_ENGINE, ROLLBACKED);
    assert_eq!(h.effects(), vec![h.rollback_of(tcc)]);
    h.tc.branch_result(T0 + 1_003, tx.id, tcc, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, tcc), remove_global(&tx)]
    );
}

#[test]
fn after_forward_recovery_participants_are_committed_and_retried_without_the_engine() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_purchase");
    let tcc = h.tcc(&tx, "java-stock-action");
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
    h.tc.branch_result(T0 + 6, tx.id, SAGA_ENGINE, COMMITTED);
    assert_eq!(h.effects(), vec![h.commit_of(tcc)]);
    // The participant fails once: the retry goes to it, not to the engine again.
    h.tc.branch_result(T0 + 7, tx.id, tcc, COMMIT_RETRYABLE);
    assert!(h.effects().is_empty());
    h.tc.tick(T0 + 7 + 1_000);
    assert_eq!(h.effects(), vec![h.commit_of(tcc)]);
    h.tc.branch_result(T0 + 1_008, tx.id, tcc, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, tcc), remove_global(&tx)]
    );
}

#[test]
fn saga_branches_of_the_engine_are_not_participants() {
    // Per-state SAGA branches (Java's sagaBranchRegisterEnable) end with the saga, unsent.
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Saga_purchase");
    h.register(&tx, BranchType::Saga, "purchase#reduce", "", "");
    h.report(T0 + 5, 3, &tx.xid, Some(GlobalStatus::Committed));
    assert_eq!(
        h.effects(),
        vec![remove_global(&tx), report_reply(3, GlobalStatus::Committed)]
    );
}
