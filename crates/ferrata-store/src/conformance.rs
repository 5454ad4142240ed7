//! The conformance suite every [`SessionStore`] backend must pass. A [`Backend`] makes empty
//! places (directories, database schemas) and opens stores on them; every check drives a store
//! and a [`StoreState`] model side by side and requires the same outcome for every operation
//! and the same state after every reopen.

use std::path::{Path, PathBuf};

use ferrata_core::{
    BranchId, BranchSession, GlobalSession, Record, SessionTable, StoredTransaction, TransactionId,
};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};

use crate::{LeaseOutcome, OpOutcome, RowKey, SessionStore, StoreOp, StoreState, branch_rows};

/// A kind of store under test.
pub trait Backend {
    /// Where one store lives; dropping it may delete it.
    type Place;

    /// A new, empty place.
    fn fresh(&mut self) -> Self::Place;

    /// Opens the store at `place` (or reopens it after the previous instance was dropped),
    /// returning it with the state it recovered.
    fn open(&mut self, place: &Self::Place) -> (Box<dyn SessionStore>, SessionTable);

    /// Whether recovered AT lock keys come back byte for byte (a log) or rebuilt from their
    /// rows in canonical form (a database's `lock_table`), and other branches' lock keys not at
    /// all.
    fn keeps_lock_keys(&self) -> bool {
        true
    }

    /// Whether several stores may be open on one place at once (a shared database).
    fn shared(&self) -> bool {
        false
    }
}

/// Opens the store rooted at a directory, or reopens it after the previous instance was
/// dropped, returning it with the state it recovered.
pub type Factory<'a> = dyn FnMut(&Path) -> (Box<dyn SessionStore>, SessionTable) + 'a;

/// A [`Backend`] of stores kept in a directory, opened by a function of the directory.
#[derive(Debug)]
pub struct Directories<F>(pub F);

impl<F: FnMut(&Path) -> (Box<dyn SessionStore>, SessionTable)> Backend for Directories<F> {
    type Place = Dir;

    fn fresh(&mut self) -> Dir {
        fresh_dir()
    }

    fn open(&mut self, place: &Dir) -> (Box<dyn SessionStore>, SessionTable) {
        (self.0)(&place.path)
    }
}

/// Runs every check of the suite on stores kept in directories.
pub fn run_all(factory: &mut Factory<'_>) {
    run_backend(&mut Directories(|dir: &Path| factory(dir)));
}

/// Runs every check of the suite.
pub fn run_backend<B: Backend>(backend: &mut B) {
    empty_open(backend);
    empty_append_is_a_no_op(backend);
    append_then_reopen(backend);
    reopen_is_idempotent(backend);
    update_and_remove(backend);
    branch_order_preserved(backend);
    many_batches(backend);
    compact_then_reopen(backend);
    append_after_compact_then_reopen(backend);
    background_compaction(backend);
    large_values(backend);
    compare_and_set(backend);
    lock_conflicts(backend);
    rows_freed_within_a_batch(backend);
    changes_undone_within_a_batch(backend);
    a_lost_race_does_not_abort_the_batch(backend);
    read_your_writes(backend);
    leases(backend);
    reads_by_node(backend);
    announced_nodes(backend);
    id_reservation(backend);
    limits(backend);
    if backend.shared() {
        two_stores_on_one_place(backend);
        concurrent_first_reservations(backend);
    }
    randomized(backend);
}

/// A fresh directory that lives as long as it does.
#[derive(Debug)]
pub struct Dir {
    // Held only to delete the directory on drop.
    _guard: tempfile::TempDir,
    pub path: PathBuf,
}

fn fresh_dir() -> Dir {
    let guard = tempfile::Builder::new()
        .prefix("ferrata-store-conformance")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    // A subdirectory, so stores that create their directory are exercised too.
    let path = guard.path().join("store");
    Dir {
        _guard: guard,
        path,
    }
}

/// Applies `ops` to the store and the model; both must answer the same.
fn apply_ops(
    store: &mut dyn SessionStore,
    model: &mut StoreState,
    ops: &[StoreOp],
) -> Vec<OpOutcome> {
    let mut outcomes = Vec::new();
    if let Err(e) = store.apply(ops, &mut outcomes) {
        panic!("apply of {} operations failed: {e}", ops.len());
    }
    let expected: Vec<OpOutcome> = ops.iter().map(|op| model.apply(op)).collect();
    assert_eq!(outcomes, expected, "outcomes differ from the model's");
    outcomes
}

/// Appends unconditional records to the store and the model.
fn append(store: &mut dyn SessionStore, model: &mut StoreState, records: &[Record]) {
    let ops: Vec<StoreOp> = records.iter().cloned().map(StoreOp::put).collect();
    apply_ops(store, model, &ops);
}

fn compact(store: &mut dyn SessionStore, model: &StoreState) {
    if let Err(e) = store.compact(&mut model.table().snapshot_records()) {
        panic!("compact failed: {e}");
    }
}

/// A branch's lock key in canonical form: AT keys rebuilt from their rows (`table:pk,pk;t:pk`,
/// rows sorted), other branches' keys empty.
pub fn canonical_lock_key(branch: &BranchSession) -> String {
    if branch.branch_type == BranchType::At {
        crate::canonical_lock_key(branch_rows(branch))
    } else {
        String::new()
    }
}

/// `tx` with every lock key in canonical form.
fn canonical_transaction(mut tx: StoredTransaction) -> StoredTransaction {
    tx.branches = tx
        .branches
        .iter()
        .cloned()
        .map(|mut branch| {
            branch.lock_key = canonical_lock_key(&branch);
            branch
        })
        .collect();
    tx
}

/// What a backend that keeps only lock rows gives back for `tx` of the model: each branch's
/// lock key is the rows it holds (see [`StoreState::held_lock_key`]).
fn as_lock_rows(model: &StoreState, mut tx: StoredTransaction) -> StoredTransaction {
    tx.branches = tx
        .branches
        .iter()
        .cloned()
        .map(|mut branch| {
            branch.lock_key = model.held_lock_key(&branch);
            branch
        })
        .collect();
    tx
}

/// Transactions as the backend gives them back, for comparison.
fn comparable<B: Backend>(
    backend: &B,
    model: Option<&StoreState>,
    txs: impl Iterator<Item = StoredTransaction>,
) -> Vec<StoredTransaction> {
    txs.map(|tx| match (backend.keeps_lock_keys(), model) {
        (true, _) => tx,
        (false, Some(model)) => canonical_transaction(as_lock_rows(model, tx)),
        (false, None) => canonical_transaction(tx),
    })
    .collect()
}

