//! Behaviour of the sans-IO coordinator (semantics §1, §2, §3.2): commands go in with explicit
//! `now` values and reply tokens, and every test asserts the exact effects that come out —
//! records to persist, replies, phase-2 branch requests and undo-log cleanup — in order.
//!
//! Layout: one module per area (begin/end, AT, TCC, rollback, locks, timeouts, retries,
//! failures, branch reports, stale answers, recovery, undo log, Saga reports), then a property
//! test that drives random operation sequences and checks the global invariants after each step.

mod support;

use ferrata_core::{
    BranchOutcome, Coordinator, Effect, GlobalSession, Record, Reply, RequestKind,
    transaction_id_of,
};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};
use support::*;

/// AT application data of a connection in a user-managed local transaction.
const USER_TX: &str = r#"{"autoCommit":false}"#;

mod begin_and_end {
    use super::*;

    #[test]
    fn begin_persists_the_session_before_returning_the_xid() {
        let mut h = Harness::new();
        h.begin_request(T0 + 5, 7, 30_000, "place-order");
        let effects = h.effects();
        let Some(Effect::Persist(Record::GlobalAdd(global))) = effects.first() else {
            panic!("the session must be persisted first: {effects:?}");
        };
        let id = global.transaction_id;
        let xid = format!("{PREFIX}:{id}");
        assert_eq!(
            effects,
            vec![
                Effect::Persist(Record::GlobalAdd(GlobalSession {
                    transaction_id: id,
                    xid: xid.clone(),
                    status: GlobalStatus::Begin,
                    application_id: APP.to_owned(),
                    transaction_service_group: GROUP.to_owned(),
                    transaction_name: "place-order".to_owned(),
                    timeout_ms: 30_000,
                    begin_time_ms: T0 + 5,
                    application_data: String::new(),
                })),
                reply(7, Reply::Began { xid: xid.clone() }),
            ]
        );
        // Snowflake layout: positive, worker id in bits 62..53.
        assert!(id > 0);
        assert_eq!(id >> 53, 5);
        assert_eq!(transaction_id_of(&xid), Some(id));
        assert_eq!(h.tc.status_of(id), Some(GlobalStatus::Begin));
        assert_eq!(h.tc.stats().sessions, 1);
        // The deadline is begin time + timeout; the timeout check fires strictly after it.
        assert_eq!(h.tc.next_deadline(), Some(T0 + 5 + 30_000 + 1));
    }

    #[test]
    fn each_begin_gets_a_fresh_increasing_id() {
        let mut h = Harness::new();
        let a = h.begin(T0, 60_000);
        let b = h.begin(T0, 60_000);
        assert!(b.id > a.id);
        assert_ne!(a.xid, b.xid);
        assert_eq!(h.global_status(&a), GlobalStatus::Begin);
        assert_eq!(h.global_status(&b), GlobalStatus::Begin);
    }

    #[test]
    fn the_tc_does_not_clamp_the_timeout() {
        // Up to the configured maximum (limits.rs tests the limit itself).
        let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
            max_transaction_timeout_ms: i64::from(i32::MAX),
            ..config()
        });
        let tx = h.begin(T0, 0);
        let long = h.begin(T0, i32::MAX);
        assert_eq!(h.tc.next_deadline(), Some(T0 + 1));
        h.tc.tick(T0 + 1);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::TimeoutRollbacking),
                remove_global(&tx)
            ]
        );
        assert_eq!(h.tc.status_of(long.id), Some(GlobalStatus::Begin));
    }

    #[test]
    fn commit_without_branches_removes_the_session_and_answers_committed() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        h.commit(T0 + 10, 9, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![remove_global(&tx), commit_reply(9, GlobalStatus::Committed)]
        );
        assert_eq!(h.tc.status_of(tx.id), None);
        assert_eq!(h.global_status(&tx), GlobalStatus::Finished);
        // A repeated commit finds nothing: Finished, nothing persisted.
        h.commit(T0 + 11, 10, &tx.xid);
        assert_eq!(h.effects(), vec![commit_reply(10, GlobalStatus::Finished)]);
        // No timeout fires for a finished transaction.
        h.tc.tick(T0 + 120_000);
        h.assert_quiet();
        assert!(h.replay().is_empty());
    }

    #[test]
    fn rollback_without_branches_ends_rollbacked() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        h.rollback(4, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::Rollbacking),
                remove_global(&tx),
                rollback_reply(4, GlobalStatus::Rollbacked),
            ]
        );
        assert_eq!(h.tc.stats(), Default::default());
        assert!(h.replay().is_empty());
    }
}

mod at_commit {
    use super::*;

    #[test]
    fn at_commit_answers_at_once_and_commits_branches_one_by_one() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let b1 = h.at(&tx, "orders:1,2");
        let b2 = h.at(&tx, "orders:3;order_item:1_1");
        let other = h.begin(T0 + 1, 60_000);
        assert_eq!(h.try_at(&other, "orders:2", ""), Err(Code::LockKeyConflict));
        assert_eq!(h.tc.stats().locked_rows, 4);

