//! The conformance suite every [`SessionStore`] backend must pass: each check drives a store
//! through a factory that opens or reopens it at a directory, with [`SessionTable`] as the model.

use std::path::{Path, PathBuf};

use ferrata_core::{BranchId, BranchSession, GlobalSession, Record, SessionTable, TransactionId};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};

use crate::SessionStore;

/// Opens the store rooted at a directory, or reopens it after the previous instance was
/// dropped, returning it with the state it recovered.
pub type Factory<'a> = dyn FnMut(&Path) -> (Box<dyn SessionStore>, SessionTable) + 'a;

/// Runs every check of the suite.
pub fn run_all(factory: &mut Factory<'_>) {
    empty_open(factory);
    empty_append_is_a_no_op(factory);
    append_then_reopen(factory);
    reopen_is_idempotent(factory);
    update_and_remove(factory);
    branch_order_preserved(factory);
    many_batches(factory);
    compact_then_reopen(factory);
    append_after_compact_then_reopen(factory);
    background_compaction(factory);
    large_values(factory);
    randomized(factory);
}

/// A fresh directory that lives as long as the returned guard.
struct Dir {
    // Held only to delete the directory on drop.
    _guard: tempfile::TempDir,
    path: PathBuf,
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

fn append(store: &mut dyn SessionStore, model: &mut SessionTable, records: &[Record]) {
    if let Err(e) = store.append(records) {
        panic!("append of {} records failed: {e}", records.len());
    }
    for record in records {
        model.apply(record);
    }
}

fn compact(store: &mut dyn SessionStore, model: &SessionTable) {
    if let Err(e) = store.compact(&mut model.snapshot_records()) {
        panic!("compact failed: {e}");
    }
}

/// Reopens and checks the recovered state against the model.
fn reopen(
    factory: &mut Factory<'_>,
    dir: &Path,
    store: Box<dyn SessionStore>,
    model: &SessionTable,
    what: &str,
) -> Box<dyn SessionStore> {
    drop(store);
    let (store, recovered) = factory(dir);
    assert_eq!(
        &recovered, model,
        "{what}: recovered state differs from the model"
    );
    store
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

/// A branch session with plausible field values.
pub fn branch(transaction_id: i64, branch_id: i64, status: BranchStatus) -> BranchSession {
    BranchSession {
        branch_id: BranchId(branch_id),
        transaction_id: TransactionId(transaction_id),
        resource_id: "jdbc:mysql://db/stock".into(),
        lock_key: format!("stock:{branch_id}"),
        branch_type: BranchType::At,
        status,
        client_id: "stock-service:10.0.0.2:40000".into(),
        application_data: String::new(),
    }
}

/// A new store is empty, and stays empty across a reopen.
pub fn empty_open(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (store, table) = factory(&dir.path);
    assert!(table.is_empty(), "a new store must recover an empty table");
    let store = reopen(
        factory,
        &dir.path,
        store,
        &SessionTable::new(),
        "empty reopen",
    );
    drop(store);
}

/// Appending no records changes nothing.
pub fn empty_append_is_a_no_op(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
    append(store.as_mut(), &mut model, &[]);
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(global(1, GlobalStatus::Begin))],
    );
    append(store.as_mut(), &mut model, &[]);
    let store = reopen(factory, &dir.path, store, &model, "empty appends");
    drop(store);
}

/// Appended records are all recovered, in one batch or several.
pub fn append_then_reopen(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
    assert_eq!(model.len(), 2);
    let store = reopen(factory, &dir.path, store, &model, "append then reopen");
    drop(store);
}

/// Reopening without writing does not change the state, however often.
pub fn reopen_is_idempotent(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
    append(
        store.as_mut(),
        &mut model,
        &[
            Record::GlobalAdd(global(7, GlobalStatus::Committing)),
            Record::BranchAdd(branch(7, 70, BranchStatus::PhaseOneDone)),
        ],
    );
    for round in 0..3 {
        store = reopen(
            factory,
            &dir.path,
            store,
            &model,
            &format!("reopen {round}"),
        );
    }
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalUpdate {
            transaction_id: TransactionId(7),
            status: GlobalStatus::Committed,
        }],
    );
    let store = reopen(factory, &dir.path, store, &model, "append after reopens");
    drop(store);
}

/// Updates and removes follow [`SessionTable::apply`], including records for unknown sessions.
pub fn update_and_remove(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
        model.get(TransactionId(1)).map(|tx| tx.global.status),
        Some(GlobalStatus::Committing)
    );
    assert!(model.get(TransactionId(3)).is_none());
    store = reopen(factory, &dir.path, store, &model, "updates and removes");

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
        model.get(TransactionId(1)).map(|tx| tx.branches.len()),
        Some(2)
    );
    let store = reopen(factory, &dir.path, store, &model, "re-add and replace");
    drop(store);
}

