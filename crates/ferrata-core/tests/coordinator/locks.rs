//! AT row locks: conflicts, re-entry, fail-fast, limits (§2.2, §2.3).

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