fn assert_same_state<B: Backend>(
    backend: &B,
    recovered: &SessionTable,
    model: &StoreState,
    what: &str,
) {
    assert_eq!(
        recovered.next_free_id(),
        model.table().next_free_id(),
        "{what}: recovered id reservation differs from the model's"
    );
    assert_eq!(
        comparable(backend, None, recovered.transactions().cloned()),
        comparable(backend, Some(model), model.table().transactions().cloned()),
        "{what}: recovered state differs from the model"
    );
}

/// Reopens and checks the recovered state against the model.
fn reopen<B: Backend>(
    backend: &mut B,
    place: &B::Place,
    store: Box<dyn SessionStore>,
    model: &StoreState,
    what: &str,
) -> Box<dyn SessionStore> {
    drop(store);
    let (store, recovered) = backend.open(place);
    assert_same_state(backend, &recovered, model, what);
    store
}

/// Opens a fresh store with its model.
fn start<B: Backend>(backend: &mut B) -> (B::Place, Box<dyn SessionStore>, StoreState) {
    let place = backend.fresh();
    let (store, recovered) = backend.open(&place);
    assert!(
        recovered.is_empty(),
        "a new store must recover an empty table"
    );
    let model = StoreState::new(store.limits());
    (place, store, model)
}

/// A global session with plausible field values.
pub fn global(transaction_id: i64, status: GlobalStatus) -> GlobalSession {
    GlobalSession {
        transaction_id: TransactionId(transaction_id),
        xid: format!("10.0.0.1:8091:{transaction_id}"),
        status,
        application_id: "order-service".into(),
        transaction_service_group: "default_tx_group".into(),
        transaction_name: format!("purchase-{transaction_id}"),
        timeout_ms: 60_000,
        begin_time_ms: 1_700_000_000_000 + transaction_id,
        application_data: String::new(),
    }
}

/// The resource of every branch [`branch`] makes.
const RESOURCE: &str = "jdbc:mysql://db/stock";

/// A row of [`RESOURCE`], as [`SessionStore::lock_holders`] is asked about it.
fn resource_row(table: &str, pk: &str) -> RowKey {
    RowKey {
        resource_id: RESOURCE.into(),
        table: table.into(),
        pk: pk.into(),
    }
}

/// A branch session with plausible field values.
pub fn branch(transaction_id: i64, branch_id: i64, status: BranchStatus) -> BranchSession {
    BranchSession {
        branch_id: BranchId(branch_id),
        transaction_id: TransactionId(transaction_id),
        resource_id: RESOURCE.into(),
        lock_key: format!("stock:{branch_id}"),
        branch_type: BranchType::At,
        status,
        client_id: "stock-service:10.0.0.2:40000".into(),
        application_data: String::new(),
    }
}

/// A new store is empty, and stays empty across a reopen.
pub fn empty_open<B: Backend>(backend: &mut B) {
    let (dir, store, model) = start(backend);
    let store = reopen(backend, &dir, store, &model, "empty reopen");
    drop(store);
}

/// Appending no records changes nothing.
pub fn empty_append_is_a_no_op<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(store.as_mut(), &mut model, &[]);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(global(1, GlobalStatus::Begin))],
    );
    append(store.as_mut(), &mut model, &[]);
    let store = reopen(backend, &dir, store, &model, "empty appends");
    drop(store);
}

/// Appended records are all recovered, in one batch or several.
pub fn append_then_reopen<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::BranchAdd(branch(1, 11, BranchStatus::Registered)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
        ],
    );
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchAdd(branch(2, 21, BranchStatus::PhaseOneDone))],
    );
    assert_eq!(model.table().len(), 2);
    let store = reopen(backend, &dir, store, &model, "append then reopen");
    drop(store);
}

/// Reopening without writing does not change the state, however often.
pub fn reopen_is_idempotent<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(7, GlobalStatus::Committing)),
            Record::BranchAdd(branch(7, 70, BranchStatus::PhaseOneDone)),
        ],
    );
    for round in 0..3 {
        store = reopen(backend, &dir, store, &model, &format!("reopen {round}"));
    }
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalUpdate {
            transaction_id: TransactionId(7),
            status: GlobalStatus::Committed,
        }],
    );
    let store = reopen(backend, &dir, store, &model, "append after reopens");
    drop(store);
}

/// Updates and removes follow [`SessionTable::apply`], including records for unknown sessions.
pub fn update_and_remove<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::BranchAdd(branch(1, 11, BranchStatus::Registered)),
            Record::BranchAdd(branch(1, 12, BranchStatus::Registered)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
            Record::BranchAdd(branch(2, 21, BranchStatus::Registered)),
            Record::GlobalAdd(global(3, GlobalStatus::Begin)),
        ],
    );
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalUpdate {
                transaction_id: TransactionId(1),
                status: GlobalStatus::Committing,
            },
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(11),
                status: BranchStatus::PhaseTwoCommitted,
                application_data: None,
            },
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(12),
                status: BranchStatus::PhaseOneDone,
                application_data: Some("{\"k\":\"v\"}".into()),
            },
            Record::BranchRemove {
                transaction_id: TransactionId(2),
                branch_id: BranchId(21),
            },
            Record::GlobalRemove {
                transaction_id: TransactionId(3),
            },
            // Unknown sessions: ignored by replay.
            Record::GlobalUpdate {
                transaction_id: TransactionId(99),
                status: GlobalStatus::Rollbacking,
            },
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(999),
                status: BranchStatus::PhaseTwoRollbacked,
                application_data: None,
            },
            Record::BranchAdd(branch(98, 981, BranchStatus::Registered)),
            Record::BranchRemove {
                transaction_id: TransactionId(97),
                branch_id: BranchId(1),
            },
        ],
    );
    assert_eq!(
        model
            .table()
            .get(TransactionId(1))
            .map(|tx| tx.global.status),
        Some(GlobalStatus::Committing)
    );
    assert!(model.table().get(TransactionId(3)).is_none());
    store = reopen(backend, &dir, store, &model, "updates and removes");

    // A removed session can come back; a repeated GlobalAdd replaces the global, keeps branches.
    let mut replaced = global(1, GlobalStatus::Rollbacking);
    replaced.application_data = "replaced".into();
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(3, GlobalStatus::Begin)),
            Record::GlobalAdd(replaced),
            Record::GlobalRemove {
                transaction_id: TransactionId(2),
            },
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(12),
                status: BranchStatus::PhaseTwoRollbacked,
                application_data: None,
            },
        ],
    );
    assert_eq!(
        model
            .table()
            .get(TransactionId(1))
            .map(|tx| tx.branches.len()),
        Some(2)
    );
    let store = reopen(backend, &dir, store, &model, "re-add and replace");
    drop(store);
}

