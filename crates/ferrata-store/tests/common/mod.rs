//! Helpers shared by the store's integration tests: stores over the fault-injecting file
//! system, batches, and the model of the state they describe.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use ferrata_core::{Record, SessionTable, TransactionId};
use ferrata_proto::{BranchStatus, GlobalStatus};
use ferrata_store::conformance::{branch, global};
use ferrata_store::fault::FaultFs;
use ferrata_store::{LogStore, LogStoreConfig, SessionStore};

/// Where stores live on a [`FaultFs`] (its top-level directories always exist).
pub const DIR: &str = "/data/store";

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

pub fn config() -> LogStoreConfig {
    LogStoreConfig::new(DIR)
}

pub fn open(fs: &FaultFs, config: LogStoreConfig) -> (LogStore, SessionTable) {
    match LogStore::open_with(config, fs.as_file_system()) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

/// The segment files of a store directory on the real file system, in order.
pub fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

pub fn apply_all(table: &mut SessionTable, records: &[Record]) {
    for r in records {
        table.apply(r);
    }
}

pub fn applied(table: &SessionTable, records: &[Record]) -> SessionTable {
    let mut out = table.clone();
    apply_all(&mut out, records);
    out
}

/// A batch of several records touching existing and new sessions.
pub fn batch(tx: i64) -> Vec<Record> {
    vec![
        Record::GlobalAdd(global(tx, GlobalStatus::Begin)),
        Record::BranchAdd(branch(tx, tx * 10, BranchStatus::Registered)),
        Record::BranchAdd(branch(tx, tx * 10 + 1, BranchStatus::Registered)),
        Record::GlobalUpdate {
            transaction_id: TransactionId(1),
            status: GlobalStatus::Committing,
        },
        Record::GlobalRemove {
            transaction_id: TransactionId(2),
        },
    ]
}

/// A transaction carrying `bytes` of application data, to make checkpoints span chunks.
pub fn big(tx: i64, bytes: usize) -> Vec<Record> {
    let mut g = global(tx, GlobalStatus::Begin);
    g.application_data = "d".repeat(bytes);
    vec![Record::GlobalAdd(g)]
}

/// Appends and, on success, applies to the model; returns whether it was acknowledged.
pub fn append(store: &mut LogStore, model: &mut SessionTable, records: &[Record]) -> bool {
    match store.append(records) {
        Ok(()) => {
            apply_all(model, records);
            true
        }
        Err(_) => false,
    }
}

/// Segment file names in a FaultFs directory, in order.
pub fn segments(fs: &FaultFs, dir: &Path) -> Vec<String> {
    fs.files(dir)
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect()
}
