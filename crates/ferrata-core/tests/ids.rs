//! Transaction and branch ids never repeat across restarts, even when the clock goes back
//! (semantics §1.1; RELIABILITY.md "Ids"): each block of ids is reserved by a durable record
//! before the first id of the block is revealed, and recovery starts above the reservation.

mod support;

use ferrata_core::{Coordinator, Effect, Record, Reply, Request, SessionTable};
use support::*;

#[test]
fn the_reservation_is_persisted_before_the_first_id_is_revealed() {
    let mut h = Harness::new();
    h.begin_request(T0, 1, 60_000, "first");
    let effects = h.raw_effects();
    let reserve = effects
        .iter()
        .position(|e| matches!(e, Effect::Persist(Record::IdReserve { .. })))
        .expect("the first id opens a reservation");
    let reply = effects
        .iter()
        .position(|e| matches!(e, Effect::Reply { .. }))
        .expect("a reply");
    assert!(reserve < reply, "{effects:?}");
    let Effect::Reply {
        reply: Reply::Began { xid },
        ..
    } = &effects[reply]
    else {
        panic!("began: {effects:?}")
    };
    let Effect::Persist(Record::IdReserve { next_free_id }) = effects[reserve] else {
        unreachable!()
    };
    let id = ferrata_core::transaction_id_of(xid).expect("id");
    assert!(id.0 < next_free_id);
    // Later ids of the same block log nothing more.
    h.begin_request(T0, 2, 60_000, "second");
    assert!(
        !h.raw_effects()
            .iter()
            .any(|e| matches!(e, Effect::Persist(Record::IdReserve { .. })))
    );
}

#[test]
fn ids_do_not_repeat_after_a_restart_with_the_clock_an_hour_back() {
    let mut h = Harness::new();
    let mut used = Vec::new();
    for _ in 0..5 {
        let tx = h.begin(T0, 60_000);
        used.push(tx.id.0);
        let branch = h.tcc(&tx, "debit");
        used.push(branch.0);
        // Every transaction ends: nothing of it is left in the live state.
        h.commit(T0 + 1, 7, &tx.xid);
        h.effects();
        h.tc.branch_result(
            T0 + 2,
            tx.id,
            branch,
            ferrata_core::BranchOutcome::Status(ferrata_proto::BranchStatus::PhaseTwoCommitted),
        );
        h.effects();
    }
    let mut table = SessionTable::new();
    for record in &h.log {
        table.apply(record);
    }
    assert!(table.is_empty(), "all transactions finished");
    // Compaction keeps only the snapshot: the reservation must be part of it.
    let mut compacted = SessionTable::new();
    for record in table.snapshot_records() {
        compacted.apply(&record);
    }
    let mut restarted = Coordinator::recover(config(), compacted, T0 - 3_600_000);
    let begin = Request::Begin {
        timeout_ms: 60_000,
        transaction_name: "after".to_owned(),
    };
    restarted.handle(T0 - 3_600_000, 9, &requester(), begin);
    let xid = restarted
        .take_effects()
        .into_iter()
        .find_map(|e| match e {
            Effect::Reply {
                reply: Reply::Began { xid },
                ..
            } => Some(xid),
            _ => None,
        })
        .expect("began");
    let id = ferrata_core::transaction_id_of(&xid).expect("id");
    assert!(
        used.iter().all(|u| id.0 > *u),
        "id {id} after the clock went back must be above every id used before: {used:?}"
    );
}

#[test]
fn the_coordinator_snapshot_carries_the_reservation() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let snapshot = h.tc.snapshot_records();
    let Some(Record::IdReserve { next_free_id }) = snapshot.first() else {
        panic!("the snapshot starts with the reservation: {snapshot:?}")
    };
    assert!(*next_free_id > tx.id.0);
}