/// Branches come back in registration order, not id order; a re-added branch keeps its place.
pub fn branch_order_preserved<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(global(5, GlobalStatus::Begin))],
    );
    for id in [50, 3, 27] {
        append(
            store.as_mut(),
            &mut model,
            &[Record::BranchAdd(branch(5, id, BranchStatus::Registered))],
        );
    }
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::BranchAdd(branch(5, 1, BranchStatus::Registered)),
            Record::BranchAdd(branch(5, 40, BranchStatus::Registered)),
            Record::BranchRemove {
                transaction_id: TransactionId(5),
                branch_id: BranchId(27),
            },
            Record::BranchAdd(branch(5, 3, BranchStatus::PhaseOneDone)),
            Record::BranchAdd(branch(5, 27, BranchStatus::Registered)),
        ],
    );
    let order = |table: &SessionTable| -> Vec<i64> {
        table
            .get(TransactionId(5))
            .map(|tx| tx.branches.iter().map(|b| b.branch_id.0).collect())
            .unwrap_or_default()
    };
    assert_eq!(order(model.table()), vec![50, 3, 1, 40, 27]);
    store = reopen(backend, &dir, store, &model, "branch order");
    compact(store.as_mut(), &model);
    drop(store);
    let (store, recovered) = backend.open(&dir);
    assert_eq!(
        order(&recovered),
        vec![50, 3, 1, 40, 27],
        "after compaction"
    );
    assert_same_state(backend, &recovered, &model, "after compaction");
    drop(store);
}

/// Many small batches, as group commit under light load produces.
pub fn many_batches<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    for tx in 1..=150i64 {
        let mut batch = vec![Record::GlobalAdd(global(tx, GlobalStatus::Begin))];
        for b in 0..(tx % 4) {
            batch.push(Record::BranchAdd(branch(
                tx,
                tx * 100 + b,
                BranchStatus::Registered,
            )));
        }
        append(store.as_mut(), &mut model, &batch);
        if tx % 3 == 0 {
            append(
                store.as_mut(),
                &mut model,
                &[Record::GlobalRemove {
                    transaction_id: TransactionId(tx - 1),
                }],
            );
        }
    }
    let store = reopen(backend, &dir, store, &model, "many batches");
    drop(store);
}

fn populated(store: &mut dyn SessionStore, model: &mut StoreState) {
    for tx in 1..=40i64 {
        append(
            store,
            model,
            &[
                Record::GlobalAdd(global(tx, GlobalStatus::Begin)),
                Record::BranchAdd(branch(tx, tx * 10, BranchStatus::Registered)),
                Record::BranchAdd(branch(tx, tx * 10 + 1, BranchStatus::Registered)),
            ],
        );
    }
    for tx in (1..=40i64).filter(|tx| tx % 2 == 0) {
        append(
            store,
            model,
            &[
                Record::GlobalUpdate {
                    transaction_id: TransactionId(tx),
                    status: GlobalStatus::Committed,
                },
                Record::GlobalRemove {
                    transaction_id: TransactionId(tx),
                },
            ],
        );
    }
}

/// A compaction keeps exactly the live state.
pub fn compact_then_reopen<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    populated(store.as_mut(), &mut model);
    compact(store.as_mut(), &model);
    store = reopen(backend, &dir, store, &model, "compact then reopen");
    // Compacting an unchanged state, and an empty one, works too.
    compact(store.as_mut(), &model);
    store = reopen(backend, &dir, store, &model, "second compaction");
    // The caller always passes the current state: empty it first.
    let removals: Vec<Record> = model
        .table()
        .transactions()
        .map(|tx| Record::GlobalRemove {
            transaction_id: tx.global.transaction_id,
        })
        .collect();
    append(store.as_mut(), &mut model, &removals);
    compact(store.as_mut(), &model);
    let store = reopen(backend, &dir, store, &model, "compaction to empty");
    drop(store);
}

/// Records appended after a compaction apply on top of the snapshot.
pub fn append_after_compact_then_reopen<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    populated(store.as_mut(), &mut model);
    compact(store.as_mut(), &model);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalUpdate {
                transaction_id: TransactionId(1),
                status: GlobalStatus::Rollbacking,
            },
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(10),
                status: BranchStatus::PhaseTwoRollbacked,
                application_data: Some("after".into()),
            },
            Record::BranchRemove {
                transaction_id: TransactionId(3),
                branch_id: BranchId(31),
            },
            Record::GlobalRemove {
                transaction_id: TransactionId(5),
            },
            Record::GlobalAdd(global(100, GlobalStatus::Begin)),
        ],
    );
    store = reopen(backend, &dir, store, &model, "append after compact");
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchAdd(branch(
            100,
            1000,
            BranchStatus::Registered,
        ))],
    );
    compact(store.as_mut(), &model);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalRemove {
            transaction_id: TransactionId(7),
        }],
    );
    let store = reopen(backend, &dir, store, &model, "compact, append, reopen");
    drop(store);
}

/// Compacts through `begin_compaction` with the job on another thread while appends go on
/// (or in place, for stores that cannot): the snapshot and every append made meanwhile survive.
fn compact_in_background(
    store: &mut dyn SessionStore,
    model: &mut StoreState,
    meanwhile: &[Record],
) {
    let job = match store.begin_compaction() {
        Ok(Some(job)) => job,
        Ok(None) => {
            compact(store, model);
            append(store, model, meanwhile);
            return;
        }
        Err(e) => panic!("begin_compaction failed: {e}"),
    };
    // The snapshot describes the state when the job began, before the appends below.
    let snapshot: Vec<Record> = model.table().snapshot_records().collect();
    let worker = std::thread::spawn(move || job.run(&mut snapshot.into_iter()));
    assert!(
        !store.wants_compaction(),
        "no second compaction while one runs"
    );
    append(store, model, meanwhile);
    let outcome = worker
        .join()
        .unwrap_or_else(|_| panic!("the compaction job panicked"));
    if let Err(e) = store.finish_compaction(outcome) {
        panic!("background compaction failed: {e}");
    }
}

