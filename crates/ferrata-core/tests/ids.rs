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

/// With ids from store ranges (nodes sharing a database), ids come from the ranges handed
/// over, in order; more is asked for while little is left (once until it arrives); and with
/// none left, a begin fails with a message instead of inventing an id.
#[test]
fn store_ranges_give_the_ids_and_more_is_asked_for_ahead() {
    use ferrata_core::id::STORE_RANGE_IDS;
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        id_source: ferrata_core::IdSource::StoreRanges,
        ..config()
    });
    let begin = |h: &mut Harness, token: u64| -> Vec<Effect> {
        h.begin_request(T0, token, 60_000, "place-order");
        h.raw_effects()
    };
    let effects = begin(&mut h, 1);
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::ReserveIds { count }, Effect::Reply { reply: Reply::Failed { .. }, .. }]
                if *count == STORE_RANGE_IDS
        ),
        "{effects:?}"
    );
    assert!(
        !begin(&mut h, 2)
            .iter()
            .any(|e| matches!(e, Effect::ReserveIds { .. })),
        "asked once until it arrives"
    );
    // A short range: less than half a range is left at once, so more is asked for.
    h.tc.add_id_range(7_000..7_002);
    let began = |effects: &[Effect]| -> Option<i64> {
        effects.iter().find_map(|e| match e {
            Effect::Reply {
                reply: Reply::Began { xid },
                ..
            } => ferrata_core::transaction_id_of(xid).map(|id| id.0),
            _ => None,
        })
    };
    let effects = begin(&mut h, 3);
    assert_eq!(began(&effects), Some(7_000));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ReserveIds { .. }))
            && !effects
                .iter()
                .any(|e| matches!(e, Effect::Persist(Record::IdReserve { .. }))),
        "asks for more, logs no snowflake reservation: {effects:?}"
    );
    h.tc.add_id_range(9_000..9_000 + STORE_RANGE_IDS);
    assert_eq!(began(&begin(&mut h, 4)), Some(7_001));
    assert_eq!(began(&begin(&mut h, 5)), Some(9_000), "then the next range");
}
