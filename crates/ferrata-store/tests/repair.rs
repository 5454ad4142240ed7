//! `LogStore::repair`: keeps every intact frame, rewrites a clean log, moves the old files into
//! `damaged-<unix-ms>/` and reports what it dropped; afterwards `open` succeeds. Repair itself
//! survives a power loss at any of its sync points.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{applied, batch, big, wal_files};
use ferrata_core::{Record, SessionTable, TransactionId};
use ferrata_store::conformance::Rng;
use ferrata_store::fault::{Fault, FaultFs};
use ferrata_store::{LogStore, LogStoreConfig, SessionStore, StoreError};

/// Where each batch's frame went: (segment file, offset, frame length).
type Placement = (PathBuf, u64, u64);

/// A multi-segment log of `n` batches, with where each landed.
fn rotated_log(dir: &Path, n: i64) -> (Vec<Vec<Record>>, Vec<Placement>) {
    let mut cfg = LogStoreConfig::new(dir);
    cfg.segment_bytes = 300;
    let (mut store, _) = LogStore::open(cfg).unwrap();
    let mut batches = Vec::new();
    let mut placed = Vec::new();
    for tx in 1..=n {
        // Distinct transactions that survive, so a dropped batch is visible.
        let records = vec![
            Record::GlobalAdd(ferrata_store::conformance::global(
                tx,
                ferrata_proto::GlobalStatus::Begin,
            )),
            Record::IdReserve { next_free_id: tx },
        ];
        store.append(&records).unwrap();
        let segment = wal_files(dir).pop().unwrap();
        let end = fs::metadata(&segment).unwrap().len();
        let start = match placed.last() {
            Some((path, offset, len)) if *path == segment => offset + len,
            _ => 24,
        };
        placed.push((segment, start, end - start));
        batches.push(records);
    }
    (batches, placed)
}

fn model_without(batches: &[Vec<Record>], skip: &[usize]) -> SessionTable {
    let mut model = SessionTable::new();
    for (i, records) in batches.iter().enumerate() {
        if !skip.contains(&i) {
            model = applied(&model, records);
        }
    }
    model
}

#[test]
fn repair_keeps_every_intact_batch_and_reports_what_it_dropped() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (batches, placed) = rotated_log(&dir, 12);
    let files_before = wal_files(&dir);
    assert!(files_before.len() >= 4, "{files_before:?}");
    // A batch in an older segment, and one in the middle of the newest, with valid frames
    // after both.
    let victims = [
        placed.iter().position(|p| p.0 == files_before[1]).unwrap(),
        placed.len() - 2,
    ];
    assert_eq!(placed[victims[1]].0, *files_before.last().unwrap());
    for &v in &victims {
        let (path, offset, _) = &placed[v];
        let mut bytes = fs::read(path).unwrap();
        bytes[*offset as usize + 10] ^= 0x04;
        fs::write(path, &bytes).unwrap();
    }
    assert!(matches!(
        LogStore::open(LogStoreConfig::new(&dir)),
        Err(StoreError::Corrupt { .. })
    ));

    let report = LogStore::repair(LogStoreConfig::new(&dir)).unwrap();
    let dropped: Vec<(PathBuf, u64, u64)> = report
        .dropped
        .iter()
        .map(|d| (d.path.clone(), d.offset, d.bytes))
        .collect();
    assert_eq!(
        dropped,
        vec![placed[victims[0]].clone(), placed[victims[1]].clone()]
    );
    assert!(report.dropped[0].reason.contains("checksum"), "{report}");
    let expected = model_without(&batches, &victims);
    assert_eq!(report.transactions, expected.len());

    // The old files were moved aside, not deleted.
    let moved_to = report.moved_to.clone().unwrap();
    assert_eq!(moved_to.parent(), Some(dir.as_path()));
    let moved_name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
    assert!(moved_name.starts_with("damaged-"), "{moved_name}");
    assert_eq!(wal_files(&moved_to).len(), files_before.len());
    assert_eq!(report.moved_files.len(), files_before.len());
    let text = report.to_string();
    assert!(
        text.contains(&files_before[1].display().to_string()),
        "{text}"
    );
    assert!(text.contains(&moved_to.display().to_string()), "{text}");

    let (mut store, recovered) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(recovered, expected);
    let more = vec![Record::GlobalRemove {
        transaction_id: TransactionId(1),
    }];
    store.append(&more).unwrap();
    drop(store);
    let expected = applied(&expected, &more);
    assert_eq!(
        LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
        expected
    );

    // A healthy directory is left alone.
    let again = LogStore::repair(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(again.moved_to, None);
    assert!(again.dropped.is_empty());
    assert_eq!(again.transactions, expected.len());
    assert_eq!(
        LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
        expected
    );
}