/// A compaction running on another thread does not hold up appends, and loses none of them.
pub fn background_compaction<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    populated(store.as_mut(), &mut model);
    let meanwhile: Vec<Record> = (100..110i64)
        .flat_map(|tx| {
            [
                Record::GlobalAdd(global(tx, GlobalStatus::Begin)),
                Record::GlobalRemove {
                    transaction_id: TransactionId(tx - 99),
                },
                Record::IdReserve {
                    next_free_id: 1_000 + tx,
                },
            ]
        })
        .collect();
    compact_in_background(store.as_mut(), &mut model, &meanwhile);
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchAdd(branch(
            100,
            1000,
            BranchStatus::Registered,
        ))],
    );
    store = reopen(backend, &dir, store, &model, "background compaction");
    let more = [Record::GlobalUpdate {
        transaction_id: TransactionId(100),
        status: GlobalStatus::Committing,
    }];
    compact_in_background(store.as_mut(), &mut model, &more);
    compact_in_background(store.as_mut(), &mut model, &[]);
    let store = reopen(backend, &dir, store, &model, "second background compaction");
    drop(store);
}

/// 64 KiB application data, large lock keys, unicode and empty strings survive unchanged.
pub fn large_values<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    let limits = store.limits();
    let mut g = global(1, GlobalStatus::Begin);
    g.application_data = fit("x".repeat(64 * 1024), limits.application_data_chars);
    g.transaction_name = "下单 🛒 café naïve Ωmega".into();
    g.application_id = String::new();
    let mut b = branch(1, 10, BranchStatus::Registered);
    b.lock_key = (0..20_000)
        .map(|i| format!("t:{i}"))
        .collect::<Vec<_>>()
        .join(",");
    b.application_data = fit(
        "日本語テキスト\u{1F600}\u{0301}".repeat(3000),
        limits.application_data_chars,
    );
    b.resource_id = "jdbc:postgresql://db/ордер".into();
    b.branch_type = BranchType::Tcc;
    // An AT branch with many rows.
    let mut many_rows = branch(1, 11, BranchStatus::Registered);
    many_rows.lock_key = (0..2_000)
        .map(|i| format!("t:{i}"))
        .collect::<Vec<_>>()
        .join(",");
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(g),
            Record::BranchAdd(b),
            Record::BranchAdd(many_rows),
        ],
    );
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchUpdate {
            transaction_id: TransactionId(1),
            branch_id: BranchId(10),
            status: BranchStatus::PhaseOneDone,
            application_data: Some(fit("ü".repeat(40_000), limits.application_data_chars)),
        }],
    );
    assert_eq!(model.locked_rows(), 2_000);
    store = reopen(backend, &dir, store, &model, "large values");
    compact(store.as_mut(), &model);
    let store = reopen(backend, &dir, store, &model, "large values compacted");
    drop(store);
}

/// `value` cut to `limit` characters.
fn fit(value: String, limit: Option<usize>) -> String {
    match limit {
        Some(limit) => value.chars().take(limit).collect(),
        None => value,
    }
}

fn set_status(id: i64, status: GlobalStatus) -> Record {
    Record::GlobalUpdate {
        transaction_id: TransactionId(id),
        status,
    }
}

/// A status change conditioned on the stored status applies only when it matches: the
/// compare-and-set that keeps two nodes from deciding one transaction twice.
pub fn compare_and_set<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(global(1, GlobalStatus::Begin))],
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::if_status(set_status(1, GlobalStatus::Committing), GlobalStatus::Begin),
            // The second decision loses: the status is no longer Begin.
            StoreOp::if_status(
                set_status(1, GlobalStatus::Rollbacking),
                GlobalStatus::Begin,
            ),
            StoreOp::if_status(
                set_status(2, GlobalStatus::Rollbacking),
                GlobalStatus::Begin,
            ),
        ],
    );
    assert_eq!(
        outcomes,
        vec![
            OpOutcome::Applied,
            OpOutcome::StatusMismatch {
                actual: GlobalStatus::Committing
            },
            OpOutcome::NotFound,
        ]
    );
    // A condition guards any record of the transaction, e.g. a branch joining only while Begin.
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[StoreOp::if_status(
            Record::BranchAdd(branch(1, 10, BranchStatus::Registered)),
            GlobalStatus::Begin,
        )],
    );
    assert_eq!(
        outcomes,
        vec![OpOutcome::StatusMismatch {
            actual: GlobalStatus::Committing
        }]
    );
    assert_eq!(model.locked_rows(), 0, "a refused branch takes no row");
    let mut store = reopen(backend, &dir, store, &model, "after compare-and-set");
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[StoreOp::if_status(
            set_status(1, GlobalStatus::Committed),
            GlobalStatus::Committing,
        )],
    );
    assert_eq!(outcomes, vec![OpOutcome::Applied]);
    let store = reopen(
        backend,
        &dir,
        store,
        &model,
        "after a second compare-and-set",
    );
    drop(store);
}

fn at_branch(tx: i64, id: i64, lock_key: &str) -> Record {
    let mut b = branch(tx, id, BranchStatus::Registered);
    b.lock_key = lock_key.into();
    Record::BranchAdd(b)
}

/// AT branches take their rows all or nothing; another transaction's row is a conflict that
/// names its holder; the same transaction may lock a row again; removal releases.
pub fn lock_conflicts<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
            at_branch(1, 11, "stock:1,2;orders:7"),
        ],
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::put(at_branch(2, 21, "stock:3,2")),
            // Re-entrant: transaction 1 locks row 2 again, and a new one.
            StoreOp::put(at_branch(1, 12, "stock:2,4")),
        ],
    );
    let OpOutcome::LockConflict(conflict) = &outcomes[0] else {
        panic!("expected a lock conflict, got {outcomes:?}");
    };
    assert_eq!(
        (conflict.table.as_str(), conflict.pk.as_str()),
        ("stock", "2")
    );
    assert_eq!(conflict.transaction_id, TransactionId(1));
    assert_eq!(conflict.branch_id, BranchId(11));
    assert_eq!(outcomes[1], OpOutcome::Applied);
    let row = resource_row;
    let asked = [
        row("stock", "3"),
        row("stock", "2"),
        row("stock", "4"),
        row("orders", "7"),
    ];
    let holders = store.lock_holders(&asked).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holders, model.lock_holders(&asked));
    assert_eq!(
        holders.len(),
        3,
        "row 3 stays free: nothing of the refused branch is taken"
    );
    let mut store = reopen(backend, &dir, store, &model, "locks");
    // Still held after a reopen.
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[StoreOp::put(at_branch(2, 22, "orders:7"))],
    );
    assert!(matches!(outcomes[0], OpOutcome::LockConflict(_)));
    // Branch 11 goes: rows 1 and orders:7 are free, row 2 too (branch 12 found it held by its
    // own transaction and did not take it over), row 4 stays with branch 12.
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchRemove {
            transaction_id: TransactionId(1),
            branch_id: BranchId(11),
        }],
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::put(at_branch(2, 23, "stock:1,2;orders:7")),
            StoreOp::put(at_branch(2, 24, "stock:4")),
        ],
    );
    assert_eq!(outcomes[0], OpOutcome::Applied);
    assert!(matches!(outcomes[1], OpOutcome::LockConflict(_)));
    // Removing a transaction releases the rows of every branch it still has.
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalRemove {
            transaction_id: TransactionId(1),
        }],
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[StoreOp::put(at_branch(2, 24, "stock:4"))],
    );
    assert_eq!(outcomes[0], OpOutcome::Applied);
    let store = reopen(backend, &dir, store, &model, "locks released");
    drop(store);
}

