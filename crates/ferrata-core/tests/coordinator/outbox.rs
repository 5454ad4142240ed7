//! Two-phase messages (transactional outbox, a Ferrata extension): a transaction named
//! `$Outbox_…` whose first branch is the producer's check and whose other branches are
//! deliveries to consumers. Commit delivers without asking the check; rollback asks the check
//! alone first, and its answer decides between dropping the message and delivering it.

use ferrata_core::{BranchRequest, CoordinatorConfig};

use super::*;

const CHECK: &str = "order-service-outbox";

/// A message with its check branch and two deliveries, in registration order.
struct Message {
    tx: Tx,
    check: BranchId,
    mail: BranchId,
    stock: BranchId,
}

fn message(h: &mut Harness, timeout_ms: i32) -> Message {
    let tx = h.begin_named(T0, timeout_ms, "$Outbox_order-created");
    let check = h.register(&tx, BranchType::Tcc, CHECK, "", "");
    let mail = h.register(&tx, BranchType::Tcc, "mail", "", r#"{"order":7}"#);
    let stock = h.register(&tx, BranchType::Tcc, "stock", "", r#"{"sku":"a","n":2}"#);
    Message {
        tx,
        check,
        mail,
        stock,
    }
}

/// A delivery request: any RM of the consumer's resource may answer it, so it names no client.
fn delivery(h: &Harness, branch_id: BranchId) -> BranchRequest {
    BranchRequest {
        client_id: String::new(),
        ..h.request(branch_id)
    }
}

fn deliver(h: &Harness, branch_id: BranchId) -> Effect {
    Effect::BranchCommit(delivery(h, branch_id))
}

fn release(h: &Harness, branch_id: BranchId) -> Effect {
    Effect::BranchRollback(delivery(h, branch_id))
}

fn check_resolved_rolled_back(m: &Message) -> Effect {
    Effect::Persist(Record::BranchUpdate {
        transaction_id: m.tx.id,
        branch_id: m.check,
        status: BranchStatus::PhaseTwoRollbacked,
        application_data: None,
    })
}

/// Whether any phase-2 request so far went to one of the message's consumers.
fn consumers_heard(h: &Harness, m: &Message) -> bool {
    h.trace.iter().any(|effect| match effect {
        Effect::BranchCommit(r) | Effect::BranchRollback(r) => r.branch_id != m.check,
        _ => false,
    })
}

/// Drives a delivery pass that has just sent the first delivery to its end.
fn finish_delivery(h: &mut Harness, m: &Message, now: i64) -> Vec<Effect> {
    h.tc.branch_result(now, m.tx.id, m.mail, COMMITTED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&m.tx, m.mail), deliver(h, m.stock)]
    );
    h.tc.branch_result(now, m.tx.id, m.stock, COMMITTED);
    h.effects()
}

#[test]
fn commit_delivers_to_each_consumer_and_never_asks_the_check() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.commit(T0 + 1, 1, &m.tx.xid);
    assert_eq!(
        h.effects(),
        vec![update(&m.tx, GlobalStatus::Committing), deliver(&h, m.mail)]
    );
    assert_eq!(
        finish_delivery(&mut h, &m, T0 + 2),
        vec![
            remove_branch(&m.tx, m.stock),
            remove_global(&m.tx),
            commit_reply(1, GlobalStatus::Committed)
        ]
    );
    assert_eq!(h.tc.status_of(m.tx.id), None);
    assert!(
        !h.trace
            .iter()
            .any(|e| matches!(e, Effect::BranchCommit(r) | Effect::BranchRollback(r) if r.branch_id == m.check)),
        "the check is never called on commit"
    );
}

#[test]
fn a_failing_consumer_is_retried_without_asking_the_check() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.commit(T0 + 1, 1, &m.tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 2, m.tx.id, m.mail, COMMIT_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::CommitRetrying),
            commit_reply(1, GlobalStatus::CommitRetrying)
        ]
    );
    h.tc.tick(T0 + 2 + 1_000);
    assert_eq!(h.effects(), vec![deliver(&h, m.mail)]);
    assert_eq!(
        finish_delivery(&mut h, &m, T0 + 1_003),
        vec![remove_branch(&m.tx, m.stock), remove_global(&m.tx)]
    );
}

#[test]
fn rollback_asks_the_check_alone_first_then_releases_the_consumers() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::Rollbacking),
            h.rollback_of(m.check)
        ]
    );
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![check_resolved_rolled_back(&m), release(&h, m.stock)]
    );
    h.tc.branch_result(T0 + 2, m.tx.id, m.stock, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&m.tx, m.stock), release(&h, m.mail)]
    );
    h.tc.branch_result(T0 + 3, m.tx.id, m.mail, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&m.tx, m.mail),
            remove_global(&m.tx),
            rollback_reply(2, GlobalStatus::Rollbacked)
        ]
    );
    h.assert_log_matches_state();
}

#[test]
fn a_check_that_says_committed_switches_the_message_to_delivery() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, COMMIT_RETRYABLE);
    // The switch is logged before the first delivery leaves.
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::CommitRetrying),
            rollback_reply(2, GlobalStatus::CommitRetrying),
            deliver(&h, m.mail)
        ]
    );
    assert_eq!(
        finish_delivery(&mut h, &m, T0 + 2),
        vec![remove_branch(&m.tx, m.stock), remove_global(&m.tx)]
    );
    assert_eq!(h.tc.status_of(m.tx.id), None);
}

