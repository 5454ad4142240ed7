//! LogStore: the shared conformance suite, then what only a file log can get wrong — torn
//! tails, damaged segments, interrupted compactions, rotation and the fsync discipline.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::wal_files;
use ferrata_core::{Record, SessionTable, TransactionId};
use ferrata_proto::{BranchStatus, GlobalStatus};
use ferrata_store::conformance::{self, branch, global};
use ferrata_store::{LogStore, LogStoreConfig, SessionStore, StoreError};

fn config(dir: &Path) -> LogStoreConfig {
    LogStoreConfig::new(dir)
}

fn open(config: LogStoreConfig) -> (LogStore, SessionTable) {
    match LogStore::open(config) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn apply_all(table: &mut SessionTable, records: &[Record]) {
    for r in records {
        table.apply(r);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// A batch of several records touching existing and new sessions.
fn batch(tx: i64) -> Vec<Record> {
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

#[test]
fn log_store_passes_the_conformance_suite() {
    conformance::run_all(&mut |dir: &Path| {
        let (store, table) = open(config(dir));
        (Box::new(store) as Box<dyn SessionStore>, table)
    });
}

#[test]
fn log_store_passes_the_conformance_suite_with_tiny_segments() {
    // Every few batches rotate, so replay crosses many segment boundaries.
    conformance::run_all(&mut |dir: &Path| {
        let mut config = config(dir);
        config.segment_bytes = 512;
        config.fsync = false;
        let (store, table) = open(config);
        (Box::new(store) as Box<dyn SessionStore>, table)
    });
}

/// Cutting the file anywhere inside the last batch recovers the state before it; the whole
/// batch recovers the state after it. Never an error, never part of a batch.
#[test]
fn torn_last_batch_recovers_before_or_after_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (mut store, _) = open(config(&dir));
    let mut before = SessionTable::new();
    for tx in 1..=5 {
        let records = batch(tx);
        store.append(&records).unwrap();
        apply_all(&mut before, &records);
    }
    let segment = wal_files(&dir).pop().unwrap();
    let start = file_len(&segment);
    let last = batch(6);
    store.append(&last).unwrap();
    drop(store);
    let end = file_len(&segment);
    let mut after = before.clone();
    apply_all(&mut after, &last);
    assert_ne!(before, after);
    let original = fs::read(&segment).unwrap();

    for cut in start..=end {
        let case = root.path().join(format!("cut-{cut}"));
        copy_dir(&dir, &case);
        let victim = case.join(segment.file_name().unwrap());
        OpenOptions::new()
            .write(true)
            .open(&victim)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (mut store, recovered) = open(config(&case));
        let expected = if cut == end { &after } else { &before };
        assert_eq!(
            &recovered, expected,
            "cut at {cut} (batch spans {start}..{end})"
        );
        // A cut that leaves only zero bytes of the batch looks like the unwritten end of a
        // preallocated segment: kept, and written over.
        let only_zeros_left = original[start as usize..cut as usize]
            .iter()
            .all(|b| *b == 0);
        let expected_len = match (cut == end, only_zeros_left) {
            (true, _) => end,
            (false, true) => cut,
            (false, false) => start,
        };
        assert_eq!(file_len(&victim), expected_len);

        // The repaired log accepts appends that survive the next recovery.
        let more = vec![Record::GlobalAdd(global(77, GlobalStatus::Begin))];
        store.append(&more).unwrap();
        drop(store);
        let mut expected = expected.clone();
        apply_all(&mut expected, &more);
        let (_, recovered) = open(config(&case));
        assert_eq!(recovered, expected, "append after repair at {cut}");
        fs::remove_dir_all(&case).unwrap();
    }

    // Garbage instead of a missing tail (pages of the last write persisted out of order).
    for (i, offset) in (start..end).step_by(7).enumerate() {
        let case = root.path().join(format!("garbage-{offset}"));
        copy_dir(&dir, &case);
        let mut bytes = original.clone();
        let fill = if i % 2 == 0 { 0x00 } else { 0xA5 };
        for b in &mut bytes[offset as usize..] {
            *b = fill;
        }
        fs::write(case.join(segment.file_name().unwrap()), &bytes).unwrap();
        let (_, recovered) = open(config(&case));
        assert_eq!(recovered, before, "garbage from {offset}");
        fs::remove_dir_all(&case).unwrap();
    }
}

#[test]
fn a_flipped_byte_in_an_older_segment_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let mut cfg = config(&dir);
    cfg.segment_bytes = 600;
    let (mut store, _) = open(cfg.clone());
    for tx in 1..=20 {
        store.append(&batch(tx)).unwrap();
    }
    drop(store);
    let files = wal_files(&dir);
    assert!(files.len() >= 3, "expected rotation, got {files:?}");
    let older = &files[1];
    let len = file_len(older);

    // A byte in a frame, and a byte in the header.
    for offset in [len / 2, 5] {
        let case = root.path().join(format!("flip-{offset}"));
        copy_dir(&dir, &case);
        let victim = case.join(older.file_name().unwrap());
        let mut bytes = fs::read(&victim).unwrap();
        bytes[offset as usize] ^= 0x01;
        fs::write(&victim, &bytes).unwrap();
        let mut cfg = cfg.clone();
        cfg.dir = case.clone();
        match LogStore::open(cfg) {
            Err(StoreError::Corrupt { path, .. }) => assert_eq!(path, victim),
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("opened a log with a damaged older segment (offset {offset})"),
        }
    }

    // The error message names the file and the offset.
    let case = root.path().join("message");
    copy_dir(&dir, &case);
    let victim = case.join(older.file_name().unwrap());
    let mut bytes = fs::read(&victim).unwrap();
    bytes[40] ^= 0xFF;
    fs::write(&victim, &bytes).unwrap();
    let mut cfg = cfg.clone();
    cfg.dir = case;
    let message = LogStore::open(cfg).unwrap_err().to_string();
    assert!(message.contains(&victim.display().to_string()), "{message}");
    assert!(message.contains("offset 24"), "{message}");
}

/// In the newest segment, damage followed by valid frames is not a torn write: acknowledged
/// batches would be lost by truncating, so recovery refuses instead.
#[test]
fn damage_before_valid_frames_in_the_last_segment_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (mut store, _) = open(config(&dir));
    store.append(&batch(1)).unwrap();
    let segment = wal_files(&dir).pop().unwrap();
    let first_end = file_len(&segment);
    store.append(&batch(2)).unwrap();
    store.append(&batch(3)).unwrap();
    drop(store);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[first_end as usize + 20] ^= 0x10;
    fs::write(&segment, &bytes).unwrap();
    match LogStore::open(config(&dir)) {
        Err(StoreError::Corrupt { offset, .. }) => assert_eq!(offset, first_end),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("silently dropped acknowledged batches"),
    }
}

/// Builds a log, then the checkpoint its compaction would write, but for a *different* state so
/// that the test can tell which one recovery used. Returns (log dir, checkpoint file, the empty
/// segment appends moved to, old state, checkpoint state).
fn log_and_checkpoint(root: &Path) -> (PathBuf, PathBuf, PathBuf, SessionTable, SessionTable) {
    let dir = root.join("log");
    let mut cfg = config(&dir);
    cfg.segment_bytes = 700;
    let (mut store, _) = open(cfg.clone());
    let mut old = SessionTable::new();
    for tx in 1..=10 {
        let records = batch(tx);
        store.append(&records).unwrap();
        apply_all(&mut old, &records);
        if tx == 5 {
            // An earlier checkpoint, so the log holds two once the new one is copied in.
            store.compact(&mut old.snapshot_records()).unwrap();
        }
    }
    drop(store);

    let mut snapshot = old.clone();
    snapshot.apply(&Record::GlobalRemove {
        transaction_id: TransactionId(3),
    });
    assert_ne!(snapshot, old);
    let scratch = root.join("scratch");
    copy_dir(&dir, &scratch);
    cfg.dir = scratch.clone();
    let (mut store, _) = open(cfg);
    store.compact(&mut snapshot.snapshot_records()).unwrap();
    drop(store);
    let mut files = wal_files(&scratch);
    assert_eq!(
        files.len(),
        2,
        "compaction deletes older segments, leaving the checkpoint and the append segment"
    );
    let active = files.pop().unwrap();
    let checkpoint = files.pop().unwrap();
    (dir, checkpoint, active, old, snapshot)
}

/// Format-1 writers wrote checkpoints in place, so a crash could leave one unfinished as the
/// newest file; such directories must still recover.
#[test]
fn interrupted_in_place_compaction_recovers_the_old_state() {
    let root = tempfile::tempdir().unwrap();
    let (dir, checkpoint, _, old, _) = log_and_checkpoint(root.path());
    let bytes = fs::read(&checkpoint).unwrap();
    let old_files = wal_files(&dir);
    // Any prefix of the checkpoint without its end frame: header only, mid-frame, all but the end.
    for cut in [
        0,
        10,
        24,
        40,
        bytes.len() / 2,
        bytes.len() - 17,
        bytes.len() - 1,
    ] {
        let case = root.path().join(format!("cut-{cut}"));
        copy_dir(&dir, &case);
        let target = case.join(checkpoint.file_name().unwrap());
        fs::write(&target, &bytes[..cut]).unwrap();
        let (mut store, recovered) = open(config(&case));
        assert_eq!(recovered, old, "checkpoint cut at {cut}");
        assert!(!target.exists(), "unfinished checkpoint is removed");
        assert_eq!(wal_files(&case).len(), old_files.len());
        // And the log keeps working after.
        store
            .append(&[Record::GlobalAdd(global(500, GlobalStatus::Begin))])
            .unwrap();
        drop(store);
        let (_, recovered) = open(config(&case));
        assert!(recovered.get(TransactionId(500)).is_some());
        fs::remove_dir_all(&case).unwrap();
    }
}

#[test]
fn finished_checkpoint_wins_over_leftover_old_segments() {
    let root = tempfile::tempdir().unwrap();
    let (dir, checkpoint, active, _, snapshot) = log_and_checkpoint(root.path());
    // Crash after the checkpoint was durable but before the old segments were deleted: with the
    // segment appends moved to (this format), and without it (format 1, where appends followed
    // the checkpoint in its own segment).
    for with_active in [true, false] {
        let case = root.path().join(format!("leftovers-{with_active}"));
        copy_dir(&dir, &case);
        fs::copy(&checkpoint, case.join(checkpoint.file_name().unwrap())).unwrap();
        if with_active {
            fs::copy(&active, case.join(active.file_name().unwrap())).unwrap();
        }
        let (mut store, recovered) = open(config(&case));
        assert_eq!(recovered, snapshot);
        assert_eq!(
            wal_files(&case).len(),
            1 + usize::from(with_active),
            "superseded segments are deleted"
        );
        let more = vec![Record::GlobalRemove {
            transaction_id: TransactionId(4),
        }];
        store.append(&more).unwrap();
        drop(store);
        let mut expected = snapshot.clone();
        apply_all(&mut expected, &more);
        assert_eq!(open(config(&case)).1, expected);
    }
}

#[test]
fn a_torn_segment_header_from_an_interrupted_rotation_is_discarded() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (mut store, _) = open(config(&dir));
    let mut model = SessionTable::new();
    let records = batch(1);
    store.append(&records).unwrap();
    apply_all(&mut model, &records);
    drop(store);
    let next = dir.join(format!("{:020}.wal", 2));
    fs::write(&next, b"FERRW").unwrap();
    let (mut store, recovered) = open(config(&dir));
    assert_eq!(recovered, model);
    assert!(!next.exists());
    store.append(&batch(2)).unwrap();
}