/// Inside one batch, the order of a release and a take decides who gets a row: a row a
/// removed branch, a finished decision or a removed transaction frees is free for the ops
/// after it (also for another branch of the same transaction), not for the ops before it.
pub fn rows_freed_within_a_batch<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
            Record::GlobalAdd(global(3, GlobalStatus::Begin)),
            at_branch(1, 11, "stock:1"),
            at_branch(3, 31, "stock:20"),
            at_branch(3, 33, "stock:30"),
        ],
    );
    let remove = |tx: i64, branch: i64| {
        StoreOp::put(Record::BranchRemove {
            transaction_id: TransactionId(tx),
            branch_id: BranchId(branch),
        })
    };
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            remove(1, 11),
            StoreOp::put(at_branch(2, 21, "stock:1")),
            StoreOp::put(at_branch(1, 13, "stock:1")),
        ],
    );
    assert_eq!(outcomes[1], OpOutcome::Applied);
    assert!(matches!(outcomes[2], OpOutcome::LockConflict(_)));
    // The same transaction, alone in its batch: branch 31's row goes to branch 32.
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[remove(3, 31), StoreOp::put(at_branch(3, 32, "stock:20"))],
    );
    assert_eq!(outcomes, [OpOutcome::Applied, OpOutcome::Applied]);
    let row = |pk: &str| resource_row("stock", pk);
    let holders = store
        .lock_holders(&[row("20")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holders, model.lock_holders(&[row("20")]));
    assert_eq!(holders.len(), 1, "branch 32 holds the row branch 31 let go");
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::put(at_branch(1, 14, "stock:9")),
            // A take before the release: still held.
            StoreOp::put(at_branch(2, 22, "stock:30")),
            StoreOp::put(Record::GlobalRemove {
                transaction_id: TransactionId(3),
            }),
            StoreOp::put(set_status(1, GlobalStatus::Committing)),
            StoreOp::put(at_branch(2, 23, "stock:9,30")),
        ],
    );
    assert_eq!(outcomes[0], OpOutcome::Applied);
    assert!(matches!(outcomes[1], OpOutcome::LockConflict(_)));
    assert_eq!(outcomes[4], OpOutcome::Applied);
    let asked: Vec<RowKey> = ["1", "9", "20", "30"].into_iter().map(row).collect();
    let holders = store.lock_holders(&asked).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holders, model.lock_holders(&asked));
    let store = reopen(backend, &dir, store, &model, "rows freed within a batch");
    drop(store);
}

/// Rows a batch creates and changes or removes again in the same batch end as the last op
/// leaves them: a store that writes a batch's net changes at once must fold them (an added
/// transaction's later status, an added branch's later update, rows taken and let go).
pub fn changes_undone_within_a_batch<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(global(5, GlobalStatus::Begin))],
    );
    let mut data = global(1, GlobalStatus::Begin);
    data.application_data = "first".into();
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            // Added, its branch added and updated, then decided: the rows go again.
            StoreOp::put(Record::GlobalAdd(data)),
            StoreOp::put(at_branch(1, 11, "stock:1,2")),
            StoreOp::put(Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(11),
                status: BranchStatus::PhaseOneDone,
                application_data: Some("updated".into()),
            }),
            StoreOp::put(set_status(1, GlobalStatus::Committing)),
            // Added with a branch and rows, then removed.
            StoreOp::put(Record::GlobalAdd(global(2, GlobalStatus::Begin))),
            StoreOp::put(at_branch(2, 21, "stock:3")),
            StoreOp::put(Record::GlobalRemove {
                transaction_id: TransactionId(2),
            }),
            // A branch added with rows and removed; another of its transaction stays.
            StoreOp::put(Record::GlobalAdd(global(3, GlobalStatus::Begin))),
            StoreOp::put(at_branch(3, 31, "stock:4")),
            StoreOp::put(at_branch(3, 32, "stock:5")),
            StoreOp::put(Record::BranchRemove {
                transaction_id: TransactionId(3),
                branch_id: BranchId(31),
            }),
            // A stored transaction updated twice and a new branch of it updated twice.
            StoreOp::put(set_status(5, GlobalStatus::Committing)),
            StoreOp::put(at_branch(5, 51, "")),
            StoreOp::put(Record::BranchUpdate {
                transaction_id: TransactionId(5),
                branch_id: BranchId(51),
                status: BranchStatus::PhaseTwoCommitFailedRetryable,
                application_data: None,
            }),
            StoreOp::put(Record::BranchUpdate {
                transaction_id: TransactionId(5),
                branch_id: BranchId(51),
                status: BranchStatus::PhaseTwoCommitted,
                application_data: None,
            }),
            StoreOp::put(set_status(5, GlobalStatus::CommitRetrying)),
        ],
    );
    assert!(
        outcomes.iter().all(|o| *o == OpOutcome::Applied),
        "{outcomes:?}"
    );
    let row = |pk: &str| resource_row("stock", pk);
    let asked: Vec<RowKey> = ["1", "2", "3", "4", "5"].into_iter().map(row).collect();
    let holders = store.lock_holders(&asked).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holders, model.lock_holders(&asked));
    assert_eq!(holders.len(), 1, "only branch 32 holds a row: {holders:?}");
    let store = reopen(
        backend,
        &dir,
        store,
        &model,
        "changes undone within a batch",
    );
    drop(store);
}