        h.commit(T0 + 10, 9, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::AsyncCommitting),
                commit_reply(9, GlobalStatus::Committed),
                h.commit_of(b1),
            ]
        );
        // The commit decision freed every row before phase 2 finished.
        assert_eq!(h.tc.stats().locked_rows, 0);
        assert!(h.lockable(&other.xid, "orders:1,2,3;order_item:1_1"));
        let taken = h.at(&other, "orders:1,2,3;order_item:1_1");
        assert!(taken > b2);

        // Commits are idempotent for the TM: AsyncCommitting is shown as Committed.
        h.commit(T0 + 11, 10, &tx.xid);
        assert_eq!(h.effects(), vec![commit_reply(10, GlobalStatus::Committed)]);
        h.rollback(11, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![rollback_reply(11, GlobalStatus::AsyncCommitting)]
        );
        assert_eq!(h.global_status(&tx), GlobalStatus::AsyncCommitting);
        // No more branches may join.
        assert_eq!(
            h.try_at(&tx, "orders:9", ""),
            Err(Code::GlobalTransactionNotActive)
        );

        h.tc.branch_result(T0 + 20, tx.id, b1, COMMITTED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, b1), h.commit_of(b2)]);
        h.tc.branch_result(T0 + 30, tx.id, b2, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&tx, b2), remove_global(&tx)]
        );
        assert_eq!(h.tc.status_of(tx.id), None);
        assert_eq!(h.global_status(&tx), GlobalStatus::Finished);
        // The rows now belong to the other transaction only.
        assert!(!h.lockable(&tx.xid, "orders:1"));
        assert!(h.lockable(&other.xid, "orders:1"));
        h.assert_log_matches_state();
    }

    #[test]
    fn at_branches_without_lock_keys_commit_the_same_way() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let b1 = h.at(&tx, "");
        assert_eq!(h.tc.stats().locked_rows, 0);
        h.commit(T0 + 1, 1, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::AsyncCommitting),
                commit_reply(1, GlobalStatus::Committed),
                h.commit_of(b1),
            ]
        );
        h.tc.branch_result(T0 + 2, tx.id, b1, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&tx, b1), remove_global(&tx)]
        );
    }
}

mod tcc_commit {
    use super::*;

    #[test]
    fn tcc_commit_answers_only_after_every_branch_committed() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let t1 = h.tcc(&tx, "debit");
        let t2 = h.tcc(&tx, "credit");
        h.commit(T0 + 10, 3, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
        );
        // The TM still waits; a status query sees Committing.
        assert_eq!(h.global_status(&tx), GlobalStatus::Committing);
        h.tc.branch_result(T0 + 20, tx.id, t1, COMMITTED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
        h.tc.branch_result(T0 + 30, tx.id, t2, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![
                remove_branch(&tx, t2),
                remove_global(&tx),
                commit_reply(3, GlobalStatus::Committed),
            ]
        );
        assert!(h.replay().is_empty());
    }

    #[test]
    fn mixed_commit_runs_tcc_synchronously_then_answers_then_commits_at_asynchronously() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let a1 = h.at(&tx, "orders:1");
        let t1 = h.tcc(&tx, "debit");
        let a2 = h.at(&tx, "orders:2");
        let t2 = h.tcc(&tx, "credit");
        let other = h.begin(T0, 60_000);

        h.commit(T0 + 10, 3, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![update(&tx, GlobalStatus::Committing), h.commit_of(t1)]
        );
        // AT rows are released by the decision, even while TCC branches are still committing.
        assert!(h.lockable(&other.xid, "orders:1,2"));
        assert_eq!(h.tc.stats().locked_rows, 0);

        h.tc.branch_result(T0 + 20, tx.id, t1, COMMITTED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.commit_of(t2)]);
        h.tc.branch_result(T0 + 30, tx.id, t2, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![
                remove_branch(&tx, t2),
                update(&tx, GlobalStatus::AsyncCommitting),
                commit_reply(3, GlobalStatus::Committed),
                h.commit_of(a1),
            ]
        );
        h.tc.branch_result(T0 + 40, tx.id, a1, COMMITTED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, a1), h.commit_of(a2)]);
        h.tc.branch_result(T0 + 50, tx.id, a2, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&tx, a2), remove_global(&tx)]
        );
        h.assert_log_matches_state();
    }
}

mod rollback {
    use super::*;

    #[test]
    fn rollback_visits_branches_newest_first_and_releases_each_branch_s_rows() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let a1 = h.at(&tx, "orders:1");
        let a2 = h.at(&tx, "orders:2");
        let t1 = h.tcc(&tx, "debit");
        let other = h.begin(T0, 60_000);

        h.rollback(4, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![update(&tx, GlobalStatus::Rollbacking), h.rollback_of(t1)]
        );
        assert!(!h.lockable(&other.xid, "orders:1"));
        assert!(!h.lockable(&other.xid, "orders:2"));
        // Repeated end requests see the running rollback and change nothing.
        h.rollback(5, &tx.xid);
        h.commit(T0 + 1, 6, &tx.xid);
        assert_eq!(
            h.effects(),
            vec![
                rollback_reply(5, GlobalStatus::Rollbacking),
                commit_reply(6, GlobalStatus::Rollbacking)
            ]
        );

        h.tc.branch_result(T0 + 10, tx.id, t1, ROLLBACKED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, t1), h.rollback_of(a2)]);
        assert!(!h.lockable(&other.xid, "orders:2"));

        h.tc.branch_result(T0 + 20, tx.id, a2, ROLLBACKED);
        assert_eq!(h.effects(), vec![remove_branch(&tx, a2), h.rollback_of(a1)]);
        // a2's row is free once a2 is undone; a1's row is still protected.
        assert!(h.lockable(&other.xid, "orders:2"));
        assert!(!h.lockable(&other.xid, "orders:1"));
        assert_eq!(h.tc.stats().locked_rows, 1);

        h.tc.branch_result(T0 + 30, tx.id, a1, ROLLBACKED);
        assert_eq!(
            h.effects(),
            vec![
                remove_branch(&tx, a1),
                remove_global(&tx),
                rollback_reply(4, GlobalStatus::Rollbacked),
            ]
        );
        assert!(h.lockable(&other.xid, "orders:1,2"));
        assert_eq!(h.tc.stats().locked_rows, 0);
        assert!(h.replay().get(tx.id).is_none());
    }
}

mod locks {
    use super::*;

