//! GlobalBegin, and ending transactions without branches (semantics §1.6).

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
    assert!(id.0 > 0);
    assert_eq!(id.0 >> 53, 5);
    assert_eq!(transaction_id_of(&xid), Some(id));
    assert_eq!(h.tc.status_of(id), Some(GlobalStatus::Begin));
    assert_eq!(h.tc.stats().sessions, 1);
    // The deadline is begin time + timeout; the timeout check fires strictly after it.
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 5 + 30_000 + 1));
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
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 1));
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