/// Outcomes other than `Applied` in a batch leave the other operations of the batch intact.
pub fn a_lost_race_does_not_abort_the_batch<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            at_branch(1, 11, "stock:1"),
        ],
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::put(Record::GlobalAdd(global(2, GlobalStatus::Begin))),
            StoreOp::put(at_branch(2, 21, "stock:5")),
            StoreOp::put(at_branch(2, 22, "stock:1")),
            StoreOp::if_status(
                set_status(1, GlobalStatus::Committing),
                GlobalStatus::Rollbacking,
            ),
            StoreOp::put(Record::BranchUpdate {
                transaction_id: TransactionId(2),
                branch_id: BranchId(21),
                status: BranchStatus::PhaseOneDone,
                application_data: Some("after the conflicts".into()),
            }),
            StoreOp::put(Record::GlobalAdd(global(3, GlobalStatus::Begin))),
        ],
    );
    assert_eq!(outcomes[0], OpOutcome::Applied);
    assert_eq!(outcomes[1], OpOutcome::Applied);
    assert!(matches!(outcomes[2], OpOutcome::LockConflict(_)));
    assert!(matches!(outcomes[3], OpOutcome::StatusMismatch { .. }));
    assert_eq!(outcomes[4], OpOutcome::Applied);
    assert_eq!(outcomes[5], OpOutcome::Applied);
    let store = reopen(backend, &dir, store, &model, "batch with lost races");
    drop(store);
}

/// Reads see every applied operation at once, before and after a reopen.
pub fn read_your_writes<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    fn check<B: Backend>(backend: &B, store: &dyn SessionStore, model: &StoreState, what: &str) {
        for id in [1, 2, 3, 4] {
            let stored = store
                .transaction(TransactionId(id))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let expected = model.transaction(TransactionId(id));
            assert_eq!(
                comparable(backend, None, stored.into_iter()),
                comparable(backend, Some(model), expected.into_iter()),
                "{what}: transaction {id}"
            );
        }
        for statuses in [
            &[GlobalStatus::Begin][..],
            &[GlobalStatus::Committing, GlobalStatus::Rollbacking],
            &[GlobalStatus::Finished],
        ] {
            let ids = |txs: Vec<ferrata_core::StoredTransaction>| -> Vec<i64> {
                txs.iter().map(|tx| tx.global.transaction_id.0).collect()
            };
            let stored = store
                .transactions_by_status(statuses, 10)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                ids(stored),
                ids(model.transactions_by_status(statuses, 10)),
                "{what}: by status {statuses:?}"
            );
        }
        let first = store
            .transactions_by_status(&[GlobalStatus::Begin], 1)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(first.len() <= 1, "{what}: the limit is kept");
    }
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
            Record::GlobalAdd(global(3, GlobalStatus::Begin)),
            at_branch(1, 11, "stock:1"),
            Record::BranchAdd(branch(1, 12, BranchStatus::Registered)),
        ],
    );
    check(backend, store.as_ref(), &model, "after adds");
    append(
        store.as_mut(),
        &mut model,
        &[
            set_status(2, GlobalStatus::Committing),
            set_status(3, GlobalStatus::Rollbacking),
            Record::BranchUpdate {
                transaction_id: TransactionId(1),
                branch_id: BranchId(12),
                status: BranchStatus::PhaseOneDone,
                application_data: Some("{\"k\":1}".into()),
            },
        ],
    );
    check(backend, store.as_ref(), &model, "after updates");
    let store = reopen(backend, &dir, store, &model, "read your writes");
    check(backend, store.as_ref(), &model, "after reopen");
    drop(store);
}

/// One holder at a time; the holder renews; another takes over only after expiry; only the
/// holder releases.
pub fn leases<B: Backend>(backend: &mut B) {
    let (_dir, mut store, mut model) = start(backend);
    let both = |store: &mut dyn SessionStore,
                model: &mut StoreState,
                name: &str,
                holder: &str,
                ttl_ms: i64,
                now_ms: i64|
     -> LeaseOutcome {
        let got = store
            .try_lease(name, holder, ttl_ms, now_ms)
            .unwrap_or_else(|e| panic!("try_lease failed: {e}"));
        assert_eq!(got, model.try_lease(name, holder, ttl_ms, now_ms));
        got
    };
    let t0 = 1_700_000_000_000i64;
    assert_eq!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-a",
            1_000,
            t0
        ),
        LeaseOutcome::Held {
            expires_at_ms: t0 + 1_000
        }
    );
    let LeaseOutcome::Taken(lease) = both(
        store.as_mut(),
        &mut model,
        "ferrata-test",
        "node-b",
        1_000,
        t0 + 500,
    ) else {
        panic!("node-b must not take a live lease");
    };
    assert_eq!(lease.holder, "node-a");
    assert_eq!(lease.expires_at_ms, t0 + 1_000);
    // Renewal extends it.
    assert_eq!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-a",
            1_000,
            t0 + 900
        ),
        LeaseOutcome::Held {
            expires_at_ms: t0 + 1_900
        }
    );
    assert!(matches!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-b",
            1_000,
            t0 + 1_500
        ),
        LeaseOutcome::Taken(_)
    ));
    // Another lease name is independent.
    assert!(matches!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-other",
            "node-b",
            1_000,
            t0 + 1_500
        ),
        LeaseOutcome::Held { .. }
    ));
    // Expired: node-b takes it over, and node-a can no longer release it.
    assert_eq!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-b",
            1_000,
            t0 + 2_000
        ),
        LeaseOutcome::Held {
            expires_at_ms: t0 + 3_000
        }
    );
    let released = store
        .release_lease("ferrata-test", "node-a")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(released, model.release_lease("ferrata-test", "node-a"));
    assert!(!released);
    let released = store
        .release_lease("ferrata-test", "node-b")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(released, model.release_lease("ferrata-test", "node-b"));
    assert!(released);
    // Released: free at once for anyone.
    assert!(matches!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-a",
            1_000,
            t0 + 2_100
        ),
        LeaseOutcome::Held { .. }
    ));
    // Taking from a named previous holder: only from that one while the lease is live.
    let mut take_from = |previous: &str, holder: &str, now_ms: i64| -> LeaseOutcome {
        let got = store
            .take_lease_from("ferrata-test", holder, previous, 1_000, now_ms)
            .unwrap_or_else(|e| panic!("take_lease_from failed: {e}"));
        assert_eq!(
            got,
            model.take_lease_from("ferrata-test", holder, previous, 1_000, now_ms)
        );
        got
    };
    let LeaseOutcome::Taken(lease) = take_from("node-x", "node-c", t0 + 2_200) else {
        panic!("node-c must not take node-a's live lease by naming node-x");
    };
    assert_eq!(lease.holder, "node-a");
    assert_eq!(
        take_from("node-a", "node-c", t0 + 2_200),
        LeaseOutcome::Held {
            expires_at_ms: t0 + 3_200
        }
    );
    // The holder it was taken from cannot renew it.
    assert!(matches!(
        both(
            store.as_mut(),
            &mut model,
            "ferrata-test",
            "node-a",
            1_000,
            t0 + 2_300
        ),
        LeaseOutcome::Taken(_)
    ));
}