    #[test]
    fn conflicting_registration_fails_atomically_and_the_holder_can_re_enter() {
        let mut h = Harness::new();
        let a = h.begin(T0, 60_000);
        let b = h.begin(T0, 60_000);
        h.at(&a, "orders:1,2");
        let log_len = h.log.len();

        assert_eq!(h.try_at(&b, "orders:3,2", ""), Err(Code::LockKeyConflict));
        // Nothing was persisted and row 3 was not kept.
        assert_eq!(h.log.len(), log_len);
        assert!(h.lockable(&a.xid, "orders:3"));
        assert_eq!(h.tc.stats().locked_rows, 2);

        // Re-entrant within the same transaction, even across branches.
        h.at(&a, "orders:2,3");
        assert_eq!(h.tc.stats().locked_rows, 3);

        // Lock query: false for others, true for the owner, always true for non-AT modes.
        assert!(!h.lockable(&b.xid, "orders:1"));
        assert!(!h.lockable(&b.xid, "orders:9,3"));
        assert!(h.lockable(&a.xid, "orders:1,2,3"));
        assert!(h.lockable(&b.xid, "orders:4;order_item:1"));
        assert!(
            !h.lockable("", "orders:1"),
            "a missing xid conflicts with any holder"
        );
        assert!(h.lockable_as(&b.xid, BranchType::Tcc, "orders:1"));
        assert!(h.lockable_as(&b.xid, BranchType::Xa, "orders:1"));

        // The same table and key on another resource is another row.
        h.register(
            &b,
            BranchType::At,
            "jdbc:mysql://10.0.0.4/orders",
            "orders:1",
            "",
        );

        // Non-AT branches never take locks.
        h.register(&b, BranchType::Tcc, DB, "orders:1", "");
        h.register(&b, BranchType::Xa, DB, "orders:1", "");
    }

    #[test]
    fn optimistic_and_pessimistic_registrations_both_see_conflicts() {
        let mut h = Harness::new();
        let a = h.begin(T0, 60_000);
        let b = h.begin(T0, 60_000);
        h.at(&a, "orders:1");
        for data in [
            r#"{"skipCheckLock":true}"#,
            r#"{"skipCheckLock":false}"#,
            "",
        ] {
            assert_eq!(
                h.try_at(&b, "orders:1", data),
                Err(Code::LockKeyConflict),
                "{data}"
            );
        }
        // An optimistic registration of free rows succeeds.
        h.register(
            &b,
            BranchType::At,
            DB,
            "orders:2",
            r#"{"skipCheckLock":true}"#,
        );
    }

    #[test]
    fn the_waiter_succeeds_once_the_holder_ends() {
        let mut h = Harness::new();
        let a = h.begin(T0, 60_000);
        let b = h.begin(T0, 60_000);
        let c = h.begin(T0, 60_000);
        let a1 = h.at(&a, "orders:1");
        let c1 = h.at(&c, "orders:2");
        assert_eq!(h.try_at(&b, "orders:1", ""), Err(Code::LockKeyConflict));
        assert_eq!(h.try_at(&b, "orders:2", ""), Err(Code::LockKeyConflict));

        // Holder a commits: its row is free at once.
        h.commit(T0 + 1, 1, &a.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&a, GlobalStatus::AsyncCommitting),
                commit_reply(1, GlobalStatus::Committed),
                h.commit_of(a1),
            ]
        );
        h.at(&b, "orders:1");

        // Holder c rolls back: the row is free once its branch is undone.
        h.rollback(2, &c.xid);
        assert_eq!(
            h.effects(),
            vec![update(&c, GlobalStatus::Rollbacking), h.rollback_of(c1)]
        );
        h.tc.branch_result(T0 + 3, c.id, c1, ROLLBACKED);
        assert_eq!(
            h.effects(),
            vec![
                remove_branch(&c, c1),
                remove_global(&c),
                rollback_reply(2, GlobalStatus::Rollbacked)
            ]
        );
        h.at(&b, "orders:2");
        assert!(!h.lockable(&a.xid, "orders:1,2"));
    }

    #[test]
    fn user_transactions_fail_fast_on_rows_of_a_rolling_back_holder() {
        let mut h = Harness::new();
        let a = h.begin(T0, 60_000);
        let b = h.begin(T0, 60_000);
        let a1 = h.at(&a, "orders:1");

        // Holder in Begin: an ordinary conflict, the requester may wait.
        assert_eq!(
            h.try_at(&b, "orders:1", USER_TX),
            Err(Code::LockKeyConflict)
        );

        h.rollback(2, &a.xid);
        assert_eq!(
            h.effects(),
            vec![update(&a, GlobalStatus::Rollbacking), h.rollback_of(a1)]
        );
        assert_eq!(
            h.try_at(&b, "orders:1", USER_TX),
            Err(Code::LockKeyConflictFailFast)
        );
        assert_eq!(
            h.try_at(
                &b,
                "orders:1",
                r#"{ "autoCommit" : false, "skipCheckLock" : true }"#
            ),
            Err(Code::LockKeyConflictFailFast)
        );
        // Seata-managed auto-commit (or no flag) waits instead.
        assert_eq!(
            h.try_at(&b, "orders:1", r#"{"autoCommit":true}"#),
            Err(Code::LockKeyConflict)
        );
        assert_eq!(h.try_at(&b, "orders:1", ""), Err(Code::LockKeyConflict));

        // Still rolling back after a retryable failure.
        h.tc.branch_result(T0 + 1, a.id, a1, ROLLBACK_RETRYABLE);
        assert_eq!(
            h.effects(),
            vec![
                update(&a, GlobalStatus::RollbackRetrying),
                rollback_reply(2, GlobalStatus::RollbackRetrying)
            ]
        );
        assert_eq!(
            h.try_at(&b, "orders:1", USER_TX),
            Err(Code::LockKeyConflictFailFast)
        );

        // A holder whose rollback failed for good keeps its rows forever: waiting is pointless.
        h.tc.tick(T0 + 1 + 1_000);
        assert_eq!(h.effects(), vec![h.rollback_of(a1)]);
        h.tc.branch_result(T0 + 1_002, a.id, a1, ROLLBACK_UNRETRYABLE);
        assert_eq!(h.effects(), vec![update(&a, GlobalStatus::RollbackFailed)]);
        assert_eq!(
            h.try_at(&b, "orders:1", USER_TX),
            Err(Code::LockKeyConflictFailFast)
        );
    }

    #[test]
    fn timeout_rollback_also_triggers_fail_fast() {
        let mut h = Harness::new();
        let a = h.begin(T0, 100);
        let b = h.begin(T0, 60_000);
        let a1 = h.at(&a, "orders:1");
        h.tc.tick(T0 + 101);
        assert_eq!(
            h.effects(),
            vec![
                update(&a, GlobalStatus::TimeoutRollbacking),
                h.rollback_of(a1)
            ]
        );
        assert_eq!(
            h.try_at(&b, "orders:1", USER_TX),
            Err(Code::LockKeyConflictFailFast)
        );
    }

    #[test]
    fn application_data_over_the_limit_is_rejected_without_taking_locks() {
        let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
            application_data_limit: Some(10),
            ..config()
        });
        let tx = h.begin(T0, 60_000);
        // Six two-byte characters: 12 UTF-8 bytes, over the limit of 10.
        assert_eq!(
            h.try_at(&tx, "orders:1", "éééééé"),
            Err(Code::FailedToAddBranch)
        );
        assert_eq!(h.tc.stats().locked_rows, 0);
        h.register(&tx, BranchType::At, DB, "orders:1", "ééééé");
        assert_eq!(h.tc.stats().locked_rows, 1);
    }
}

