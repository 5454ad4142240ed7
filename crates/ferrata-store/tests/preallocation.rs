//! Preallocated segments: appends write over a zero-filled spare renamed into place, recovery
//! reads the zeros after the last frame as the end of the log, and a power cut at any call of
//! a rotation through the spare keeps exactly the acknowledged batches.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use common::{append, applied, batch, config, dir, open, segments};
use ferrata_core::SessionTable;
use ferrata_store::fault::{Fault, FaultFs, Op};
use ferrata_store::{LogStore, LogStoreConfig, Preallocation, SPARE_FILE_NAME, SessionStore};

const SEGMENT_BYTES: u64 = 2048;

fn preallocated() -> LogStoreConfig {
    let mut config = config();
    config.segment_bytes = SEGMENT_BYTES;
    config.preallocation = Preallocation::Inline;
    config
}

/// Opens a preallocated store, appends batches 1..=`count`, closes it; returns what it holds.
fn closed_with_batches(fs: &FaultFs, count: i64) -> SessionTable {
    let (mut store, _) = open(fs, preallocated());
    let mut acked = SessionTable::new();
    for tx in 1..=count {
        assert!(append(&mut store, &mut acked, &batch(tx)));
    }
    acked
}

#[test]
fn appends_across_rotations_write_into_spares_and_recover_exactly() {
    let fs = FaultFs::new();
    let (mut store, _) = open(&fs, preallocated());
    let mut acked = SessionTable::new();
    for tx in 1..=40 {
        assert!(append(&mut store, &mut acked, &batch(tx)));
    }
    let names = segments(&fs, &dir());
    assert!(names.len() >= 4, "rotations happened: {names:?}");
    // The first segment, created growing when the store opened, was left as soon as a spare
    // was ready: it holds no more than its header, the first batch and its seal.
    let first = fs.read(&dir().join(&names[0])).unwrap().len();
    assert!(first < 1024, "first segment is {first} bytes");
    assert!(fs.files(&dir()).contains(&SPARE_FILE_NAME.to_string()));
    // The segment being written is the size of a spare: appends went over its zeros.
    let active = dir().join(names.last().unwrap());
    assert_eq!(fs.read(&active).unwrap().len() as u64, SEGMENT_BYTES);
    // Segments appends moved on from gave their unused zeros back.
    for name in &names[..names.len() - 1] {
        let bytes = fs.read(&dir().join(name)).unwrap();
        assert_ne!(
            bytes.last(),
            Some(&0),
            "{name} ends with its seal, not zeros"
        );
    }
    drop(store);

    for crash in [false, true] {
        if crash {
            fs.crash();
        }
        let (mut store, recovered) = open(&fs, preallocated());
        assert_eq!(recovered, acked, "crash {crash}");
        // Appends continue after the last frame, over the zeros, and survive.
        let more = batch(100 + i64::from(crash));
        assert!(append(&mut store, &mut acked, &more));
        drop(store);
        let (_, recovered) = open(&fs, preallocated());
        assert_eq!(recovered, acked, "append after reopening, crash {crash}");
    }
}

#[test]
fn a_store_without_preallocation_reads_a_preallocated_log() {
    let fs = FaultFs::new();
    let mut acked = closed_with_batches(&fs, 10);
    let mut plain = preallocated();
    plain.preallocation = Preallocation::Off;
    let (mut store, recovered) = open(&fs, plain.clone());
    assert_eq!(recovered, acked);
    assert!(append(&mut store, &mut acked, &batch(11)));
    drop(store);
    assert_eq!(open(&fs, plain).1, acked);
}

/// A power cut at every call, one run each, while batches go through several rotations:
/// recovery gives the acknowledged batches plus, at most, the one whose append failed.
#[test]
fn a_power_cut_at_any_call_keeps_exactly_the_acknowledged_batches() {
    let mut cut_at = 0;
    loop {
        let fs = FaultFs::new();
        let (mut store, _) = open(&fs, preallocated());
        let before = fs.total_ops();
        fs.inject(Fault::on_any(&Op::ALL).after(cut_at).power_cut());
        let mut acked = SessionTable::new();
        let mut failed = None;
        for tx in 1..=30 {
            let records = batch(tx);
            if store.append(&records).is_err() {
                failed = Some(records);
                break;
            }
            common::apply_all(&mut acked, &records);
        }
        let Some(failed) = failed else {
            // The cut came after the last call of the workload: every call was covered.
            assert!(fs.total_ops() - before <= cut_at + 1);
            break;
        };
        drop(store);
        fs.crash();
        let (mut store, recovered) = open(&fs, preallocated());
        assert!(
            recovered == acked || recovered == applied(&acked, &failed),
            "power cut at call {cut_at}: recovered neither the acknowledged state nor it plus \
             the failed batch"
        );
        let mut model = recovered;
        assert!(
            append(&mut store, &mut model, &batch(99)),
            "cut at {cut_at}"
        );
        drop(store);
        assert_eq!(open(&fs, preallocated()).1, model, "cut at {cut_at}");
        cut_at += 1;
    }
    assert!(cut_at > 100, "the workload made {cut_at} calls");
}

/// The OS may make the rename of the spare durable before the header written into it: the
/// newest segment is then all zeros, and recovery deletes it as an unfinished creation.
#[test]
fn a_newest_segment_of_only_zeros_is_an_unfinished_creation() {
    let fs = FaultFs::new();
    let mut acked = closed_with_batches(&fs, 3);
    let before = segments(&fs, &dir());
    let disk = fs.as_file_system();
    let zeros = dir().join(format!("{:020}.wal", before.len() + 1));
    let mut file = disk.create_new(&zeros).unwrap();
    file.write(&vec![0u8; SEGMENT_BYTES as usize]).unwrap();
    file.sync_data().unwrap();
    disk.sync_dir(&dir()).unwrap();
    fs.crash();
    let (mut store, recovered) = open(&fs, preallocated());
    assert_eq!(recovered, acked);
    assert_eq!(segments(&fs, &dir()), before);
    assert!(append(&mut store, &mut acked, &batch(4)));
    drop(store);
    assert_eq!(open(&fs, preallocated()).1, acked);
}

/// Repair of a damaged preallocated segment drops the damaged frame only: the zeros after the
/// last frame are not reported as lost data.
#[test]
fn repair_does_not_report_the_zeros_of_a_preallocated_segment_as_lost() {
    let fs = FaultFs::new();
    closed_with_batches(&fs, 3);
    let names = segments(&fs, &dir());
    let active = dir().join(names.last().unwrap());
    let mut bytes = fs.read(&active).unwrap();
    assert_eq!(bytes.len() as u64, SEGMENT_BYTES);
    // A bit flip inside the first batch (just after the 24-byte header and 8-byte frame head).
    bytes[40] ^= 0x10;
    assert!(fs.damage(&active, bytes));
    let report = LogStore::repair_with(preallocated(), fs.as_file_system()).unwrap();
    assert!(
        report.open_error.is_some(),
        "the damage made open refuse the store"
    );
    assert_eq!(report.dropped.len(), 1, "{:?}", report.dropped);
    assert!(report.dropped[0].bytes < 1024, "{:?}", report.dropped);
}
