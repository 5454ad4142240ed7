//! On a store other nodes write too (`StoreSharing::Shared`): every write of a transaction is
//! conditioned on the status this node believes is stored (Begin for a decision or a join),
//! lock queries read the store's lock table, and what the store refuses is undone — a branch
//! whose rows another node holds is dropped, a transaction another node decided is forgotten
//! and its waiting TM told the store's status, a branch report the store cannot hold leaves
//! the transaction alone.

use super::*;
use ferrata_core::{BranchRegistration, Refusal, Request, StoreSharing};

fn shared() -> Harness {
    Harness::with_config(ferrata_core::CoordinatorConfig {
        store_sharing: StoreSharing::Shared,
        ..config()
    })
}

/// Registers a branch and returns the record the coordinator asked to persist (conditioned).
fn join(h: &mut Harness, tx: &Tx, branch_type: BranchType, lock_key: &str) -> Record {
    let token = h.token();
    h.branch_register(
        token,
        BranchRegistration {
            xid: tx.xid.clone(),
            branch_type,
            resource_id: DB.into(),
            lock_key: lock_key.into(),
            application_data: String::new(),
        },
    );
    let effects = h.effects();
    match effects.as_slice() {
        [
            Effect::PersistIf {
                record: record @ Record::BranchAdd(_),
                status: GlobalStatus::Begin,
            },
            Effect::Reply {
                reply: Reply::BranchRegistered { .. },
                ..
            },
        ] => record.clone(),
        other => panic!("a branch joins only while Begin: {other:?}"),
    }
}

#[test]
fn decisions_and_joins_are_conditioned_on_begin() {
    let mut h = shared();
    let tx = h.begin(T0, 60_000);
    join(&mut h, &tx, BranchType::Tcc, "");
    let token = h.token();
    h.commit(T0, token, &tx.xid);
    let effects = h.effects();
    assert_eq!(
        effects.first(),
        Some(&Effect::PersistIf {
            record: Record::GlobalUpdate {
                transaction_id: tx.id,
                status: GlobalStatus::Committing,
            },
            status: GlobalStatus::Begin,
        }),
        "{effects:?}"
    );
    // Every write carries the status this node believes is stored.
    assert!(
        effects.iter().all(|e| !matches!(e, Effect::Persist(_))),
        "{effects:?}"
    );
}

#[test]
fn a_branch_whose_rows_another_node_holds_is_dropped() {
    let mut h = shared();
    let tx = h.begin(T0, 60_000);
    let record = join(&mut h, &tx, BranchType::At, "stock:1,2");
    assert_eq!(h.tc.stats().locked_rows, 2);
    h.tc.store_refused(
        &record,
        Refusal::RowLocked {
            table: "stock".into(),
            pk: "2".into(),
            holder: TransactionId(99),
        },
    );
    h.assert_quiet();
    let stats = h.tc.stats();
    assert_eq!(
        (stats.sessions, stats.branches, stats.locked_rows),
        (1, 0, 0)
    );
    // The transaction lives on and can lock other rows.
    join(&mut h, &tx, BranchType::At, "stock:3");
}

#[test]
fn a_transaction_another_node_decided_is_forgotten_and_its_tm_told() {
    let mut h = shared();
    let tx = h.begin(T0, 60_000);
    join(&mut h, &tx, BranchType::At, "stock:1");
    let token = h.token();
    h.rollback(token, &tx.xid);
    let effects = h.effects();
    let Some(Effect::PersistIf { record, .. }) = effects.first() else {
        panic!("the rollback decision is conditioned: {effects:?}");
    };
    h.tc.store_refused(
        record,
        Refusal::StatusChanged {
            actual: GlobalStatus::Committing,
        },
    );
    assert_eq!(
        h.effects(),
        vec![Effect::Reply {
            token,
            reply: Reply::GlobalRollback {
                status: GlobalStatus::Committing
            },
        }],
        "the waiting TM learns what the store holds"
    );
    let stats = h.tc.stats();
    assert_eq!((stats.sessions, stats.locked_rows), (0, 0));
    let idle = shared().tc.next_deadline_ms();
    assert_eq!(h.tc.next_deadline_ms(), idle, "no timer left for it");
}

#[test]
fn lock_queries_read_the_store() {
    let mut h = shared();
    let tx = h.begin(T0, 60_000);
    let token = h.token();
    h.send(
        T0,
        token,
        Request::LockQuery {
            xid: tx.xid.clone(),
            branch_type: BranchType::At,
            resource_id: DB.into(),
            lock_key: "stock:1,2;orders:7".into(),
        },
    );
    assert_eq!(
        h.effects(),
        vec![Effect::CheckLocks {
            token,
            transaction_id: tx.id,
            resource_id: DB.into(),
            rows: vec![
                ("stock".into(), "1".into()),
                ("stock".into(), "2".into()),
                ("orders".into(), "7".into()),
            ],
        }]
    );
}

