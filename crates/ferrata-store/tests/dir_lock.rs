//! One server per data directory: `open` locks it, a second open fails with a message that
//! names the directory and the holder, and dropping the store releases it.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use ferrata_core::Record;
use ferrata_store::fault::FaultFs;
use ferrata_store::{LOCK_FILE_NAME, LogStore, LogStoreConfig, SessionStore, StoreError};

#[test]
fn a_second_open_of_the_same_directory_fails_until_the_first_store_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut first, _) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    first.append(&common::batch(1)).unwrap();

    let error = LogStore::open(LogStoreConfig::new(&dir)).unwrap_err();
    match &error {
        StoreError::Locked { dir: locked, pid } => {
            assert_eq!(locked, &dir);
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("another ferrata-server"), "{message}");
    // Repair must not run under a live server either.
    assert!(matches!(
        LogStore::repair(LogStoreConfig::new(&dir)),
        Err(StoreError::Locked { .. })
    ));
    // The failed attempts did not disturb the holder.
    first.append(&common::batch(3)).unwrap();

    drop(first);
    let (_, recovered) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(recovered.len(), 2);
    assert!(dir.join(LOCK_FILE_NAME).exists());
}

#[test]
fn the_lock_file_is_not_mistaken_for_data() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    std::fs::create_dir_all(&dir).unwrap();
    // A stale lock file from a server that died: its lock went with the process.
    std::fs::write(dir.join(LOCK_FILE_NAME), b"4242\n").unwrap();
    let (store, table) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    assert!(table.is_empty());
    let pid = std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
    drop(store);
}

#[test]
fn the_fault_backend_locks_too_and_a_crash_releases_the_lock() {
    let fs = FaultFs::new();
    let (mut store, _) = common::open(&fs, common::config());
    assert!(matches!(
        LogStore::open_with(common::config(), fs.as_file_system()),
        Err(StoreError::Locked { .. })
    ));
    store
        .append(&[Record::IdReserve { next_free_id: 9 }])
        .unwrap();
    // The process holding the lock dies: its lock dies with it.
    fs.crash();
    let (_second, recovered) = common::open(&fs, common::config());
    assert_eq!(recovered.next_free_id(), 9);
    // The dead store's handles fail; dropping it must not release the new holder's lock.
    assert!(store.append(&common::batch(1)).is_err());
    drop(store);
    assert!(matches!(
        LogStore::open_with(common::config(), fs.as_file_system()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn a_compaction_job_keeps_the_directory_locked_until_it_is_done() {
    let fs = FaultFs::new();
    let (mut store, _) = common::open(&fs, common::config());
    let mut model = ferrata_core::SessionTable::new();
    common::append(&mut store, &mut model, &common::batch(1));
    let job = store.begin_compaction().unwrap().unwrap();
    drop(store);
    // The job may still delete segments: nobody else may open the directory yet.
    assert!(matches!(
        LogStore::open_with(common::config(), fs.as_file_system()),
        Err(StoreError::Locked { .. })
    ));
    job.run(&mut model.snapshot_records()).unwrap();
    let (_, recovered) = common::open(&fs, common::config());
    assert_eq!(recovered, model);
}