/// Branches come back in registration order, not id order; a re-added branch keeps its place.
pub fn branch_order_preserved(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
    assert_eq!(order(&model), vec![50, 3, 1, 40, 27]);
    store = reopen(factory, &dir.path, store, &model, "branch order");
    compact(store.as_mut(), &model);
    drop(store);
    let (store, recovered) = factory(&dir.path);
    assert_eq!(
        order(&recovered),
        vec![50, 3, 1, 40, 27],
        "after compaction"
    );
    assert_eq!(recovered, model);
    drop(store);
}

/// Many small batches, as group commit under light load produces.
pub fn many_batches(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
    let store = reopen(factory, &dir.path, store, &model, "many batches");
    drop(store);
}

fn populated(store: &mut dyn SessionStore, model: &mut SessionTable) {
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
pub fn compact_then_reopen(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
    populated(store.as_mut(), &mut model);
    compact(store.as_mut(), &model);
    store = reopen(factory, &dir.path, store, &model, "compact then reopen");
    // Compacting an unchanged state, and an empty one, works too.
    compact(store.as_mut(), &model);
    store = reopen(factory, &dir.path, store, &model, "second compaction");
    let empty = SessionTable::new();
    compact(store.as_mut(), &empty);
    let store = reopen(factory, &dir.path, store, &empty, "compaction to empty");
    drop(store);
}

/// Records appended after a compaction apply on top of the snapshot.
pub fn append_after_compact_then_reopen(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
    store = reopen(factory, &dir.path, store, &model, "append after compact");
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
    let store = reopen(factory, &dir.path, store, &model, "compact, append, reopen");
    drop(store);
}

/// Compacts through `begin_compaction` with the job on another thread while appends go on
/// (or in place, for stores that cannot): the snapshot and every append made meanwhile survive.
fn compact_in_background(
    store: &mut dyn SessionStore,
    model: &mut SessionTable,
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
    let snapshot: Vec<Record> = model.snapshot_records().collect();
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
pub fn background_compaction(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
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
    store = reopen(factory, &dir.path, store, &model, "background compaction");
    let more = [Record::GlobalUpdate {
        transaction_id: TransactionId(100),
        status: GlobalStatus::Committing,
    }];
    compact_in_background(store.as_mut(), &mut model, &more);
    compact_in_background(store.as_mut(), &mut model, &[]);
    let store = reopen(
        factory,
        &dir.path,
        store,
        &model,
        "second background compaction",
    );
    drop(store);
}

/// 64 KiB application data, large lock keys, unicode and empty strings survive unchanged.
pub fn large_values(factory: &mut Factory<'_>) {
    let dir = fresh_dir();
    let (mut store, _) = factory(&dir.path);
    let mut model = SessionTable::new();
    let mut g = global(1, GlobalStatus::Begin);
    g.application_data = "x".repeat(64 * 1024);
    g.transaction_name = "下单 🛒 café naïve Ωmega".into();
    g.application_id = String::new();
    let mut b = branch(1, 10, BranchStatus::Registered);
    b.lock_key = (0..20_000)
        .map(|i| format!("t:{i}"))
        .collect::<Vec<_>>()
        .join(",");
    b.application_data = "日本語テキスト\u{1F600}\u{0301}".repeat(3000);
    b.resource_id = "jdbc:postgresql://db/ордер".into();
    b.branch_type = BranchType::Tcc;
    append(
        store.as_mut(),
        &mut model,
        &[Record::GlobalAdd(g), Record::BranchAdd(b)],
    );
    append(
        store.as_mut(),
        &mut model,
        &[Record::BranchUpdate {
            transaction_id: TransactionId(1),
            branch_id: BranchId(10),
            status: BranchStatus::PhaseOneDone,
            application_data: Some("ü".repeat(40_000)),
        }],
    );
    store = reopen(factory, &dir.path, store, &model, "large values");
    compact(store.as_mut(), &model);
    let store = reopen(factory, &dir.path, store, &model, "large values compacted");
    drop(store);
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
            g.xid = rng.string();
            g.timeout_ms = rng.next_u64() as i32;
            Record::GlobalAdd(g)
        }
        25..=29 => {
            let mut g = global(existing(rng), rng.pick(GlobalStatus::ALL));
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
pub fn randomized(factory: &mut Factory<'_>) {
    for seed in 0..10u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xFE44A7A);
        let dir = fresh_dir();
        let (mut store, _) = factory(&dir.path);
        let mut model = SessionTable::new();
        let mut next_id = 0i64;
        for step in 0..25 {
            let n = 1 + rng.below(12);
            let mut batch = Vec::new();
            let mut shadow = model.clone();
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
                    store = reopen(factory, &dir.path, store, &model, &what);
                }
                1 => compact(store.as_mut(), &model),
                _ => {}
            }
        }
        let what = format!("seed {seed}: final reopen");
        let store = reopen(factory, &dir.path, store, &model, &what);
        drop(store);
    }
}