/// Two stores on a new place reserving their first ids at the same moment (nodes starting
/// together) get disjoint ranges.
pub fn concurrent_first_reservations<B: Backend>(backend: &mut B) {
    for round in 0..5 {
        let place = backend.fresh();
        let (first, _) = backend.open(&place);
        let (second, _) = backend.open(&place);
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let reserve = |mut store: Box<dyn SessionStore>| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let range = store
                    .reserve_ids(1_000)
                    .unwrap_or_else(|e| panic!("reserve_ids failed: {e}"));
                (range, store)
            })
        };
        let (a, b) = (reserve(first), reserve(second));
        let (a, _a_store) = a.join().expect("first reserving thread");
        let (b, _b_store) = b.join().expect("second reserving thread");
        assert!(
            a.end <= b.start || b.end <= a.start,
            "round {round}: both stores were given ids of {a:?} and {b:?}"
        );
        assert_eq!((a.end - a.start, b.end - b.start), (1_000, 1_000));
    }
}

/// Transactions read by the TC node that began them (their XID prefix).
pub fn reads_by_node<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    let on_node = |id: i64, node: &str| {
        let mut global = global(id, GlobalStatus::Begin);
        global.xid = format!("{node}:{id}");
        Record::GlobalAdd(global)
    };
    append(
        store.as_mut(),
        &mut model,
        &[
            on_node(1, "10.0.0.1:8091"),
            on_node(2, "10.0.0.2:8091"),
            on_node(3, "10.0.0.1:8091"),
            // Starts like the first node's prefix, but is another node.
            on_node(4, "10.0.0.1:80911"),
            on_node(5, "[::1]:8091"),
            at_branch(3, 31, "stock:3"),
        ],
    );
    fn check<B: Backend>(backend: &B, store: &dyn SessionStore, model: &StoreState, what: &str) {
        let prefixes = store
            .xid_prefixes()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(prefixes, model.xid_prefixes(), "{what}: prefixes");
        assert_eq!(
            prefixes,
            [
                "10.0.0.1:8091",
                "10.0.0.1:80911",
                "10.0.0.2:8091",
                "[::1]:8091"
            ],
            "{what}: prefixes"
        );
        for prefix in &prefixes {
            let stored = store
                .transactions_of_node(prefix)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                comparable(backend, None, stored.into_iter()),
                comparable(
                    backend,
                    Some(model),
                    model.transactions_of_node(prefix).into_iter()
                ),
                "{what}: transactions of {prefix}"
            );
        }
        let node_one: Vec<i64> = store
            .transactions_of_node("10.0.0.1:8091")
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .iter()
            .map(|tx| tx.global.transaction_id.0)
            .collect();
        assert_eq!(node_one, [1, 3], "{what}: one node's transactions");
    }
    check(backend, store.as_ref(), &model, "after adds");
    let store = reopen(backend, &dir, store, &model, "reads by node");
    check(backend, store.as_ref(), &model, "after reopen");
    drop(store);
}

/// Nodes announce themselves once or many times; every announced node is listed, sorted.
pub fn announced_nodes<B: Backend>(backend: &mut B) {
    let (_dir, mut store, mut model) = start(backend);
    let none = store.nodes().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(none, model.nodes());
    assert!(none.is_empty(), "a new store knows no node: {none:?}");
    for node in [
        "10.0.0.2:8091",
        "10.0.0.1:8091",
        "10.0.0.2:8091",
        "[::1]:8091",
    ] {
        store
            .announce_node(node)
            .unwrap_or_else(|e| panic!("announce {node}: {e}"));
        model.announce_node(node);
        assert_eq!(
            store.nodes().unwrap_or_else(|e| panic!("{e}")),
            model.nodes()
        );
    }
    assert_eq!(
        model.nodes(),
        ["10.0.0.1:8091", "10.0.0.2:8091", "[::1]:8091"]
    );
}

/// Reserved id ranges never overlap, also across a reopen.
pub fn id_reservation<B: Backend>(backend: &mut B) {
    let (dir, mut store, model) = start(backend);
    let reserve = |store: &mut dyn SessionStore, count: i64| {
        let range = store
            .reserve_ids(count)
            .unwrap_or_else(|e| panic!("reserve_ids failed: {e}"));
        assert_eq!(range.end - range.start, count, "{range:?}");
        assert!(range.start > 0, "ids are positive: {range:?}");
        range
    };
    let first = reserve(store.as_mut(), 100);
    let second = reserve(store.as_mut(), 1_000);
    assert!(second.start >= first.end, "{first:?} then {second:?}");
    drop(store);
    let (mut store, _) = backend.open(&dir);
    let third = reserve(store.as_mut(), 10);
    assert!(
        third.start >= second.end,
        "{second:?} then {third:?} after a reopen"
    );
    drop(model);
}

/// Values at a backend's limits are stored; one character more is refused with a reason and
/// changes nothing.
pub fn limits<B: Backend>(backend: &mut B) {
    let (dir, mut store, mut model) = start(backend);
    let limits = store.limits();
    let Some(data_limit) = limits.application_data_chars else {
        return;
    };
    let mut at_limit = global(1, GlobalStatus::Begin);
    at_limit.application_data = "é".repeat(data_limit);
    let mut over = global(2, GlobalStatus::Begin);
    over.application_data = "é".repeat(data_limit + 1);
    let mut long_pk = branch(1, 11, BranchStatus::Registered);
    long_pk.lock_key = format!(
        "stock:{}",
        "9".repeat(limits.lock_pk_chars.unwrap_or(64) + 1)
    );
    let outcomes = apply_ops(
        store.as_mut(),
        &mut model,
        &[
            StoreOp::put(Record::GlobalAdd(at_limit)),
            StoreOp::put(Record::GlobalAdd(over)),
            StoreOp::put(Record::BranchAdd(long_pk)),
        ],
    );
    assert_eq!(outcomes[0], OpOutcome::Applied);
    assert!(matches!(outcomes[1], OpOutcome::Unstorable { .. }));
    if limits.lock_pk_chars.is_some() {
        assert!(matches!(outcomes[2], OpOutcome::Unstorable { .. }));
    }
    let store = reopen(backend, &dir, store, &model, "limits");
    drop(store);
}

