//! Damage before the tail is never cut off silently: `open` fails with `Corrupt` naming the
//! file and the byte offset. Only a true torn tail — the last frame incomplete, with nothing or
//! only zero bytes after it — is repaired automatically.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{apply_all, batch, big, wal_files};
use ferrata_core::SessionTable;
use ferrata_store::{LogStore, LogStoreConfig, SessionStore, StoreError};

/// A one-segment log of `n` batches; returns its file, the frame start offsets, and the state
/// after each prefix of batches (`states[i]` = first `i` batches).
fn log_of(dir: &Path, n: i64) -> (PathBuf, Vec<u64>, Vec<SessionTable>) {
    let (mut store, _) = LogStore::open(LogStoreConfig::new(dir)).unwrap();
    let segment = wal_files(dir).pop().unwrap();
    let mut starts = Vec::new();
    let mut states = vec![SessionTable::new()];
    for tx in 1..=n {
        starts.push(fs::metadata(&segment).unwrap().len());
        let records = batch(tx);
        store.append(&records).unwrap();
        let mut next = states.last().unwrap().clone();
        apply_all(&mut next, &records);
        states.push(next);
    }
    starts.push(fs::metadata(&segment).unwrap().len());
    (segment, starts, states)
}

fn expect_corrupt(dir: &Path, file: &Path, offset: u64) -> String {
    match LogStore::open(LogStoreConfig::new(dir)) {
        Err(error @ StoreError::Corrupt { .. }) => {
            let StoreError::Corrupt {
                path, offset: at, ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(path, file);
            assert_eq!(*at, offset, "{error}");
            let message = error.to_string();
            assert!(message.contains(&file.display().to_string()), "{message}");
            assert!(
                message.contains(&format!("byte offset {offset}")),
                "{message}"
            );
            message
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("opened a damaged log, dropping acknowledged data"),
    }
}

#[test]
fn a_damaged_frame_length_before_valid_frames_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (segment, starts, _) = log_of(&dir, 4);
    let mut bytes = fs::read(&segment).unwrap();
    // Batch 2's length now runs past the end of the file, as a torn last frame's would.
    bytes[starts[1] as usize] = 0x7f;
    fs::write(&segment, &bytes).unwrap();
    let message = expect_corrupt(&dir, &segment, starts[1]);
    assert!(
        message.contains(&format!("valid frame follows at byte offset {}", starts[2])),
        "{message}"
    );
}

#[test]
fn a_bad_frame_followed_by_non_zero_garbage_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (segment, starts, _) = log_of(&dir, 3);
    let original = fs::read(&segment).unwrap();
    // The last frame damaged, with garbage after it; and a middle frame damaged with the rest
    // of the file overwritten by garbage.
    for (damaged, garbage_from) in [(2usize, starts[3]), (1, starts[2])] {
        let mut bytes = original.clone();
        bytes.truncate(garbage_from as usize);
        bytes[starts[damaged] as usize + 12] ^= 0x20;
        bytes.extend(std::iter::repeat_n(0xA5u8, 100));
        fs::write(&segment, &bytes).unwrap();
        let message = expect_corrupt(&dir, &segment, starts[damaged]);
        assert!(message.contains("not all zero"), "{message}");
    }
}

/// A completed checkpoint that is the newest segment with nothing older left (as after a
/// repair, or a format-1 compaction) and batches appended after it.
fn log_with_final_checkpoint(dir: &Path) -> (PathBuf, SessionTable) {
    let (mut store, _) = LogStore::open(LogStoreConfig::new(dir)).unwrap();
    let mut model = SessionTable::new();
    for tx in 1..=3 {
        // Big enough that the checkpoint holds several ~1 MiB frames.
        let records = big(tx, 600_000);
        store.append(&records).unwrap();
        apply_all(&mut model, &records);
    }
    store.compact(&mut model.snapshot_records()).unwrap();
    drop(store);
    // Drop the empty segment appends moved to, so that the checkpoint is the newest file.
    let mut files = wal_files(dir);
    while files.len() > 1 && fs::metadata(files.last().unwrap()).unwrap().len() == 24 {
        fs::remove_file(files.pop().unwrap()).unwrap();
    }
    let checkpoint = files.pop().unwrap();
    assert!(files.is_empty());
    let (mut store, recovered) = LogStore::open(LogStoreConfig::new(dir)).unwrap();
    assert_eq!(recovered, model);
    let records = batch(10);
    store.append(&records).unwrap();
    apply_all(&mut model, &records);
    (checkpoint, model)
}

