//! What operators read and do through the admin API: transaction pages and filters, one
//! transaction's branches and history, the lock table with holders, and the actions on a
//! stuck transaction — each answered once, with the records it needs, or refused with why.

use super::*;
use ferrata_core::{AdminAction, Event, LockFilter, Phase2Kind, TransactionFilter};

const OPERATOR: &str = "alice";

fn failed(token: u64, request: RequestKind, code: Code) -> impl Fn(&Effect) -> bool {
    move |effect| {
        matches!(effect, Effect::Reply { token: t, reply: Reply::Failed { request: r, error } }
            if *t == token && *r == request && error.code == code)
    }
}

#[test]
fn pages_filter_by_status_application_age_and_xid() {
    let mut h = Harness::new();
    let old = h.begin(T0, 600_000);
    let young = h.begin(T0 + 5_000, 600_000);
    let committing = h.begin(T0 + 6_000, 600_000);
    h.tcc(&committing, "debit");
    h.commit(T0 + 6_001, 1, &committing.xid);
    h.effects();
    let all = h.tc.transactions(
        &TransactionFilter {
            limit: 10,
            ..TransactionFilter::default()
        },
        T0 + 10_000,
    );
    assert_eq!(all.total, 3);
    let ids: Vec<_> = all.items.iter().map(|t| t.global.transaction_id).collect();
    assert_eq!(ids, vec![old.id, young.id, committing.id]);
    assert_eq!(all.items[2].branches, 1);

    let begun = TransactionFilter {
        statuses: vec![GlobalStatus::Begin],
        limit: 10,
        ..TransactionFilter::default()
    };
    assert_eq!(h.tc.transactions(&begun, T0 + 10_000).total, 2);
    let aged = TransactionFilter {
        min_age_ms: Some(8_000),
        ..begun.clone()
    };
    let page = h.tc.transactions(&aged, T0 + 10_000);
    assert_eq!(
        (page.total, page.items[0].global.transaction_id),
        (1, old.id)
    );
    let other_app = TransactionFilter {
        application_id: Some("nobody".into()),
        ..begun.clone()
    };
    assert_eq!(h.tc.transactions(&other_app, T0 + 10_000).total, 0);
    let by_xid = TransactionFilter {
        xid_contains: Some(young.id.0.to_string()),
        limit: 10,
        ..TransactionFilter::default()
    };
    assert_eq!(
        h.tc.transactions(&by_xid, T0).items[0].global.xid,
        young.xid
    );
    // Pages: the total stays, the items move.
    let second = TransactionFilter {
        offset: 1,
        limit: 1,
        ..TransactionFilter::default()
    };
    let page = h.tc.transactions(&second, T0);
    assert_eq!((page.total, page.items.len()), (3, 1));
    assert_eq!(page.items[0].global.transaction_id, young.id);
}

#[test]
fn a_transaction_shows_its_branches_history_and_locks() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let branch = h.at(&tx, "orders:1,2");
    h.rollback(1, &tx.xid);
    h.tc.branch_result(T0 + 50, tx.id, branch, ROLLBACK_RETRYABLE);
    h.effects();
    let detail = h.tc.transaction(&tx.xid).expect("held");
    assert_eq!(detail.global.status, GlobalStatus::RollbackRetrying);
    assert_eq!(detail.branches.len(), 1);
    assert_eq!(detail.failed_passes, 1);
    assert!(detail.retry_at_ms.is_some());
    let events: Vec<Event> = detail
        .history
        .entries()
        .iter()
        .map(|e| e.event.clone())
        .collect();
    assert_eq!(
        events,
        vec![
            Event::BranchRegistered { branch_id: branch },
            Event::Status(GlobalStatus::Rollbacking),
            Event::Phase2Sent {
                branch_id: branch,
                kind: Phase2Kind::Rollback
            },
            Event::Phase2Answered {
                branch_id: branch,
                outcome: ROLLBACK_RETRYABLE
            },
            Event::Status(GlobalStatus::RollbackRetrying),
        ]
    );
    assert_eq!(detail.history.entries()[3].at_ms, T0 + 50);

    let locks = h.tc.locks(&LockFilter {
        limit: 10,
        ..LockFilter::default()
    });
    assert_eq!(locks.total, 2);
    let pks: Vec<&str> = locks.items.iter().map(|l| l.pk.as_str()).collect();
    assert_eq!(pks, vec!["1", "2"]);
    assert!(
        locks
            .items
            .iter()
            .all(|l| l.xid == tx.xid && l.branch_id == branch && l.table == "orders")
    );
    assert!(locks.items.iter().all(|l| l.since_ms.is_some()));
    let none = h.tc.locks(&LockFilter {
        table: Some("items".into()),
        limit: 10,
        ..LockFilter::default()
    });
    assert_eq!(none.total, 0);
    assert!(h.tc.transaction("10.0.0.1:8091:1").is_none());
}