#[test]
fn repair_keeps_the_frames_behind_a_damaged_segment_header() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (batches, _) = rotated_log(&dir, 8);
    let older = wal_files(&dir)[1].clone();
    let mut bytes = fs::read(&older).unwrap();
    bytes[3] ^= 0xFF;
    fs::write(&older, &bytes).unwrap();
    let report = LogStore::repair(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(report.dropped.len(), 1, "{report}");
    assert_eq!(
        (
            report.dropped[0].path.clone(),
            report.dropped[0].offset,
            report.dropped[0].bytes
        ),
        (older, 0, 24)
    );
    assert_eq!(
        LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
        model_without(&batches, &[])
    );
}

#[test]
fn repair_salvages_a_damaged_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (mut store, _) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    let mut model = SessionTable::new();
    for tx in 1..=3 {
        let records = big(tx, 600_000);
        store.append(&records).unwrap();
        model = applied(&model, &records);
    }
    store.compact(&mut model.snapshot_records()).unwrap();
    store.append(&batch(10)).unwrap();
    drop(store);
    let checkpoint = wal_files(&dir)[0].clone();
    let mut bytes = fs::read(&checkpoint).unwrap();
    // The first ~1 MiB frame holds transactions 1 and 2; the second holds 3.
    bytes[100] ^= 0x01;
    fs::write(&checkpoint, &bytes).unwrap();

    let report = LogStore::repair(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(report.dropped.len(), 1, "{report}");
    assert_eq!(report.dropped[0].path, checkpoint);
    assert_eq!(report.dropped[0].offset, 24);
    let mut expected = applied(&SessionTable::new(), &big(3, 600_000));
    expected = applied(&expected, &batch(10));
    assert_eq!(
        LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
        expected
    );
}

#[test]
fn a_directory_that_opens_is_not_touched_by_repair() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (batches, placed) = rotated_log(&dir, 6);
    // A torn last batch is what `open` repairs by itself.
    let (last, offset, _) = placed.last().unwrap();
    let bytes = fs::read(last).unwrap();
    fs::write(last, &bytes[..*offset as usize + 5]).unwrap();
    let report = LogStore::repair(LogStoreConfig::new(&dir)).unwrap();
    assert_eq!(report.moved_to, None, "{report}");
    assert!(report.to_string().contains("nothing was changed"));
    assert!(fs::read_dir(&dir).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("damaged-")
    }));
    assert_eq!(
        LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
        model_without(&batches, &[batches.len() - 1])
    );
}

/// A damaged log on a FaultFs: batches 1..=10 with a compaction after 5, the first batch after
/// the compaction damaged. Returns the state repair must produce.
fn damaged_fault_log(fs: &FaultFs) -> SessionTable {
    let (mut store, _) = common::open(fs, common::config());
    let mut model = SessionTable::new();
    let mut salvaged = SessionTable::new();
    for tx in 1..=10 {
        let records = vec![Record::GlobalAdd(ferrata_store::conformance::global(
            tx,
            ferrata_proto::GlobalStatus::Begin,
        ))];
        common::append(&mut store, &mut model, &records);
        if tx != 6 {
            salvaged = applied(&salvaged, &records);
        }
        if tx == 5 {
            store.compact(&mut model.snapshot_records()).unwrap();
        }
    }
    drop(store);
    let newest = common::dir().join(common::segments(fs, &common::dir()).pop().unwrap());
    let mut bytes = fs.read(&newest).unwrap();
    bytes[24 + 12] ^= 0x01;
    assert!(fs.damage(&newest, bytes));
    salvaged
}