mod timeouts {
    use super::*;

    #[test]
    fn timeout_rolls_back_newest_first_and_ends_timeout_rollbacked() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 1_000);
        let a1 = h.at(&tx, "orders:1");
        let t1 = h.tcc(&tx, "debit");
        let other = h.begin(T0, 60_000);
        assert_eq!(h.tc.next_deadline(), Some(T0 + 1_001));

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
            id: 12_345,
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
            h.branch_report(6, &tx.xid, 1, BranchStatus::PhaseOneDone, String::new());
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
}

mod retries {
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
        assert_eq!(h.tc.next_deadline(), Some(T0 + 1_020));
        h.tc.tick(T0 + 1_019);
        h.assert_quiet();
        h.tc.tick(T0 + 1_020);
        assert_eq!(h.effects(), vec![h.commit_of(t1)]);

        // Second failure (no answer at all): the backoff doubles, nothing new is persisted.
        h.tc.branch_result(T0 + 1_030, tx.id, t1, BranchOutcome::Unreachable);
        h.assert_quiet();
        assert_eq!(h.tc.next_deadline(), Some(T0 + 3_030));
        h.tc.tick(T0 + 3_029);
        h.assert_quiet();
        h.tc.tick(T0 + 3_030);
        assert_eq!(h.effects(), vec![h.commit_of(t1)]);

        // Third failure: 4000 ms capped at 3000 ms, and it stays capped.
        h.tc.branch_result(T0 + 3_040, tx.id, t1, COMMIT_RETRYABLE);
        h.assert_quiet();
        assert_eq!(h.tc.next_deadline(), Some(T0 + 6_040));
        h.tc.tick(T0 + 6_040);
        assert_eq!(h.effects(), vec![h.commit_of(t1)]);
        h.tc.branch_result(T0 + 6_050, tx.id, t1, BranchOutcome::Unreachable);
        assert_eq!(h.tc.next_deadline(), Some(T0 + 9_050));
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
            max_commit_retry_timeout_ms: 5_000,
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
            max_commit_retry_timeout_ms: 5_000,
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
            max_rollback_retry_timeout_ms: 5_000,
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
            max_rollback_retry_timeout_ms: 5_000,
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
}

mod failures {
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
}

mod branch_reports {
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
            424_242,
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
}

mod stale_answers {
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
        h.tc.branch_result(T0 + 2, 99, t1, COMMITTED);
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
}

mod recovery {
    use super::*;

