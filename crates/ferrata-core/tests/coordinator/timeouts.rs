//! Transaction timeouts and requests against missing or ended transactions (§1.2, §1.7).

use super::*;

#[test]
fn timeout_rolls_back_newest_first_and_ends_timeout_rollbacked() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 1_000);
    let a1 = h.at(&tx, "orders:1");
    let t1 = h.tcc(&tx, "debit");
    let other = h.begin(T0, 60_000);
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 1_001));

    // At the deadline the transaction is not yet timed out.
    h.tc.tick(T0 + 1_000);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));

    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(t1)
        ]
    );
    // Closed to new branches, rows still protected, end requests see the timeout.
    assert_eq!(
        h.try_at(&tx, "orders:2", ""),
        Err(Code::GlobalTransactionNotActive)
    );
    assert!(!h.lockable(&other.xid, "orders:1"));
    h.commit(T0 + 1_002, 5, &tx.xid);
    h.rollback(6, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            commit_reply(5, GlobalStatus::TimeoutRollbacking),
            rollback_reply(6, GlobalStatus::TimeoutRollbacking)
        ]
    );

    h.tc.branch_result(T0 + 1_010, tx.id, t1, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.rollback_of(a1)]);
    h.tc.branch_result(T0 + 1_020, tx.id, a1, ROLLBACKED);
    // Nobody waits for a timeout rollback: the session just ends.
    assert_eq!(
        h.effects(),
        vec![remove_branch(&tx, a1), remove_global(&tx)]
    );
    assert!(h.lockable(&other.xid, "orders:1"));
    assert_eq!(h.global_status(&tx), GlobalStatus::Finished);
    // The other transaction is untouched by the tick.
    assert_eq!(h.tc.status_of(other.id), Some(GlobalStatus::Begin));
}

#[test]
fn commit_after_the_deadline_but_before_the_tick_answers_timeout_rollbacking() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 1_000);
    let a1 = h.at(&tx, "orders:1");
    h.commit(T0 + 1_001, 5, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![commit_reply(5, GlobalStatus::TimeoutRollbacking)]
    );
    // Nothing changed: still Begin, rows still held, the tick does the rollback.
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));
    assert_eq!(h.tc.stats().locked_rows, 1);
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(a1)
        ]
    );
}

#[test]
fn commit_exactly_at_the_deadline_still_commits() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 1_000);
    h.commit(T0 + 1_000, 5, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![remove_global(&tx), commit_reply(5, GlobalStatus::Committed)]
    );
}

#[test]
fn registering_into_a_transaction_that_left_begin_is_refused() {
    let mut h = Harness::new();
    let committing = h.begin(T0, 60_000);
    let t1 = h.tcc(&committing, "debit");
    h.commit(T0 + 1, 1, &committing.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&committing, GlobalStatus::Committing),
            h.commit_of(t1)
        ]
    );
    let rolling = h.begin(T0, 60_000);
    let a1 = h.at(&rolling, "orders:1");
    h.rollback(2, &rolling.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&rolling, GlobalStatus::Rollbacking),
            h.rollback_of(a1)
        ]
    );
    for tx in [&committing, &rolling] {
        for branch_type in [BranchType::At, BranchType::Tcc, BranchType::Xa] {
            assert_eq!(
                h.try_register(tx, branch_type, DB, "orders:7", ""),
                Err(Code::GlobalTransactionNotActive)
            );
        }
    }
    // Saga forward recovery may still add branches.
    h.register(&rolling, BranchType::Saga, "machine#state", "", "");
}

#[test]
fn unknown_transactions_are_reported_as_missing_or_finished() {
    let mut h = Harness::new();
    let gone = Tx {
        xid: format!("{PREFIX}:12345"),
        id: TransactionId(12_345),
        begin_time: T0,
        timeout_ms: 60_000,
    };
    let garbage = Tx {
        xid: "not-an-xid".to_owned(),
        ..gone.clone()
    };
    for tx in [&gone, &garbage] {
        assert_eq!(
            h.try_at(tx, "orders:1", ""),
            Err(Code::GlobalTransactionNotExist)
        );
        h.commit(T0, 1, &tx.xid);
        h.rollback(2, &tx.xid);
        h.status_request(3, &tx.xid);
        h.report(T0, 4, &tx.xid, Some(GlobalStatus::Committed));
        h.report(T0, 5, &tx.xid, None);
        assert_eq!(
            h.effects(),
            vec![
                commit_reply(1, GlobalStatus::Finished),
                rollback_reply(2, GlobalStatus::Finished),
                status_reply(3, GlobalStatus::Finished),
                report_reply(4, GlobalStatus::Committed),
                report_reply(5, GlobalStatus::Finished),
            ]
        );
        h.branch_report(
            6,
            &tx.xid,
            BranchId(1),
            BranchStatus::PhaseOneDone,
            String::new(),
        );
        match h.effects().as_slice() {
            [
                Effect::Reply {
                    token: 6,
                    reply:
                        Reply::Failed {
                            request: RequestKind::BranchReport,
                            error,
                        },
                },
            ] => assert_eq!(error.code, Code::GlobalTransactionNotExist),
            other => panic!("unexpected: {other:?}"),
        }
        assert!(h.lockable(&tx.xid, "orders:1"));
    }
    assert!(h.log.is_empty());
}
