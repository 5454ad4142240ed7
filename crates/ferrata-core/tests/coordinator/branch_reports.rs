//! BranchReport: status and application data overwrite; phase-one failed and read-only branches (§1.5, §1.6).

use super::*;

#[test]
fn reports_overwrite_status_and_non_blank_application_data() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    let data = r#"{"actionContext":{"amount":5}}"#;
    h.branch_report(7, &tx.xid, t1, BranchStatus::PhaseOneDone, data.to_owned());
    assert_eq!(
        h.effects(),
        vec![
            Effect::Persist(Record::BranchUpdate {
                transaction_id: tx.id,
                branch_id: t1,
                status: BranchStatus::PhaseOneDone,
                application_data: Some(data.to_owned()),
            }),
            reply(7, Reply::BranchReported),
        ]
    );
    // Blank data leaves the stored data alone.
    h.branch_report(8, &tx.xid, t1, BranchStatus::Registered, "  ".to_owned());
    assert_eq!(
        h.effects(),
        vec![
            Effect::Persist(Record::BranchUpdate {
                transaction_id: tx.id,
                branch_id: t1,
                status: BranchStatus::Registered,
                application_data: None,
            }),
            reply(8, Reply::BranchReported),
        ]
    );
    h.assert_log_matches_state();
    let stored = h.replay();
    let branch = &stored
        .get(tx.id)
        .expect("live")
        .branches
        .first()
        .expect("a branch");
    assert_eq!(branch.application_data, data);
    assert_eq!(branch.status, BranchStatus::Registered);

    // Phase 2 hands the reported data back to the RM.
    h.set_application_data(t1, data);
    h.commit(T0 + 10, 9, &tx.xid);
    let effects = h.effects();
    assert_eq!(
        effects,
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    let Effect::BranchCommit(request) = &effects[1] else {
        unreachable!()
    };
    assert_eq!(request.application_data, data);
}

#[test]
fn reports_for_unknown_branches_fail() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    h.branch_report(
        7,
        &tx.xid,
        BranchId(424_242),
        BranchStatus::PhaseOneDone,
        String::new(),
    );
    match h.effects().as_slice() {
        [
            Effect::Reply {
                token: 7,
                reply:
                    Reply::Failed {
                        request: RequestKind::BranchReport,
                        error,
                    },
            },
        ] => assert_eq!(error.code, Code::BranchTransactionNotExist),
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn phase_one_failed_branches_are_removed_in_rollback_without_the_rm() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let a2 = h.at(&tx, "orders:2");
    let other = h.begin(T0, 60_000);
    h.branch_report(1, &tx.xid, a2, BranchStatus::PhaseOneFailed, String::new());
    h.effects();
    h.rollback(2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Rollbacking),
            remove_branch(&tx, a2),
            h.rollback_of(a1),
        ]
    );
    assert!(h.lockable(&other.xid, "orders:2"));
    assert!(!h.lockable(&other.xid, "orders:1"));
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

#[test]
fn phase_one_failed_branches_are_removed_in_commit_without_the_rm() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let t1 = h.tcc(&tx, "debit");
    let t2 = h.tcc(&tx, "credit");
    h.branch_report(1, &tx.xid, t2, BranchStatus::PhaseOneFailed, String::new());
    h.effects();
    h.commit(T0 + 1, 2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
    );
    h.tc.branch_result(T0 + 2, tx.id, t1, COMMITTED);
    // Only the failed (async-committable) branch is left: answer, then drop it unsent.
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, t1),
            update(&tx, GlobalStatus::AsyncCommitting),
            commit_reply(2, GlobalStatus::Committed),
            remove_branch(&tx, t2),
            remove_global(&tx),
        ]
    );
}

#[test]
fn read_only_xa_branches_are_removed_in_commit_without_the_rm() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let x1 = h.register(&tx, BranchType::Xa, DB, "", "");
    let x2 = h.register(&tx, BranchType::Xa, DB, "", "");
    h.branch_report(1, &tx.xid, x1, BranchStatus::PhaseOneRdonly, String::new());
    h.effects();
    h.commit(T0 + 1, 2, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Committing),
            remove_branch(&tx, x1),
            h.commit_of(x2),
        ]
    );
}
