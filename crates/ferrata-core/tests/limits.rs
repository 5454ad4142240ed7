//! Every limit that bounds what one client can make the coordinator hold is enforced with the
//! Seata exception code a client understands and a message naming the limit, and refusing one
//! request changes nothing else (RELIABILITY.md, "Limits").

mod support;

use ferrata_core::{CoordinatorConfig, Effect, RateLimit, Reply, RequestKind};
use ferrata_proto::{BranchType, GlobalStatus, TransactionExceptionCode as Code};
use support::*;

fn with(config: CoordinatorConfig) -> Harness {
    Harness::with_config(config)
}

/// Runs a GlobalBegin and returns its failure (code, message), or `None` when it began.
fn try_begin(h: &mut Harness, now: i64, timeout_ms: i32) -> Option<(Code, String)> {
    let token = h.token();
    h.begin_request(now, token, timeout_ms, "t");
    let effects = h.effects();
    match effects.as_slice() {
        [
            Effect::Reply {
                reply: Reply::Failed { request, error },
                ..
            },
        ] => {
            assert_eq!(*request, RequestKind::Begin);
            Some((error.code, error.message.clone()))
        }
        [
            Effect::Persist(_),
            Effect::Reply {
                reply: Reply::Began { .. },
                ..
            },
        ] => None,
        other => panic!("unexpected effects of a begin: {other:?}"),
    }
}

/// The failure message of the last registration attempt (after `try_register` returned Err).
fn last_failure_message(h: &mut Harness, tx: &Tx, lock_key: &str, data: &str) -> String {
    let token = h.token();
    h.branch_register(
        token,
        ferrata_core::BranchRegistration {
            xid: tx.xid.clone(),
            branch_type: BranchType::At,
            resource_id: DB.to_owned(),
            lock_key: lock_key.to_owned(),
            application_data: data.to_owned(),
        },
    );
    match h.effects().as_slice() {
        [
            Effect::Reply {
                reply: Reply::Failed { error, .. },
                ..
            },
        ] => error.message.clone(),
        other => panic!("expected a refusal: {other:?}"),
    }
}

#[test]
fn a_lock_key_over_the_byte_limit_is_refused_and_locks_nothing() {
    let mut h = with(CoordinatorConfig {
        max_lock_key_bytes: 64,
        ..config()
    });
    let tx = h.begin(T0, 60_000);
    // The memory bomb's shape: a long table name followed by many short keys.
    let bomb = format!("{}:1,2,3,4,5", "t".repeat(100));
    assert_eq!(h.try_at(&tx, &bomb, ""), Err(Code::FailedToAddBranch));
    let message = last_failure_message(&mut h, &tx, &bomb, "");
    assert!(message.contains("limits.max_lock_key_bytes"), "{message}");
    assert_eq!(h.tc.stats().locked_rows, 0);
    assert_eq!(h.tc.stats().branches, 0);
    // TCC branches carry the lock key too (it is stored), so the limit applies to them as well.
    assert_eq!(
        h.try_register(&tx, BranchType::Tcc, "debit", &bomb, ""),
        Err(Code::FailedToAddBranch)
    );
    // Within the limit the same transaction still registers.
    h.at(&tx, "orders:1,2");
    assert_eq!(h.tc.stats().locked_rows, 2);
}

#[test]
fn a_lock_key_with_too_many_rows_is_refused_and_locks_nothing() {
    let mut h = with(CoordinatorConfig {
        max_rows_per_branch: 3,
        ..config()
    });
    let tx = h.begin(T0, 60_000);
    assert_eq!(
        h.try_at(&tx, "orders:1,2;items:3,4", ""),
        Err(Code::FailedToAddBranch)
    );
    let message = last_failure_message(&mut h, &tx, "orders:1,2;items:3,4", "");
    assert!(message.contains("limits.max_rows_per_branch"), "{message}");
    assert_eq!(h.tc.stats().locked_rows, 0);
    // Repeated keys count once.
    h.at(&tx, "orders:1,2,1;items:3,3");
    assert_eq!(h.tc.stats().locked_rows, 3);
}