    #[test]
    fn recovered_sessions_keep_their_locks_and_resume_phase_two() {
        let mut h = Harness::new();
        // Begin, with a lock.
        let open = h.begin(T0, 30_000);
        let o1 = h.at(&open, "orders:1");
        // Rollback interrupted after the newest branch was undone.
        let rolling = h.begin(T0, 60_000);
        let r1 = h.at(&rolling, "orders:2");
        let r2 = h.at(&rolling, "orders:3");
        h.rollback(1, &rolling.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&rolling, GlobalStatus::Rollbacking),
                h.rollback_of(r2)
            ]
        );
        h.tc.branch_result(T0 + 1, rolling.id, r2, ROLLBACKED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&rolling, r2), h.rollback_of(r1)]
        );
        // Commit waiting for a retry.
        let retrying = h.begin(T0, 60_000);
        let c1 = h.tcc(&retrying, "debit");
        h.commit(T0 + 2, 2, &retrying.xid);
        h.effects();
        h.tc.branch_result(T0 + 3, retrying.id, c1, COMMIT_RETRYABLE);
        assert_eq!(
            h.effects(),
            vec![
                update(&retrying, GlobalStatus::CommitRetrying),
                commit_reply(2, GlobalStatus::CommitRetrying)
            ]
        );
        // Synchronous commit interrupted.
        let committing = h.begin(T0, 60_000);
        let s1 = h.at(&committing, "orders:7");
        let s2 = h.tcc(&committing, "credit");
        h.commit(T0 + 4, 3, &committing.xid);
        assert_eq!(
            h.effects(),
            vec![
                update(&committing, GlobalStatus::Committing),
                h.commit_of(s2)
            ]
        );
        // Asynchronous commit interrupted.
        let asyncing = h.begin(T0, 60_000);
        let d1 = h.at(&asyncing, "orders:4");
        h.commit(T0 + 5, 4, &asyncing.xid);
        h.effects();
        // Finished before the crash.
        let done = h.begin(T0, 60_000);
        let e1 = h.at(&done, "orders:5");
        h.commit(T0 + 6, 5, &done.xid);
        h.effects();
        h.tc.branch_result(T0 + 7, done.id, e1, COMMITTED);
        h.effects();
        // Rollback failed for good.
        let failed = h.begin(T0, 60_000);
        let f1 = h.at(&failed, "orders:6");
        h.rollback(6, &failed.xid);
        h.effects();
        h.tc.branch_result(T0 + 8, failed.id, f1, ROLLBACK_UNRETRYABLE);
        h.effects();
        let before = table_of(&h.tc.snapshot_records());
        assert_eq!(h.replay(), before);

        // Crash; restart from the store.
        h.recover(T0 + 100);
        h.assert_quiet();
        assert_eq!(table_of(&h.tc.snapshot_records()), before);
        assert_eq!(h.tc.stats().sessions, 6);
        for (tx, expected) in [
            (&open, GlobalStatus::Begin),
            (&rolling, GlobalStatus::Rollbacking),
            (&retrying, GlobalStatus::CommitRetrying),
            (&committing, GlobalStatus::Committing),
            (&asyncing, GlobalStatus::AsyncCommitting),
            (&failed, GlobalStatus::RollbackFailed),
        ] {
            assert_eq!(h.tc.status_of(tx.id), Some(expected));
        }
        assert_eq!(h.tc.status_of(done.id), None);
        // Begin and rollback-family sessions hold their rows again; committed ones do not.
        let newcomer = h.begin(T0 + 100, 60_000);
        for key in ["orders:1", "orders:2", "orders:6"] {
            assert_eq!(
                h.try_at(&newcomer, key, ""),
                Err(Code::LockKeyConflict),
                "{key}"
            );
        }
        assert!(h.lockable(&open.xid, "orders:1"));
        assert!(h.lockable(&rolling.xid, "orders:2"));
        assert!(
            h.lockable(&newcomer.xid, "orders:3"),
            "undone before the crash"
        );
        h.at(&newcomer, "orders:3,4,5,7");
        assert_eq!(
            h.try_at(&newcomer, "orders:2", USER_TX),
            Err(Code::LockKeyConflictFailFast),
            "recovered rollbacks still fail fast"
        );

        // The next tick resumes every unfinished phase 2, in transaction order.
        assert_eq!(h.tc.next_deadline(), Some(T0 + 100));
        h.tc.tick(T0 + 100);
        assert_eq!(
            h.effects(),
            vec![
                h.rollback_of(r1),
                h.commit_of(c1),
                h.commit_of(s1),
                h.commit_of(d1),
            ]
        );
        h.tc.branch_result(T0 + 110, rolling.id, r1, ROLLBACKED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&rolling, r1), remove_global(&rolling)]
        );
        h.tc.branch_result(T0 + 111, retrying.id, c1, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&retrying, c1), remove_global(&retrying)]
        );
        h.tc.branch_result(T0 + 112, committing.id, s1, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&committing, s1), h.commit_of(s2)]
        );
        h.tc.branch_result(T0 + 113, committing.id, s2, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&committing, s2), remove_global(&committing)]
        );
        h.tc.branch_result(T0 + 114, asyncing.id, d1, COMMITTED);
        assert_eq!(
            h.effects(),
            vec![remove_branch(&asyncing, d1), remove_global(&asyncing)]
        );
        assert!(h.lockable(&newcomer.xid, "orders:2"));

        // The recovered Begin session still times out at its original deadline.
        h.tc.tick(T0 + 30_000);
        h.assert_quiet();
        h.tc.tick(T0 + 30_001);
        assert_eq!(
            h.effects(),
            vec![
                update(&open, GlobalStatus::TimeoutRollbacking),
                h.rollback_of(o1)
            ]
        );
        assert_eq!(
            h.tc.status_of(failed.id),
            Some(GlobalStatus::RollbackFailed)
        );
        h.assert_log_matches_state();
    }

    #[test]
    fn ids_issued_after_recovery_never_repeat_recovered_ids() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        let b1 = h.at(&tx, "orders:1");
        let b2 = h.tcc(&tx, "debit");
        let highest = b2.max(b1).max(tx.id);
        // Restart with the same clock reading as the first start: the counter would be seeded
        // with exactly the same value.
        assert_eq!(Coordinator::new(config(), T0).take_effects(), vec![]);
        h.recover(T0);
        let next = h.begin(T0, 60_000);
        assert!(next.id > highest, "{} must be above {highest}", next.id);
        let branch = h.tcc(&next, "credit");
        assert!(branch > next.id);
        // A fresh coordinator without recovery would have reused the first id.
        let mut fresh = Harness::new();
        assert_eq!(fresh.begin(T0, 60_000).id, tx.id);
    }

    #[test]
    fn ended_sessions_found_in_the_store_are_removed_at_recovery() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 60_000);
        h.tcc(&tx, "debit");
        let kept = h.begin(T0, 60_000);
        // A store written by another implementation that records the final status.
        h.log.push(Record::GlobalUpdate {
            transaction_id: tx.id,
            status: GlobalStatus::Committed,
        });
        h.recover(T0 + 10);
        assert_eq!(h.effects(), vec![remove_global(&tx)]);
        assert_eq!(h.tc.status_of(tx.id), None);
        assert_eq!(h.tc.status_of(kept.id), Some(GlobalStatus::Begin));
        h.assert_log_matches_state();
    }

    #[test]
    fn recovered_timed_out_sessions_roll_back_on_the_first_tick() {
        let mut h = Harness::new();
        let tx = h.begin(T0, 1_000);
        let a1 = h.at(&tx, "orders:1");
        h.recover(T0 + 5_000);
        h.assert_quiet();
        assert_eq!(h.tc.next_deadline(), Some(T0 + 1_001));
        h.tc.tick(T0 + 5_000);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::TimeoutRollbacking),
                h.rollback_of(a1)
            ]
        );
    }
}

