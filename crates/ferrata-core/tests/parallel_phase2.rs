//! Parallel phase 2 (Seata's `server.enableParallelHandleBranch`, semantics §1.6): branches of
//! different resources are committed or rolled back concurrently, branches of one resource stay
//! in order, a failure lets the requests already in flight come back before the pass ends, and
//! no branch ever has two requests in flight. Off by default, as in Seata.

mod support;

use ferrata_core::{BranchId, CoordinatorConfig};
use ferrata_proto::{BranchType, GlobalStatus};
use support::*;

fn parallel() -> Harness {
    Harness::with_config(CoordinatorConfig {
        parallel_phase2: true,
        retry_backoff_initial_ms: 1_000,
        ..config()
    })
}

fn tcc_on(h: &mut Harness, tx: &Tx, resource: &str) -> BranchId {
    h.register(tx, BranchType::Tcc, resource, "", "")
}

#[test]
fn branches_of_different_resources_commit_concurrently_and_each_resource_in_order() {
    let mut h = parallel();
    let tx = h.begin(T0, 60_000);
    let a = tcc_on(&mut h, &tx, "stock");
    let b = tcc_on(&mut h, &tx, "account");
    let c = tcc_on(&mut h, &tx, "stock");
    h.commit(T0 + 1, 5, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Committing),
            h.commit_of(a),
            h.commit_of(b)
        ]
    );
    h.tc.branch_result(T0 + 2, tx.id, b, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, b)]);
    h.tc.branch_result(T0 + 3, tx.id, a, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a), h.commit_of(c)]);
    h.tc.branch_result(T0 + 4, tx.id, c, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, c),
            remove_global(&tx),
            commit_reply(5, GlobalStatus::Committed)
        ]
    );
    h.assert_log_matches_state();
}

#[test]
fn rollback_runs_each_resource_newest_first() {
    let mut h = parallel();
    let tx = h.begin(T0, 60_000);
    let a = tcc_on(&mut h, &tx, "stock");
    let b = tcc_on(&mut h, &tx, "account");
    let c = tcc_on(&mut h, &tx, "stock");
    h.rollback(6, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Rollbacking),
            h.rollback_of(c),
            h.rollback_of(b)
        ]
    );
    h.tc.branch_result(T0 + 1, tx.id, c, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, c), h.rollback_of(a)]);
    h.tc.branch_result(T0 + 2, tx.id, a, ROLLBACKED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a)]);
    h.tc.branch_result(T0 + 3, tx.id, b, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, b),
            remove_global(&tx),
            rollback_reply(6, GlobalStatus::Rollbacked)
        ]
    );
}

#[test]
fn a_failure_waits_for_the_requests_in_flight_then_retries_only_what_is_left() {
    let mut h = parallel();
    let tx = h.begin(T0, 60_000);
    let a = tcc_on(&mut h, &tx, "stock");
    let b = tcc_on(&mut h, &tx, "account");
    let c = tcc_on(&mut h, &tx, "stock");
    h.commit(T0 + 1, 5, &tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 2, tx.id, b, COMMIT_RETRYABLE);
    // `a` is still in flight: nothing new is sent and the TM keeps waiting.
    h.assert_quiet();
    h.tc.branch_result(T0 + 3, tx.id, a, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, a),
            update(&tx, GlobalStatus::CommitRetrying),
            commit_reply(5, GlobalStatus::CommitRetrying)
        ]
    );
    // A repeated answer for a branch with no request in flight changes nothing.
    h.tc.branch_result(T0 + 4, tx.id, a, COMMITTED);
    h.tc.branch_result(T0 + 4, tx.id, b, COMMITTED);
    h.assert_quiet();
    h.tc.tick(T0 + 3 + 1_000);
    // Lanes follow the order in which resources first appear among the remaining branches.
    assert_eq!(h.effects(), vec![h.commit_of(b), h.commit_of(c)]);
}

#[test]
fn a_final_failure_outranks_a_retry_in_the_same_pass() {
    let mut h = parallel();
    let tx = h.begin(T0, 60_000);
    let a = tcc_on(&mut h, &tx, "stock");
    let b = tcc_on(&mut h, &tx, "account");
    h.commit(T0 + 1, 5, &tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 2, tx.id, a, COMMIT_RETRYABLE);
    h.assert_quiet();
    h.tc.branch_result(T0 + 3, tx.id, b, COMMIT_UNRETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::CommitFailed),
            commit_reply(5, GlobalStatus::CommitFailed)
        ]
    );
}

#[test]
fn without_the_option_branches_are_visited_one_at_a_time() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a = tcc_on(&mut h, &tx, "stock");
    let b = tcc_on(&mut h, &tx, "account");
    h.commit(T0 + 1, 5, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&tx, GlobalStatus::Committing), h.commit_of(a)]
    );
    h.tc.branch_result(T0 + 2, tx.id, a, COMMITTED);
    assert_eq!(h.effects(), vec![remove_branch(&tx, a), h.commit_of(b)]);
}