#[test]
fn an_unanswered_check_is_asked_again_and_consumers_hear_nothing_meanwhile() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::RollbackRetrying),
            rollback_reply(2, GlobalStatus::RollbackRetrying)
        ]
    );
    h.tc.tick(T0 + 1 + 1_000);
    assert_eq!(h.effects(), vec![h.rollback_of(m.check)]);
    // The producer's database failed: still unknown, asked again after a longer backoff.
    h.tc.branch_result(T0 + 1_001, m.tx.id, m.check, ROLLBACK_RETRYABLE);
    h.assert_quiet();
    h.tc.tick(T0 + 1_001 + 1_999);
    h.assert_quiet();
    assert!(!consumers_heard(&h, &m));
    h.tc.tick(T0 + 1_001 + 2_000);
    assert_eq!(h.effects(), vec![h.rollback_of(m.check)]);
    h.tc.branch_result(T0 + 3_002, m.tx.id, m.check, COMMIT_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::CommitRetrying),
            deliver(&h, m.mail)
        ]
    );
}

#[test]
fn a_timed_out_message_whose_producer_committed_is_delivered() {
    let mut h = Harness::new();
    let m = message(&mut h, 1_000);
    h.tc.tick(T0 + 1_001);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::TimeoutRollbacking),
            h.rollback_of(m.check)
        ]
    );
    h.tc.branch_result(T0 + 1_002, m.tx.id, m.check, COMMIT_RETRYABLE);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::CommitRetrying),
            deliver(&h, m.mail)
        ]
    );
    assert_eq!(
        finish_delivery(&mut h, &m, T0 + 1_003),
        vec![remove_branch(&m.tx, m.stock), remove_global(&m.tx)]
    );
}

#[test]
fn a_timed_out_message_whose_producer_never_committed_is_dropped() {
    let mut h = Harness::new();
    let m = message(&mut h, 1_000);
    h.tc.tick(T0 + 1_001);
    h.effects();
    h.tc.branch_result(T0 + 1_002, m.tx.id, m.check, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![check_resolved_rolled_back(&m), release(&h, m.stock)]
    );
    h.tc.branch_result(T0 + 1_003, m.tx.id, m.stock, ROLLBACKED);
    h.effects();
    h.tc.branch_result(T0 + 1_004, m.tx.id, m.mail, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&m.tx, m.mail), remove_global(&m.tx)]
    );
    assert!(
        !h.trace.iter().any(|e| matches!(e, Effect::BranchCommit(_))),
        "nothing is ever delivered"
    );
}

#[test]
fn with_parallel_phase_two_the_check_still_goes_alone_first() {
    let mut h = Harness::with_config(CoordinatorConfig {
        parallel_phase2: true,
        ..config()
    });
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::Rollbacking),
            h.rollback_of(m.check)
        ]
    );
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            check_resolved_rolled_back(&m),
            release(&h, m.stock),
            release(&h, m.mail)
        ]
    );
}

#[test]
fn a_restart_after_the_switch_resumes_delivery_without_asking_again() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, COMMIT_RETRYABLE);
    h.effects();
    // Crash before any consumer answered.
    h.recover(T0 + 100);
    h.assert_quiet();
    assert_eq!(h.tc.status_of(m.tx.id), Some(GlobalStatus::CommitRetrying));
    h.tc.tick(T0 + 100);
    assert_eq!(h.effects(), vec![deliver(&h, m.mail)]);
    assert_eq!(
        finish_delivery(&mut h, &m, T0 + 101),
        vec![remove_branch(&m.tx, m.stock), remove_global(&m.tx)]
    );
}

#[test]
fn a_restart_after_the_check_said_rolled_back_does_not_ask_it_again() {
    let mut h = Harness::new();
    let m = message(&mut h, 60_000);
    h.rollback(2, &m.tx.xid);
    h.effects();
    h.tc.branch_result(T0 + 1, m.tx.id, m.check, ROLLBACKED);
    h.effects();
    h.tc.branch_result(T0 + 2, m.tx.id, m.stock, BranchOutcome::Unreachable);
    assert_eq!(
        h.effects(),
        vec![
            update(&m.tx, GlobalStatus::RollbackRetrying),
            rollback_reply(2, GlobalStatus::RollbackRetrying)
        ]
    );
    h.assert_log_matches_state();
    h.recover(T0 + 100);
    h.tc.tick(T0 + 100);
    assert_eq!(h.effects(), vec![release(&h, m.stock)]);
    h.tc.branch_result(T0 + 101, m.tx.id, m.stock, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&m.tx, m.stock), release(&h, m.mail)]
    );
    h.tc.branch_result(T0 + 102, m.tx.id, m.mail, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![remove_branch(&m.tx, m.mail), remove_global(&m.tx)]
    );
}

#[test]
fn a_message_with_no_delivery_commits_at_once() {
    let mut h = Harness::new();
    let tx = h.begin_named(T0, 60_000, "$Outbox_nothing");
    h.register(&tx, BranchType::Tcc, CHECK, "", "");
    h.commit(T0 + 1, 1, &tx.xid);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Committing),
            remove_global(&tx),
            commit_reply(1, GlobalStatus::Committed)
        ]
    );
}