mod undo_log {
    use super::*;

    #[test]
    fn undo_log_cleanup_runs_after_the_initial_delay_then_every_period() {
        let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
            undo_log_delete_initial_delay_ms: 180_000,
            undo_log_delete_period_ms: 86_400_000,
            undo_log_save_days: 3,
            ..config()
        });
        assert_eq!(h.tc.next_deadline(), Some(T0 + 180_000));
        h.tc.tick(T0 + 179_999);
        h.assert_quiet();
        h.tc.tick(T0 + 180_000);
        assert_eq!(h.effects(), vec![Effect::UndoLogDelete { save_days: 3 }]);
        h.tc.tick(T0 + 180_001);
        h.assert_quiet();
        let next = T0 + 180_000 + 86_400_000;
        assert_eq!(h.tc.next_deadline(), Some(next));
        h.tc.tick(next - 1);
        h.assert_quiet();
        h.tc.tick(next);
        assert_eq!(h.effects(), vec![Effect::UndoLogDelete { save_days: 3 }]);
    }

    #[test]
    fn undo_log_cleanup_comes_after_due_transaction_work_in_a_tick() {
        let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
            undo_log_delete_initial_delay_ms: 1_000,
            undo_log_delete_period_ms: 1_000,
            ..config()
        });
        let tx = h.begin(T0, 500);
        h.tc.tick(T0 + 1_000);
        assert_eq!(
            h.effects(),
            vec![
                update(&tx, GlobalStatus::TimeoutRollbacking),
                remove_global(&tx),
                Effect::UndoLogDelete { save_days: 7 },
            ]
        );
    }

    #[test]
    fn a_negative_period_disables_undo_log_cleanup() {
        let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
            undo_log_delete_initial_delay_ms: 0,
            undo_log_delete_period_ms: -1,
            ..config()
        });
        for now in [T0, T0 + 180_000, T0 + 86_400_000 * 30] {
            h.tc.tick(now);
            h.assert_quiet();
        }
    }
}

mod saga_reports {
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
}

mod invariants {
    //! Random operation sequences over a few transactions and rows; after every step the
    //! coordinator must agree with its own persisted records and with the lock rules.

    use std::collections::{BTreeMap, HashSet};

    use ferrata_core::CoordinatorConfig;
    use proptest::prelude::*;

    use super::*;

    const ROWS: u8 = 6;

