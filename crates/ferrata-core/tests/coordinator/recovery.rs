//! Recovery from stored records: locks retaken, phase 2 resumed, ended sessions removed (§3.2).

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
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 100));
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
    let highest = b2.0.max(b1.0).max(tx.id.0);
    // Restart with the same clock reading as the first start: the counter would be seeded
    // with exactly the same value.
    assert_eq!(Coordinator::new(config(), T0).take_effects(), vec![]);
    h.recover(T0);
    let next = h.begin(T0, 60_000);
    assert!(next.id.0 > highest, "{} must be above {highest}", next.id);
    let branch = h.tcc(&next, "credit");
    assert!(branch.0 > next.id.0);
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
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 1_001));
    h.tc.tick(T0 + 5_000);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(a1)
        ]
    );
}