#[test]
fn unrelated_files_are_ignored() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("README"), b"hello").unwrap();
    fs::write(dir.join("1.wal"), b"not a segment name").unwrap();
    let (mut store, table) = open(config(&dir));
    assert!(table.is_empty());
    store.append(&batch(1)).unwrap();
}

#[test]
fn rotation_and_compaction_bookkeeping() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let mut cfg = config(&dir);
    cfg.segment_bytes = 1000;
    cfg.compact_after_bytes = 4000;
    let (mut store, _) = open(cfg.clone());
    let mut model = SessionTable::new();
    assert!(!store.wants_compaction());
    let mut tx = 0;
    while !store.wants_compaction() {
        tx += 1;
        let records = batch(tx);
        store.append(&records).unwrap();
        apply_all(&mut model, &records);
    }
    assert!(wal_files(&dir).len() >= 4, "{:?}", wal_files(&dir));
    drop(store);
    // The growth counter survives a restart.
    let (mut store, _) = open(cfg.clone());
    assert!(store.wants_compaction());
    store.compact(&mut model.snapshot_records()).unwrap();
    assert!(!store.wants_compaction());
    // The checkpoint, and the fresh segment appends moved to when the compaction began.
    assert_eq!(wal_files(&dir).len(), 2);
    assert_eq!(store.stats().compactions, 1);
    drop(store);
    let (store, recovered) = open(cfg);
    assert_eq!(recovered, model);
    assert!(!store.wants_compaction());
}