#[test]
fn a_lock_query_over_the_limits_fails_with_lockable_check_failed() {
    let mut h = with(CoordinatorConfig {
        max_lock_key_bytes: 32,
        max_rows_per_branch: 2,
        ..config()
    });
    let tx = h.begin(T0, 60_000);
    for lock_key in ["orders:1,2,3", &format!("{}:1", "t".repeat(40))] {
        let token = h.token();
        h.lock_query(token, &tx.xid, BranchType::At, DB, lock_key);
        match h.effects().as_slice() {
            [
                Effect::Reply {
                    token: t,
                    reply:
                        Reply::Failed {
                            request: RequestKind::LockQuery,
                            error,
                        },
                },
            ] if *t == token => {
                assert_eq!(error.code, Code::LockableCheckFailed);
                assert!(error.message.contains("limits.max_"), "{}", error.message);
            }
            other => panic!("lock query over the limit: {other:?}"),
        }
    }
    assert!(h.lockable(&tx.xid, "orders:1,2"));
}

#[test]
fn branches_beyond_the_per_transaction_limit_are_refused() {
    let mut h = with(CoordinatorConfig {
        max_branches_per_transaction: 2,
        ..config()
    });
    let tx = h.begin(T0, 60_000);
    h.tcc(&tx, "a");
    h.tcc(&tx, "b");
    assert_eq!(
        h.try_register(&tx, BranchType::Tcc, "c", "", ""),
        Err(Code::FailedToAddBranch)
    );
    let message = last_failure_message(&mut h, &tx, "orders:1", "");
    assert!(
        message.contains("limits.max_branches_per_transaction"),
        "{message}"
    );
    // Another transaction is not affected.
    let other = h.begin(T0, 60_000);
    h.tcc(&other, "a");
    assert_eq!(h.tc.stats().branches, 3);
}

#[test]
fn application_data_over_the_limit_names_the_limit() {
    let mut h = with(CoordinatorConfig {
        application_data_limit: Some(4),
        ..config()
    });
    let tx = h.begin(T0, 60_000);
    assert_eq!(
        h.try_at(&tx, "orders:1", "12345"),
        Err(Code::FailedToAddBranch)
    );
    let message = last_failure_message(&mut h, &tx, "orders:1", "12345");
    assert!(
        message.contains("limits.max_application_data_bytes"),
        "{message}"
    );
    h.try_at(&tx, "orders:1", "1234").expect("at the limit");
}

#[test]
fn begins_beyond_the_open_session_limit_are_refused_until_one_ends() {
    let mut h = with(CoordinatorConfig {
        max_sessions: 2,
        ..config()
    });
    let a = h.begin(T0, 60_000);
    h.begin(T0, 60_000);
    let (code, message) = try_begin(&mut h, T0, 60_000).expect("refused");
    assert_eq!(code, Code::BeginFailed);
    assert!(message.contains("limits.max_sessions"), "{message}");
    assert_eq!(h.tc.stats().sessions, 2);
    h.commit(T0 + 1, 1, &a.xid);
    assert_eq!(
        h.effects(),
        vec![remove_global(&a), commit_reply(1, GlobalStatus::Committed)]
    );
    assert_eq!(try_begin(&mut h, T0 + 2, 60_000), None);
}

#[test]
fn a_timeout_above_the_maximum_is_refused() {
    let mut h = with(CoordinatorConfig {
        max_transaction_timeout_ms: 60_000,
        ..config()
    });
    let (code, message) = try_begin(&mut h, T0, 60_001).expect("refused");
    assert_eq!(code, Code::BeginFailed);
    assert!(
        message.contains("limits.max_transaction_timeout"),
        "{message}"
    );
    assert_eq!(try_begin(&mut h, T0, 60_000), None);
    assert_eq!(h.tc.stats().sessions, 1);
}

#[test]
fn the_begin_rate_limit_answers_as_seata_and_refills_over_time() {
    let mut h = with(CoordinatorConfig {
        begin_rate_limit: Some(RateLimit {
            tokens_per_second: 2,
            max_tokens: 2,
            initial_tokens: 2,
        }),
        ..config()
    });
    assert_eq!(try_begin(&mut h, T0, 60_000), None);
    assert_eq!(try_begin(&mut h, T0, 60_000), None);
    let (code, message) = try_begin(&mut h, T0, 60_000).expect("limited");
    assert_eq!(code, Code::BeginFailed);
    assert!(message.starts_with("rate limit exception"), "{message}");
    assert!(
        message.contains("coordinator.begin_rate_limit"),
        "{message}"
    );
    // Refused begins leave nothing behind; branch work of open transactions is not limited.
    assert_eq!(h.tc.stats().sessions, 2);
    // Half a second later one token is back (2 per second).
    assert_eq!(try_begin(&mut h, T0 + 500, 60_000), None);
    assert!(try_begin(&mut h, T0 + 500, 60_000).is_some());
}