#[test]
fn another_nodes_transactions_are_read_from_the_store_and_not_decided_here() {
    let mut h = shared();
    let foreign = "10.0.0.9:8091:424242";
    let token = h.token();
    h.status_request(token, foreign);
    assert_eq!(
        h.effects(),
        vec![Effect::CheckStatus {
            token,
            transaction_id: TransactionId(424242),
        }]
    );
    let token = h.token();
    h.commit(T0, token, foreign);
    match h.effects().as_slice() {
        [
            Effect::Reply {
                reply: Reply::Failed { request, error },
                ..
            },
        ] => {
            assert_eq!(*request, RequestKind::GlobalCommit);
            assert!(error.message.contains("10.0.0.9:8091"), "{error:?}");
        }
        other => panic!("a foreign commit is refused: {other:?}"),
    }
    // An unknown transaction of this node's own is answered as always.
    let token = h.token();
    h.status_request(token, &format!("{PREFIX}:7"));
    assert_eq!(
        h.effects(),
        vec![Effect::Reply {
            token,
            reply: Reply::GlobalStatus {
                status: GlobalStatus::Finished
            }
        }]
    );
}

#[test]
fn an_unstorable_report_does_not_forget_the_transaction() {
    let mut h = shared();
    let tx = h.begin(T0, 60_000);
    join(&mut h, &tx, BranchType::Tcc, "");
    let record = Record::BranchUpdate {
        transaction_id: tx.id,
        branch_id: BranchId(1),
        status: BranchStatus::PhaseOneDone,
        application_data: Some("x".repeat(3000)),
    };
    h.tc.store_refused(
        &record,
        Refusal::Unstorable {
            reason: "too long".into(),
        },
    );
    h.assert_quiet();
    assert_eq!(h.tc.stats().sessions, 1, "the transaction stays");
    assert_eq!(h.tc.status_of(tx.id), Some(GlobalStatus::Begin));
}

/// A transaction another node began, as the shared store holds it.
fn stored_elsewhere(
    id: i64,
    status: GlobalStatus,
    timeout_ms: i32,
) -> ferrata_core::StoredTransaction {
    let xid = format!("10.0.0.9:8091:{id}");
    let global = GlobalSession {
        transaction_id: TransactionId(id),
        xid: xid.clone(),
        status,
        application_id: APP.into(),
        transaction_service_group: GROUP.into(),
        transaction_name: "elsewhere".into(),
        timeout_ms,
        begin_time_ms: T0,
        application_data: String::new(),
    };
    let branch = ferrata_core::BranchSession {
        branch_id: BranchId(id + 1),
        transaction_id: TransactionId(id),
        resource_id: DB.into(),
        lock_key: "stock:9".into(),
        branch_type: BranchType::At,
        status: ferrata_proto::BranchStatus::Registered,
        client_id: CLIENT.into(),
        application_data: String::new(),
    };
    let mut table = ferrata_core::SessionTable::new();
    table.apply(&Record::GlobalAdd(global));
    table.apply(&Record::BranchAdd(branch));
    table.into_transactions().next().expect("one transaction")
}

#[test]
fn an_adopted_transaction_is_driven_here_like_a_recovered_one() {
    let mut h = shared();
    h.tc.adopt(vec![stored_elsewhere(500, GlobalStatus::Begin, 1_000)], T0);
    h.assert_quiet();
    assert_eq!(h.tc.stats().locked_rows, 1, "its rows are held here too");
    // Requests about it are answered here, no longer read from the store.
    let token = h.token();
    h.status_request(token, "10.0.0.9:8091:500");
    assert_eq!(h.effects(), vec![status_reply(token, GlobalStatus::Begin)]);
    // Its timeout runs here: the rollback decision is conditioned on Begin.
    h.tc.tick(T0 + 2_000);
    let effects = h.effects();
    assert_eq!(
        effects.first(),
        Some(&Effect::PersistIf {
            record: Record::GlobalUpdate {
                transaction_id: TransactionId(500),
                status: GlobalStatus::TimeoutRollbacking,
            },
            status: GlobalStatus::Begin,
        }),
        "{effects:?}"
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::BranchRollback(request) if request.branch_id == BranchId(501)
        )),
        "{effects:?}"
    );
}

#[test]
fn a_disowned_node_s_transactions_are_forgotten_and_a_waiting_tm_answered() {
    let mut h = shared();
    h.tc.adopt(
        vec![
            stored_elsewhere(500, GlobalStatus::Begin, 60_000),
            stored_elsewhere(600, GlobalStatus::Committing, 60_000),
        ],
        T0,
    );
    let own = h.begin(T0, 60_000);
    h.tc.tick(T0);
    let effects = h.effects();
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::BranchCommit(request) if request.branch_id == BranchId(601)
        )),
        "an adopted commit resumes: {effects:?}"
    );
    let token = h.token();
    h.rollback(token, "10.0.0.9:8091:500");
    let effects = h.effects();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::BranchRollback(_))),
        "{effects:?}"
    );
    h.tc.disown("10.0.0.9:8091");
    assert_eq!(
        h.effects(),
        vec![rollback_reply(token, GlobalStatus::Rollbacking)],
        "the waiting TM is told where the rollback stands"
    );
    let stats = h.tc.stats();
    assert_eq!(
        (stats.sessions, stats.locked_rows),
        (1, 0),
        "only its own is left"
    );
    assert_eq!(h.global_status(&own), GlobalStatus::Begin);
}
