//! Every segment that appends moved on from ends with a seal frame naming the next segment, so
//! a segment that lost its tail at a frame boundary, or a missing segment, is `Corrupt` rather
//! than silently skipped. Format-1 directories, which have no seals, still open.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use std::fs;
use std::path::Path;

use common::{apply_all, batch, wal_files};
use ferrata_core::SessionTable;
use ferrata_store::fault::{Fault, FaultFs, Op};
use ferrata_store::{LogStore, LogStoreConfig, SessionStore, StoreError};

fn small(dir: &Path) -> LogStoreConfig {
    let mut cfg = LogStoreConfig::new(dir);
    cfg.segment_bytes = 500;
    cfg
}

/// A log over several segments; returns the model.
fn rotated(dir: &Path, batches: i64) -> SessionTable {
    let (mut store, _) = LogStore::open(small(dir)).unwrap();
    let mut model = SessionTable::new();
    for tx in 1..=batches {
        let records = batch(tx);
        store.append(&records).unwrap();
        apply_all(&mut model, &records);
    }
    model
}

/// A seal frame: 8-byte frame header, kind 3, next segment (u64).
const SEAL_LEN: usize = 17;

#[test]
fn segments_are_sealed_naming_the_next_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let model = rotated(&dir, 8);
    let files = wal_files(&dir);
    assert!(files.len() >= 3);
    for (i, file) in files[..files.len() - 1].iter().enumerate() {
        let bytes = fs::read(file).unwrap();
        let seal = &bytes[bytes.len() - SEAL_LEN..];
        assert_eq!(seal[8], 3, "{}", file.display());
        assert_eq!(
            u64::from_be_bytes(seal[9..17].try_into().unwrap()),
            i as u64 + 2
        );
    }
    assert_eq!(LogStore::open(small(&dir)).unwrap().1, model);
}

#[test]
fn an_older_segment_cut_at_a_frame_boundary_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    rotated(&dir, 8);
    let older = wal_files(&dir)[1].clone();
    let bytes = fs::read(&older).unwrap();
    // Without its seal the file still ends exactly at a frame boundary.
    let cut = bytes.len() - SEAL_LEN;
    fs::write(&older, &bytes[..cut]).unwrap();
    match LogStore::open(small(&dir)) {
        Err(StoreError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            assert_eq!(path, older);
            assert_eq!(offset, cut as u64);
            assert!(reason.contains("tail was lost"), "{reason}");
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("an older segment silently lost its tail"),
    }
}

#[test]
fn a_missing_segment_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    rotated(&dir, 10);
    let files = wal_files(&dir);
    assert!(files.len() >= 4);
    // One in the middle, and the first (with no checkpoint the log starts at segment 1).
    for (victim, blamed) in [(2usize, 1usize), (0, 1)] {
        let case = root.path().join(format!("missing-{victim}"));
        fs::create_dir_all(&case).unwrap();
        for (i, file) in files.iter().enumerate() {
            if i != victim {
                fs::copy(file, case.join(file.file_name().unwrap())).unwrap();
            }
        }
        let cfg = small(&case);
        match LogStore::open(cfg.clone()) {
            Err(StoreError::Corrupt { path, reason, .. }) => {
                assert_eq!(path.file_name(), files[blamed].file_name(), "{reason}");
                assert!(reason.contains("missing"), "{reason}");
            }
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("segment {victim} went missing silently"),
        }
        // Repair says what is gone and makes the directory usable.
        let report = LogStore::repair(cfg.clone()).unwrap();
        assert!(
            report.dropped.iter().any(|d| d.reason.contains("missing")),
            "{report}"
        );
        assert!(report.open_error.is_some());
        LogStore::open(cfg).unwrap();
    }
}

#[test]
fn a_crash_between_sealing_and_creating_the_next_segment_recovers() {
    let fs = FaultFs::new();
    let mut cfg = common::config();
    // Every append moves on to a new segment.
    cfg.segment_bytes = 1;
    let (mut store, _) = common::open(&fs, cfg.clone());
    let mut model = SessionTable::new();
    assert!(common::append(&mut store, &mut model, &batch(1)));
    // The power goes right after segment 2 was sealed, before segment 3 exists.
    fs.inject(Fault::on(Op::Create).power_cut());
    assert!(store.append(&batch(2)).is_err());
    drop(store);
    fs.crash();
    let (mut store, recovered) = common::open(&fs, cfg.clone());
    assert_eq!(recovered, model);
    let sealed = common::dir().join("00000000000000000002.wal");
    let bytes = fs.read(&sealed).unwrap();
    assert_eq!(bytes[bytes.len() - SEAL_LEN + 8], 3, "segment 2 is sealed");
    // The sealed segment takes no more appends: the next append creates the one it names.
    assert!(common::append(&mut store, &mut model, &batch(3)));
    assert_eq!(store.stats().active_segment, 3);
    assert_eq!(fs.read(&sealed).unwrap(), bytes);
    drop(store);
    fs.crash();
    assert_eq!(common::open(&fs, cfg).1, model);
}

/// Rewrites a store directory as format 1 wrote it: version-1 headers, no seals.
fn downgrade_to_format_1(dir: &Path) {
    let files = wal_files(dir);
    let count = files.len();
    for (i, file) in files.iter().enumerate() {
        let mut bytes = fs::read(file).unwrap();
        bytes[8..10].copy_from_slice(&1u16.to_be_bytes());
        let crc = crc32fast::hash(&bytes[0..20]);
        bytes[20..24].copy_from_slice(&crc.to_be_bytes());
        if i + 1 < count {
            assert_eq!(bytes[bytes.len() - SEAL_LEN + 8], 3);
            bytes.truncate(bytes.len() - SEAL_LEN);
        }
        fs::write(file, &bytes).unwrap();
    }
}

#[test]
fn format_1_directories_still_open_and_continue_in_format_2() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let mut model = rotated(&dir, 8);
    downgrade_to_format_1(&dir);
    let (mut store, recovered) = LogStore::open(small(&dir)).unwrap();
    assert_eq!(recovered, model);
    // Appends continue in the version-1 segment, then rotate into version-2 ones; the
    // version-1 segment is not sealed (format 1 has no such frame).
    for tx in 20..=26 {
        let records = batch(tx);
        store.append(&records).unwrap();
        apply_all(&mut model, &records);
    }
    drop(store);
    let files = wal_files(&dir);
    let versions: Vec<u16> = files
        .iter()
        .map(|f| {
            let bytes = fs::read(f).unwrap();
            u16::from_be_bytes([bytes[8], bytes[9]])
        })
        .collect();
    assert!(
        versions.contains(&1) && versions.last() == Some(&2),
        "{versions:?}"
    );
    assert_eq!(LogStore::open(small(&dir)).unwrap().1, model);

    // A newer version than this build knows is refused with a clear message.
    let newest = files.last().unwrap();
    let mut bytes = fs::read(newest).unwrap();
    bytes[8..10].copy_from_slice(&3u16.to_be_bytes());
    let crc = crc32fast::hash(&bytes[0..20]);
    bytes[20..24].copy_from_slice(&crc.to_be_bytes());
    fs::write(newest, &bytes).unwrap();
    let error = LogStore::open(small(&dir)).unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedVersion { found: 3, .. }),
        "{error}"
    );
    assert!(matches!(
        LogStore::repair(small(&dir)),
        Err(StoreError::UnsupportedVersion { .. })
    ));
}