    #[derive(Debug, Clone)]
    enum Op {
        Begin {
            timeout_ms: i32,
        },
        RegisterAt {
            tx: usize,
            rows: Vec<u8>,
            optimistic: bool,
            user: bool,
        },
        RegisterTcc {
            tx: usize,
        },
        Report {
            branch: usize,
            failed: bool,
        },
        Commit {
            tx: usize,
        },
        Rollback {
            tx: usize,
        },
        Answer {
            request: usize,
            outcome: u8,
        },
        StaleAnswer {
            tx: usize,
            branch: usize,
        },
        Tick {
            advance_ms: u16,
        },
        /// Crash and recover from the persisted records. A restart takes time, and ids are
        /// seeded from the clock: ids of sessions removed before the crash are only protected
        /// by that (recovered ids are observed explicitly).
        Restart {
            downtime_ms: u16,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (200..3_000i32).prop_map(|timeout_ms| Op::Begin { timeout_ms }),
            4 => (any::<usize>(), prop::collection::vec(0..ROWS, 1..4), any::<bool>(), any::<bool>())
                .prop_map(|(tx, rows, optimistic, user)| Op::RegisterAt { tx, rows, optimistic, user }),
            2 => any::<usize>().prop_map(|tx| Op::RegisterTcc { tx }),
            1 => (any::<usize>(), any::<bool>()).prop_map(|(branch, failed)| Op::Report { branch, failed }),
            2 => any::<usize>().prop_map(|tx| Op::Commit { tx }),
            2 => any::<usize>().prop_map(|tx| Op::Rollback { tx }),
            6 => (any::<usize>(), 0..8u8).prop_map(|(request, outcome)| Op::Answer { request, outcome }),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(tx, branch)| Op::StaleAnswer { tx, branch }),
            3 => (0..2_000u16).prop_map(|advance_ms| Op::Tick { advance_ms }),
            1 => (1..1_000u16).prop_map(|downtime_ms| Op::Restart { downtime_ms }),
        ]
    }

    fn rows_of(lock_key: &str) -> Vec<String> {
        lock_key
            .split_once(':')
            .map(|(table, pks)| {
                pks.split(',')
                    .filter(|pk| !pk.is_empty())
                    .map(|pk| format!("{table}:{pk}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn holds_locks(status: GlobalStatus, unlock: bool) -> bool {
        match status {
            GlobalStatus::Begin
            | GlobalStatus::Rollbacking
            | GlobalStatus::RollbackRetrying
            | GlobalStatus::TimeoutRollbacking
            | GlobalStatus::TimeoutRollbackRetrying
            | GlobalStatus::RollbackFailed
            | GlobalStatus::TimeoutRollbackFailed => true,
            GlobalStatus::RollbackRetryTimeout => !unlock,
            _ => false,
        }
    }

    #[derive(Debug, Default)]
    struct Model {
        now: i64,
        txs: Vec<Tx>,
        branches: Vec<(usize, i64)>,
        /// Phase-2 requests sent and not answered yet: (transaction, branch, is_commit).
        outstanding: Vec<(i64, i64, bool)>,
        answered_tokens: HashSet<u64>,
    }

    impl Model {
        /// Drains effects and checks each one against the state right after the call.
        fn observe(&mut self, h: &mut Harness) -> Result<(), TestCaseError> {
            let effects = h.effects();
            let mut requests_per_tx: BTreeMap<i64, usize> = BTreeMap::new();
            for effect in effects {
                match effect {
                    Effect::Reply { token, reply } => {
                        prop_assert!(
                            self.answered_tokens.insert(token),
                            "token {token} answered twice"
                        );
                        prop_assert!(
                            matches!(
                                reply,
                                Reply::GlobalCommit { .. }
                                    | Reply::GlobalRollback { .. }
                                    | Reply::GlobalStatus { .. }
                                    | Reply::GlobalReport { .. }
                            ),
                            "unexpected reply {reply:?}"
                        );
                    }
                    Effect::BranchCommit(request) => {
                        let status = h.tc.status_of(request.transaction_id);
                        prop_assert!(
                            status.is_some_and(GlobalStatus::is_committing),
                            "commit sent in {status:?}"
                        );
                        *requests_per_tx.entry(request.transaction_id).or_default() += 1;
                        self.outstanding
                            .push((request.transaction_id, request.branch_id, true));
                    }
                    Effect::BranchRollback(request) => {
                        let status = h.tc.status_of(request.transaction_id);
                        prop_assert!(
                            status.is_some_and(GlobalStatus::is_rollbacking),
                            "rollback sent in {status:?}"
                        );
                        *requests_per_tx.entry(request.transaction_id).or_default() += 1;
                        self.outstanding
                            .push((request.transaction_id, request.branch_id, false));
                    }
                    Effect::Persist(_) => {}
                    Effect::UndoLogDelete { .. } => prop_assert!(false, "undo-log cleanup is off"),
                }
            }
            prop_assert!(
                requests_per_tx.values().all(|&n| n == 1),
                "one branch at a time per transaction: {requests_per_tx:?}"
            );
            Ok(())
        }

        fn tx(&self, pick: usize) -> Option<Tx> {
            (!self.txs.is_empty()).then(|| self.txs[pick % self.txs.len()].clone())
        }
    }

    fn check(
        h: &mut Harness,
        model: &Model,
        unlock: bool,
        after_tick: bool,
    ) -> Result<(), TestCaseError> {
        // Replaying the persisted records gives exactly the coordinator's state.
        let stored = h.replay();
        let live = table_of(&h.tc.snapshot_records());
        prop_assert_eq!(&stored, &live);
        let stats = h.tc.stats();
        prop_assert_eq!(stats.sessions, stored.len());
        prop_assert_eq!(
            stats.branches,
            stored
                .transactions()
                .map(|t| t.branches.len())
                .sum::<usize>()
        );

        let mut expected_owner: BTreeMap<String, i64> = BTreeMap::new();
        for tx in stored.transactions() {
            let status = tx.global.status;
            prop_assert_eq!(h.tc.status_of(tx.global.transaction_id), Some(status));
            prop_assert!(
                !matches!(
                    status,
                    GlobalStatus::Committed
                        | GlobalStatus::Rollbacked
                        | GlobalStatus::TimeoutRollbacked
                        | GlobalStatus::Finished
                        | GlobalStatus::UnKnown
                ),
                "ended session kept in {:?}",
                status
            );
            if after_tick && status == GlobalStatus::Begin {
                prop_assert!(
                    model.now <= tx.global.begin_time_ms + i64::from(tx.global.timeout_ms),
                    "timed-out session still in Begin after a tick"
                );
            }
            if !holds_locks(status, unlock) {
                continue;
            }
            for branch in tx
                .branches
                .iter()
                .filter(|b| b.branch_type == BranchType::At)
            {
                for row in rows_of(&branch.lock_key) {
                    let owner = *expected_owner
                        .entry(row.clone())
                        .or_insert(tx.global.transaction_id);
                    prop_assert_eq!(
                        owner,
                        tx.global.transaction_id,
                        "row {} wanted by two transactions",
                        row
                    );
                }
            }
        }
        prop_assert_eq!(stats.locked_rows, expected_owner.len());

        for row in 0..ROWS {
            let key = format!("orders:{row}");
            let free = h.lockable("", &key);
            let holders: Vec<i64> = model
                .txs
                .iter()
                .filter(|tx| h.lockable(&tx.xid, &key))
                .map(|tx| tx.id)
                .collect();
            match expected_owner.get(&key) {
                None => {
                    prop_assert!(free, "{} is locked by nobody live", key);
                    prop_assert_eq!(holders.len(), model.txs.len());
                }
                Some(owner) => {
                    prop_assert!(!free, "{} must be locked by {}", key, owner);
                    prop_assert_eq!(holders, vec![*owner], "{} held by exactly its owner", key);
                }
            }
        }
        Ok(())
    }

    fn run(ops: Vec<Op>, unlock: bool) -> Result<(), TestCaseError> {
        let config = CoordinatorConfig {
            retry_backoff_initial_ms: 200,
            retry_backoff_max_ms: 800,
            max_commit_retry_timeout_ms: 6_000,
            max_rollback_retry_timeout_ms: 6_000,
            rollback_retry_timeout_unlock: unlock,
            ..config()
        };
        let mut h = Harness::with_config(config);
        let mut model = Model {
            now: T0,
            ..Model::default()
        };
        let mut next_token = 1u64;
        for op in ops {
            let mut after_tick = false;
            match op {
                Op::Begin { timeout_ms } => {
                    let tx = h.begin(model.now, timeout_ms);
                    model.txs.push(tx);
                }
                Op::RegisterAt {
                    tx,
                    rows,
                    optimistic,
                    user,
                } => {
                    let Some(tx) = model.tx(tx) else { continue };
                    let pks: Vec<String> = rows.iter().map(u8::to_string).collect();
                    let lock_key = format!("orders:{}", pks.join(","));
                    let data = match (optimistic, user) {
                        (false, false) => String::new(),
                        (optimistic, user) => {
                            format!(r#"{{"skipCheckLock":{optimistic},"autoCommit":{}}}"#, !user)
                        }
                    };
                    let status = h.tc.status_of(tx.id);
                    let blocked = !h.lockable(&tx.xid, &lock_key);
                    let result = h.try_at(&tx, &lock_key, &data);
                    match (status, result) {
                        (None, Err(code)) => prop_assert_eq!(code, Code::GlobalTransactionNotExist),
                        (Some(GlobalStatus::Begin), Ok(branch)) if !blocked => {
                            let index = model.txs.iter().position(|t| t.id == tx.id).unwrap_or(0);
                            model.branches.push((index, branch));
                        }
                        (Some(GlobalStatus::Begin), Err(Code::LockKeyConflict)) if blocked => {}
                        (Some(GlobalStatus::Begin), Err(Code::LockKeyConflictFailFast))
                            if blocked && user => {}
                        (Some(other), Err(Code::GlobalTransactionNotActive))
                            if other != GlobalStatus::Begin => {}
                        (status, result) => {
                            prop_assert!(
                                false,
                                "register in {:?} (blocked {}) gave {:?}",
                                status,
                                blocked,
                                result
                            )
                        }
                    }
                }
                Op::RegisterTcc { tx } => {
                    let Some(tx) = model.tx(tx) else { continue };
                    let status = h.tc.status_of(tx.id);
                    let result = h.try_register(&tx, BranchType::Tcc, "debit", "", "");
                    match (status, result) {
                        (Some(GlobalStatus::Begin), Ok(branch)) => {
                            let index = model.txs.iter().position(|t| t.id == tx.id).unwrap_or(0);
                            model.branches.push((index, branch));
                        }
                        (None, Err(Code::GlobalTransactionNotExist)) => {}
                        (Some(other), Err(Code::GlobalTransactionNotActive))
                            if other != GlobalStatus::Begin => {}
                        (status, result) => {
                            prop_assert!(false, "TCC register in {:?} gave {:?}", status, result)
                        }
                    }
                }
                Op::Report { branch, failed } => {
                    if model.branches.is_empty() {
                        continue;
                    }
                    let (index, branch_id) = model.branches[branch % model.branches.len()];
                    let tx = model.txs[index].clone();
                    let exists = h
                        .replay()
                        .get(tx.id)
                        .is_some_and(|t| t.branches.iter().any(|b| b.branch_id == branch_id));
                    let status = if failed {
                        BranchStatus::PhaseOneFailed
                    } else {
                        BranchStatus::PhaseOneDone
                    };
                    let token = next_token;
                    next_token += 1;
                    h.branch_report(
                        token,
                        &tx.xid,
                        branch_id,
                        status,
                        format!("{{\"n\":{token}}}"),
                    );
                    let effects = h.effects();
                    if exists {
                        prop_assert_eq!(effects.len(), 2);
                        prop_assert_eq!(&effects[1], &reply(token, Reply::BranchReported));
                    } else {
                        prop_assert!(
                            matches!(
                                effects.as_slice(),
                                [Effect::Reply {
                                    reply: Reply::Failed { .. },
                                    ..
                                }]
                            ),
                            "report of a missing branch: {:?}",
                            effects
                        );
                    }
                }
                Op::Commit { tx } => {
                    let Some(tx) = model.tx(tx) else { continue };
                    h.commit(model.now, 1_000_000 + next_token, &tx.xid);
                    next_token += 1;
                    model.observe(&mut h)?;
                }
                Op::Rollback { tx } => {
                    let Some(tx) = model.tx(tx) else { continue };
                    h.rollback(1_000_000 + next_token, &tx.xid);
                    next_token += 1;
                    model.observe(&mut h)?;
                }
                Op::Answer { request, outcome } => {
                    if model.outstanding.is_empty() {
                        continue;
                    }
                    let (transaction_id, branch_id, commit) =
                        model.outstanding.remove(request % model.outstanding.len());
                    let outcome = match (outcome, commit) {
                        (0..=3, true) => COMMITTED,
                        (0..=3, false) => ROLLBACKED,
                        (4, true) => COMMIT_RETRYABLE,
                        (4, false) => ROLLBACK_RETRYABLE,
                        (5 | 6, _) => BranchOutcome::Unreachable,
                        (_, true) => COMMIT_UNRETRYABLE,
                        (_, false) => ROLLBACK_UNRETRYABLE,
                    };
                    h.tc.branch_result(model.now, transaction_id, branch_id, outcome);
                    model.observe(&mut h)?;
                }
                Op::StaleAnswer { tx, branch } => {
                    let Some(tx) = model.tx(tx) else { continue };
                    if model.branches.is_empty() {
                        continue;
                    }
                    let (_, branch_id) = model.branches[branch % model.branches.len()];
                    let in_flight = model
                        .outstanding
                        .iter()
                        .any(|&(t, b, _)| t == tx.id && b == branch_id);
                    if in_flight {
                        continue;
                    }
                    h.tc.branch_result(model.now, tx.id, branch_id, COMMITTED);
                    let effects = h.effects();
                    prop_assert!(
                        effects.is_empty(),
                        "stale answer had effects: {:?}",
                        effects
                    );
                }
                Op::Tick { advance_ms } => {
                    model.now += i64::from(advance_ms);
                    h.tc.tick(model.now);
                    model.observe(&mut h)?;
                    after_tick = true;
                }
                Op::Restart { downtime_ms } => {
                    model.now += i64::from(downtime_ms);
                    h.recover(model.now);
                    model.observe(&mut h)?;
                }
            }
            check(&mut h, &model, unlock, after_tick)?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_operation_sequences_keep_the_invariants(
            ops in prop::collection::vec(op(), 1..80),
            unlock in any::<bool>(),
        ) {
            run(ops, unlock)?;
        }
    }
}