#[test]
fn rolling_back_a_stuck_begin_is_a_tm_rollback() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let branch = h.tcc(&tx, "debit");
    h.tc.admin(T0 + 1, 7, OPERATOR, &tx.xid, AdminAction::Rollback);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::Rollbacking),
            h.rollback_of(branch)
        ]
    );
    h.tc.branch_result(T0 + 2, tx.id, branch, ROLLBACKED);
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, branch),
            remove_global(&tx),
            rollback_reply(7, GlobalStatus::Rollbacked)
        ]
    );
}

#[test]
fn actions_that_do_not_apply_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    for (token, action, request) in [
        (1, AdminAction::Delete, RequestKind::GlobalStatus),
        (2, AdminAction::RetryNow, RequestKind::GlobalStatus),
        (
            3,
            AdminAction::ResolveBranch(BranchId(1)),
            RequestKind::GlobalRollback,
        ),
    ] {
        h.tc.admin(T0 + 1, token, OPERATOR, &tx.xid, action);
        let effects = h.effects();
        assert_eq!(effects.len(), 1, "{effects:?}");
        assert!(
            failed(token, request, Code::GlobalTransactionStatusInvalid)(&effects[0]),
            "{effects:?}"
        );
    }
    h.tc.admin(T0 + 1, 4, OPERATOR, "10.0.0.1:8091:99", AdminAction::Commit);
    let effects = h.effects();
    assert!(
        failed(
            4,
            RequestKind::GlobalCommit,
            Code::GlobalTransactionNotExist
        )(&effects[0]),
        "{effects:?}"
    );
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));
}

#[test]
fn retry_now_runs_a_backed_off_pass_at_the_next_tick() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let branch = h.tcc(&tx, "debit");
    h.commit(T0 + 1, 1, &tx.xid);
    h.tc.branch_result(T0 + 2, tx.id, branch, COMMIT_RETRYABLE);
    h.effects();
    // Nothing is due yet: the retry waits for its backoff.
    h.tc.tick(T0 + 3);
    h.assert_quiet();
    h.tc.admin(T0 + 3, 9, OPERATOR, &tx.xid, AdminAction::RetryNow);
    assert_eq!(
        h.effects(),
        vec![status_reply(9, GlobalStatus::CommitRetrying)]
    );
    h.tc.tick(T0 + 3);
    assert_eq!(h.effects(), vec![h.commit_of(branch)]);
    assert_eq!(h.tc.metrics().transactions.phase2_retries, 1);
}

#[test]
fn resolving_the_last_failed_branch_ends_the_rollback_and_frees_its_rows() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    let a2 = h.at(&tx, "orders:2");
    h.rollback(1, &tx.xid);
    h.tc.branch_result(T0 + 1, tx.id, a2, ROLLBACK_UNRETRYABLE);
    h.effects();
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::RollbackFailed));
    h.tc.admin(T0 + 2, 5, OPERATOR, &tx.xid, AdminAction::ResolveBranch(a2));
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, a2),
            rollback_reply(5, GlobalStatus::RollbackFailed)
        ]
    );
    assert_eq!(h.tc.stats().locked_rows, 1);
    h.tc.admin(T0 + 3, 6, OPERATOR, &tx.xid, AdminAction::ResolveBranch(a1));
    assert_eq!(
        h.effects(),
        vec![
            remove_branch(&tx, a1),
            remove_global(&tx),
            rollback_reply(6, GlobalStatus::Rollbacked)
        ]
    );
    assert_eq!(h.tc.stats().locked_rows, 0);
    assert_eq!(h.tc.status_of(tx.id), None);
    h.assert_log_matches_state();
}

#[test]
fn deleting_a_failed_session_forgets_it_and_frees_its_rows() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let a1 = h.at(&tx, "orders:1");
    h.rollback(1, &tx.xid);
    h.tc.branch_result(T0 + 1, tx.id, a1, ROLLBACK_UNRETRYABLE);
    h.effects();
    let other = h.begin(T0 + 2, 60_000);
    assert_eq!(h.try_at(&other, "orders:1", ""), Err(Code::LockKeyConflict));
    h.tc.admin(T0 + 3, 8, OPERATOR, &tx.xid, AdminAction::Delete);
    assert_eq!(
        h.effects(),
        vec![remove_global(&tx), status_reply(8, GlobalStatus::Finished)]
    );
    assert_eq!(h.tc.status_of(tx.id), None);
    h.at(&other, "orders:1");
    h.assert_log_matches_state();
}