#[test]
fn a_bad_frame_inside_a_completed_checkpoint_is_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (checkpoint, model) = log_with_final_checkpoint(&dir);
    assert_eq!(LogStore::open(LogStoreConfig::new(&dir)).unwrap().1, model);
    let original = fs::read(&checkpoint).unwrap();
    // A byte in the first snapshot frame, and one about a third in (the second frame).
    for offset in [100usize, original.len() / 3] {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x01;
        fs::write(&checkpoint, &bytes).unwrap();
        let first_frame = 24;
        let frame = if offset == 100 {
            first_frame
        } else {
            frame_start_before(&original, offset as u64)
        };
        expect_corrupt(&dir, &checkpoint, frame);
    }

    // With the new layout the checkpoint is followed by the segment appends moved to.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (mut store, _) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
    let mut model = SessionTable::new();
    for tx in 1..=3 {
        let records = big(tx, 600_000);
        store.append(&records).unwrap();
        apply_all(&mut model, &records);
    }
    store.compact(&mut model.snapshot_records()).unwrap();
    store.append(&batch(10)).unwrap();
    drop(store);
    let checkpoint = wal_files(&dir)[0].clone();
    let mut bytes = fs::read(&checkpoint).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&checkpoint, &bytes).unwrap();
    expect_corrupt(&dir, &checkpoint, 24);
}

/// The start of the frame containing `offset`, walking the frames of a segment.
fn frame_start_before(segment: &[u8], offset: u64) -> u64 {
    let mut pos = 24u64;
    loop {
        let p = pos as usize;
        let len = u32::from_be_bytes(segment[p..p + 4].try_into().unwrap()) as u64;
        let next = pos + 8 + len;
        if next > offset {
            return pos;
        }
        pos = next;
    }
}

#[test]
fn true_torn_tails_are_still_cut_off() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let (segment, starts, states) = log_of(&dir, 3);
    let original = fs::read(&segment).unwrap();
    let last = starts[2] as usize;
    let end = starts[3] as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The length runs past the end of the file.
        ("cut", original[..end - 5].to_vec()),
        // The last thing in the file, but its checksum fails.
        ("damaged last frame", {
            let mut b = original.clone();
            b[end - 3] ^= 0x08;
            b
        }),
        // Only zero bytes follow (the file grew before the data reached the disk).
        ("cut, then zeros", {
            let mut b = original[..end - 5].to_vec();
            b.extend(std::iter::repeat_n(0u8, 4096));
            b
        }),
        ("damaged last frame, then zeros", {
            let mut b = original.clone();
            b[last + 20] ^= 0x08;
            b.extend(std::iter::repeat_n(0u8, 300));
            b
        }),
        // Nothing but zeros where the last frame was: the unwritten end of a preallocated
        // segment. Kept (appends write over it), not cut.
        ("zeroed frame header", {
            let mut b = original.clone();
            b[last..last + 8].fill(0);
            b[last + 8..].fill(0);
            b
        }),
    ];
    for (what, bytes) in cases {
        fs::write(&segment, &bytes).unwrap();
        let (mut store, recovered) = LogStore::open(LogStoreConfig::new(&dir)).unwrap();
        assert_eq!(recovered, states[2], "{what}");
        let all_zero_tail = bytes[last..].iter().all(|b| *b == 0);
        let expected_len = if all_zero_tail {
            bytes.len() as u64
        } else {
            starts[2]
        };
        assert_eq!(
            fs::metadata(&segment).unwrap().len(),
            expected_len,
            "{what}"
        );
        store.append(&batch(3)).unwrap();
        drop(store);
        assert_eq!(
            LogStore::open(LogStoreConfig::new(&dir)).unwrap().1,
            states[3],
            "{what}: appends after the cut survive"
        );
        fs::write(&segment, &original).unwrap();
    }
}