/// Two stores open on one shared place (two nodes on one database) see each other's writes:
/// locks conflict across them, one compare-and-set wins, leases and id ranges are exclusive.
pub fn two_stores_on_one_place<B: Backend>(backend: &mut B) {
    let (dir, mut a, mut model) = start(backend);
    let (mut b, _) = backend.open(&dir);
    append(
        a.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(1, GlobalStatus::Begin)),
            Record::GlobalAdd(global(2, GlobalStatus::Begin)),
            at_branch(1, 11, "stock:1"),
        ],
    );
    // Node b sees node a's lock.
    let outcomes = apply_ops(
        b.as_mut(),
        &mut model,
        &[StoreOp::put(at_branch(2, 21, "stock:1"))],
    );
    assert!(matches!(outcomes[0], OpOutcome::LockConflict(_)));
    // Both decide transaction 1: exactly one wins.
    let won_a = apply_ops(
        a.as_mut(),
        &mut model,
        &[StoreOp::if_status(
            set_status(1, GlobalStatus::Committing),
            GlobalStatus::Begin,
        )],
    );
    let won_b = apply_ops(
        b.as_mut(),
        &mut model,
        &[StoreOp::if_status(
            set_status(1, GlobalStatus::Rollbacking),
            GlobalStatus::Begin,
        )],
    );
    assert_eq!(won_a, vec![OpOutcome::Applied]);
    assert!(matches!(won_b[0], OpOutcome::StatusMismatch { .. }));
    let held = a.try_lease("ferrata-shared", "node-a", 10_000, 1_000);
    assert!(matches!(held, Ok(LeaseOutcome::Held { .. })), "{held:?}");
    let taken = b.try_lease("ferrata-shared", "node-b", 10_000, 2_000);
    assert!(matches!(taken, Ok(LeaseOutcome::Taken(_))), "{taken:?}");
    drop(b);
    let mut a = reopen(backend, &dir, a, &model, "two stores");
    let (mut b, _) = backend.open(&dir);
    let mut ranges = Vec::new();
    for round in 0..20 {
        let store = if round % 2 == 0 { &mut a } else { &mut b };
        let range = store
            .reserve_ids(1 + round)
            .unwrap_or_else(|e| panic!("reserve_ids failed: {e}"));
        ranges.push(range);
    }
    ranges.sort_by_key(|r| r.start);
    for pair in ranges.windows(2) {
        assert!(pair[0].end <= pair[1].start, "overlapping ranges {pair:?}");
    }
}

/// SplitMix64: enough randomness for reproducible cases without a dependency (also used by the
/// store's own randomized tests).
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn string(&mut self) -> String {
        const PARTS: &[&str] = &["a", "Z", "0", ":", ",", " ", "é", "中", "🙂", "\u{0}", "\n"];
        (0..self.below(12)).map(|_| self.pick(PARTS)).collect()
    }
}

fn random_record(rng: &mut Rng, model: &SessionTable, next_id: &mut i64) -> Record {
    let txs: Vec<i64> = model
        .transactions()
        .map(|tx| tx.global.transaction_id.0)
        .collect();
    let existing = |rng: &mut Rng| -> i64 {
        if txs.is_empty() || rng.below(20) == 0 {
            // Sometimes an id with no live session: replay must ignore it.
            1_000_000 + rng.below(10) as i64
        } else {
            rng.pick(&txs)
        }
    };
    let branch_of = |rng: &mut Rng, tx: i64| -> i64 {
        match model.get(TransactionId(tx)) {
            Some(t) if !t.branches.is_empty() && rng.below(5) != 0 => {
                let pick = rng.below(t.branches.len() as u64) as usize;
                t.branches.ids().nth(pick).unwrap_or_default().0
            }
            _ => tx * 1000 + rng.below(8) as i64,
        }
    };
    match rng.below(100) {
        0..=24 => {
            *next_id += 1;
            let mut g = global(*next_id, rng.pick(GlobalStatus::ALL));
            g.application_data = rng.string();
            // A transaction's xid is unique and never changes (it is a database's key).
            g.xid = format!("{}:{}", rng.string(), *next_id);
            g.timeout_ms = rng.next_u64() as i32;
            Record::GlobalAdd(g)
        }
        25..=29 => {
            let tx = existing(rng);
            let mut g = global(tx, rng.pick(GlobalStatus::ALL));
            if let Some(stored) = model.get(TransactionId(tx)) {
                g.xid = stored.global.xid.clone();
            }
            g.transaction_name = rng.string();
            Record::GlobalAdd(g)
        }
        30..=49 => {
            let tx = existing(rng);
            let mut b = branch(tx, branch_of(rng, tx), rng.pick(BranchStatus::ALL));
            b.branch_type = rng.pick(BranchType::ALL);
            b.lock_key = rng.string();
            b.application_data = rng.string();
            Record::BranchAdd(b)
        }
        50..=64 => Record::GlobalUpdate {
            transaction_id: TransactionId(existing(rng)),
            status: rng.pick(GlobalStatus::ALL),
        },
        65..=82 => {
            let tx = existing(rng);
            Record::BranchUpdate {
                transaction_id: TransactionId(tx),
                branch_id: BranchId(branch_of(rng, tx)),
                status: rng.pick(BranchStatus::ALL),
                application_data: if rng.below(2) == 0 {
                    None
                } else {
                    Some(rng.string())
                },
            }
        }
        83..=91 => {
            let tx = existing(rng);
            Record::BranchRemove {
                transaction_id: TransactionId(tx),
                branch_id: BranchId(branch_of(rng, tx)),
            }
        }
        _ => Record::GlobalRemove {
            transaction_id: TransactionId(existing(rng)),
        },
    }
}

/// Random batches with random reopens and compactions, checked against the model.
pub fn randomized<B: Backend>(backend: &mut B) {
    for seed in 0..10u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xFE44A7A);
        let (dir, mut store, mut model) = start(backend);
        let mut next_id = 0i64;
        for step in 0..25 {
            let n = 1 + rng.below(12);
            let mut batch = Vec::new();
            let mut shadow = model.table().clone();
            for _ in 0..n {
                // Generate against the state as it will be when this record applies.
                let record = random_record(&mut rng, &shadow, &mut next_id);
                shadow.apply(&record);
                batch.push(record);
            }
            append(store.as_mut(), &mut model, &batch);
            match rng.below(10) {
                0 => {
                    let what = format!("seed {seed} step {step}: reopen");
                    store = reopen(backend, &dir, store, &model, &what);
                }
                1 => compact(store.as_mut(), &model),
                _ => {}
            }
        }
        let what = format!("seed {seed}: final reopen");
        let store = reopen(backend, &dir, store, &model, &what);
        drop(store);
    }
}