#[test]
fn a_power_loss_at_any_sync_point_of_a_repair_leaves_the_old_or_the_repaired_log() {
    let dry = FaultFs::new();
    let salvaged = damaged_fault_log(&dry);
    let start = dry.sync_count();
    let report = LogStore::repair_with(common::config(), dry.as_file_system()).unwrap();
    assert_eq!(report.dropped.len(), 1);
    let points = dry.sync_count() - start;
    assert_eq!(common::open(&dry, common::config()).1, salvaged);

    for k in 0..points {
        let fs = FaultFs::new();
        damaged_fault_log(&fs);
        fs.inject(Fault::on_sync().after(k).power_cut());
        assert!(LogStore::repair_with(common::config(), fs.as_file_system()).is_err());
        fs.crash();
        match LogStore::open_with(common::config(), fs.as_file_system()) {
            // Before the commit point: still the damaged log, and repair can run again.
            Err(StoreError::Corrupt { .. }) => {
                LogStore::repair_with(common::config(), fs.as_file_system()).unwrap();
            }
            Err(other) => panic!("sync point {k}: {other}"),
            Ok((_, recovered)) => assert_eq!(recovered, salvaged, "sync point {k}"),
        }
        assert_eq!(
            common::open(&fs, common::config()).1,
            salvaged,
            "sync point {k}"
        );
    }
}

/// Random damage anywhere in a log: `open` either refuses, or recovers everything that was
/// acknowledged — except the very last batch when the damage is in it (a damaged last frame
/// looks exactly like a torn write), and except what a truncation of the newest segment cut
/// off (a shorter newest segment looks exactly like one that was never longer). When it
/// refuses, repair always makes it open again.
#[test]
fn random_damage_is_never_silently_dropped_and_repair_always_recovers() {
    let mut refused = 0;
    for seed in 0..300u64 {
        let mut rng = Rng(seed ^ 0x5EED_F00D);
        let fs = FaultFs::new();
        let mut cfg = common::config();
        cfg.segment_bytes = 1_500;
        let (mut store, _) = common::open(&fs, cfg.clone());
        let mut model = SessionTable::new();
        let mut history = vec![model.clone()];
        for tx in 1..=25 {
            common::append(&mut store, &mut model, &batch(tx));
            history.push(model.clone());
            if tx == 12 {
                store.compact(&mut model.snapshot_records()).unwrap();
            }
        }
        drop(store);

        let names = common::segments(&fs, &common::dir());
        let index = rng.below(names.len() as u64) as usize;
        let newest = index + 1 == names.len();
        let victim = common::dir().join(&names[index]);
        let mut bytes = fs.read(&victim).unwrap();
        let len = bytes.len() as u64;
        let at = rng.below(len) as usize;
        let kind = rng.below(4);
        let damage = format!(
            "damage kind {kind} at byte {at} of {} ({len} bytes; segments {names:?})",
            victim.display()
        );
        match kind {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => {
                let end = (at + 1 + rng.below(64) as usize).min(bytes.len());
                for b in &mut bytes[at..end] {
                    *b = rng.next_u64() as u8;
                }
            }
            2 => bytes.truncate(at),
            _ => {
                let extra = 1 + rng.below(100) as usize;
                bytes.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
        }
        assert!(fs.damage(&victim, bytes));

        match LogStore::open_with(cfg.clone(), fs.as_file_system()) {
            Ok((_, recovered)) => {
                let before_last = &history[history.len() - 2];
                let fine = if newest && kind == 2 {
                    history.contains(&recovered)
                } else {
                    recovered == model || recovered == *before_last
                };
                assert!(
                    fine,
                    "seed {seed}: open succeeded but lost acknowledged data; {damage}"
                );
            }
            Err(StoreError::Corrupt { .. }) => {
                refused += 1;
                let report = LogStore::repair_with(cfg.clone(), fs.as_file_system())
                    .unwrap_or_else(|e| panic!("seed {seed}: repair failed: {e}"));
                assert!(report.moved_to.is_some(), "seed {seed}");
                let (_, repaired) = LogStore::open_with(cfg.clone(), fs.as_file_system())
                    .unwrap_or_else(|e| panic!("seed {seed}: open after repair failed: {e}"));
                assert_eq!(repaired.len(), report.transactions, "seed {seed}");
                let again = LogStore::repair_with(cfg.clone(), fs.as_file_system()).unwrap();
                assert_eq!(again.moved_to, None, "seed {seed}: repair is idempotent");
            }
            Err(other) => panic!("seed {seed}: unexpected error {other}"),
        }
    }
    // The damage is varied enough to exercise both paths.
    assert!(
        refused >= 30 && 300 - refused >= 30,
        "{refused} of 300 refused"
    );
}