/// One write and one fdatasync per append, whatever the batch size; none for an empty append.
#[test]
fn each_append_is_one_write_and_one_sync() {
    let root = tempfile::tempdir().unwrap();
    let (mut store, _) = open(config(&root.path().join("log")));
    let base = store.stats();
    store.append(&[]).unwrap();
    assert_eq!(store.stats(), base);
    let records: Vec<Record> = (1..=200).flat_map(batch).collect();
    store.append(&records).unwrap();
    store.append(&batch(1000)).unwrap();
    let stats = store.stats();
    assert_eq!(stats.writes - base.writes, 2);
    assert_eq!(stats.data_syncs - base.data_syncs, 2);
    assert_eq!(stats.dir_syncs, base.dir_syncs);
    assert_eq!(stats.appends, 2);

    // Without fsync nothing is synced (tests and benchmarks only).
    let mut cfg = config(&root.path().join("nosync"));
    cfg.fsync = false;
    let (mut store, _) = open(cfg);
    store.append(&batch(1)).unwrap();
    assert_eq!(store.stats().data_syncs, 0);
    assert_eq!(store.stats().dir_syncs, 0);
}

/// Prints append throughput; run with
/// `cargo test --release -p ferrata-store --test log_store -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn append_rate() {
    let root = tempfile::tempdir().unwrap();
    let record = |tx: i64| Record::GlobalAdd(global(tx, GlobalStatus::Begin));

    let (mut store, _) = open(config(&root.path().join("single")));
    let n = 10_000;
    let started = Instant::now();
    for tx in 0..n {
        store.append(&[record(tx)]).unwrap();
    }
    let single = started.elapsed();
    println!(
        "{n} appends of 1 record: {single:?} ({:.0} appends/s, {:.0} records/s)",
        n as f64 / single.as_secs_f64(),
        n as f64 / single.as_secs_f64()
    );

    let (mut store, _) = open(config(&root.path().join("batched")));
    let batches = 1_000;
    let per = 100;
    let mut next = 0;
    let started = Instant::now();
    for _ in 0..batches {
        let records: Vec<Record> = (0..per)
            .map(|_| {
                next += 1;
                record(next)
            })
            .collect();
        store.append(&records).unwrap();
    }
    let batched = started.elapsed();
    println!(
        "{batches} appends of {per} records: {batched:?} ({:.0} appends/s, {:.0} records/s)",
        batches as f64 / batched.as_secs_f64(),
        (batches * per) as f64 / batched.as_secs_f64()
    );
    println!("stats: {:?}", store.stats());

    let started = Instant::now();
    let (_, table) = open(config(&root.path().join("batched")));
    println!(
        "recovery of {} sessions: {:?}",
        table.len(),
        started.elapsed()
    );
}
