//! Disk faults while appending: a failed write or fsync poisons the store and recovery keeps
//! exactly the acknowledged batches (the failed one whole or not at all); a full disk while
//! starting a new segment fails that append but leaves the log and the store usable.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use common::{append, applied, batch, config, open};
use ferrata_core::SessionTable;
use ferrata_store::fault::{Fault, FaultFs, Op};
use ferrata_store::{SessionStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Power loss: unsynced data is gone.
    Power,
    /// Only the process dies: unsynced data survives in the page cache.
    Process,
}

#[test]
fn a_failed_write_or_fsync_poisons_and_recovery_keeps_exactly_the_acknowledged_batches() {
    for op in [Op::Write, Op::SyncFile] {
        for no_space in [false, true] {
            for torn in [false, true] {
                for crash in [Crash::Power, Crash::Process] {
                    let case = format!("{op:?}, no_space {no_space}, torn {torn}, {crash:?}");
                    let fs = FaultFs::new();
                    let (mut store, _) = open(&fs, config());
                    let mut acked = SessionTable::new();
                    for tx in 1..=3 {
                        assert!(append(&mut store, &mut acked, &batch(tx)), "{case}");
                    }

                    let mut fault = Fault::on(op);
                    if no_space {
                        fault = fault.no_space();
                    }
                    if torn {
                        fault = fault.torn();
                    }
                    fs.inject(fault);
                    let failed = batch(4);
                    let error = store.append(&failed).unwrap_err();
                    assert!(matches!(error, StoreError::Io { .. }), "{case}: {error}");
                    assert!(
                        error.to_string().contains("00000000000000000001.wal"),
                        "{case}: the error names the file: {error}"
                    );
                    // The tail is unknown now: every later append is refused, even though the
                    // disk works again, and so are compactions.
                    for tx in 5..=6 {
                        assert!(
                            matches!(store.append(&batch(tx)), Err(StoreError::Poisoned { .. })),
                            "{case}"
                        );
                    }
                    assert!(!store.wants_compaction(), "{case}");
                    assert!(
                        matches!(
                            store.compact(&mut acked.snapshot_records()),
                            Err(StoreError::Poisoned { .. })
                        ),
                        "{case}"
                    );
                    drop(store);

                    match crash {
                        Crash::Power => fs.crash(),
                        Crash::Process => fs.kill(),
                    }
                    let (mut store, recovered) = open(&fs, config());
                    // Only a batch whose write completed and whose sync failed can survive, and
                    // only in the page cache; a torn write or torn sync leaves part of it, which
                    // recovery must cut off whole.
                    let expected = if op == Op::SyncFile && crash == Crash::Process {
                        applied(&acked, &failed)
                    } else {
                        acked.clone()
                    };
                    assert_eq!(recovered, expected, "{case}");

                    // The recovered log takes appends that survive the next power loss.
                    let mut model = recovered;
                    assert!(append(&mut store, &mut model, &batch(7)), "{case}");
                    drop(store);
                    fs.crash();
                    assert_eq!(open(&fs, config()).1, model, "{case}");
                }
            }
        }
    }
}

#[test]
fn no_space_while_starting_a_segment_fails_the_append_but_not_the_store() {
    // Each of the steps of creating a segment: the file, its header, the header's sync, and
    // the directory sync that makes the file's name durable.
    let steps = [
        Fault::on(Op::Create).on_path("03.wal"),
        Fault::on(Op::Write).on_path("03.wal"),
        Fault::on(Op::SyncFile).on_path("03.wal"),
        Fault::on(Op::SyncDir),
    ];
    for (step, fault) in steps.into_iter().enumerate() {
        let fs = FaultFs::new();
        let mut cfg = config();
        // Every append starts a new segment.
        cfg.segment_bytes = 1;
        let (mut store, _) = open(&fs, cfg.clone());
        let mut acked = SessionTable::new();
        assert!(append(&mut store, &mut acked, &batch(1)));
        assert_eq!(store.stats().active_segment, 2);

        fs.inject(fault.no_space().sticky());
        let error = store.append(&batch(2)).unwrap_err();
        assert!(
            matches!(&error, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
            "step {step}: {error}"
        );
        assert!(error.to_string().contains("disk is not full"), "{error}");
        // Still full: still failing, but cleanly, and the active segment is intact.
        assert!(store.append(&batch(3)).is_err(), "step {step}");
        assert_eq!(store.stats().active_segment, 2);

        fs.clear_faults();
        assert!(
            append(&mut store, &mut acked, &batch(4)),
            "step {step}: space is back, appends work again"
        );
        assert_eq!(store.stats().active_segment, 3);
        drop(store);
        fs.crash();
        let (_, recovered) = open(&fs, cfg);
        assert_eq!(recovered, acked, "step {step}");
    }
}
