//! Fuzz target: arbitrary bytes as the tail of a write-ahead-log segment (after a valid header,
//! or raw), then recovery. It must return the state or a clear error, never panic or hang; and
//! when it refuses the directory as corrupt, repair must succeed and make it open.
#![no_main]

use std::io::{Read, Write};

use ferrata_store::{LogStore, LogStoreConfig, StoreError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let config = || LogStoreConfig { fsync: false, ..LogStoreConfig::new(dir.path().to_path_buf()) };
    // A fresh store writes the first segment's header; keep it (or not) and append the input.
    let Ok((store, _)) = LogStore::open(config()) else { return };
    drop(store);
    // The directory also holds the LOCK file: take the segment.
    let Ok(entries) = std::fs::read_dir(dir.path()) else { return };
    let Some(path) = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
    else {
        return;
    };
    let mut header = Vec::new();
    if let Ok(mut file) = std::fs::File::open(&path) {
        let _ = file.read_to_end(&mut header);
    }
    let keep_header = data.first().is_some_and(|b| b & 1 == 0);
    let Ok(mut file) = std::fs::File::create(&path) else { return };
    if keep_header {
        let _ = file.write_all(&header);
    }
    let _ = file.write_all(data.get(1..).unwrap_or_default());
    drop(file);
    if let Err(StoreError::Corrupt { .. }) = LogStore::open(config()) {
        let report = LogStore::repair(config())
            .unwrap_or_else(|e| panic!("repair of a corrupt directory failed: {e}"));
        assert!(report.moved_to.is_some(), "repair changed nothing: {report}");
        if let Err(e) = LogStore::open(config()) {
            panic!("open after repair failed: {e}\n{report}");
        }
    }
});
