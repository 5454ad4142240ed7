//! Disk faults and crashes during compaction. A failed compaction changes nothing and does not
//! poison the store; a crash at any sync point (or, when the page cache survives, at any call)
//! recovers exactly the old state or exactly the new one, never a mix, and never loses an
//! append acknowledged while the compaction ran.

#![allow(clippy::unwrap_used)] // tests may panic

mod common;

use common::{append, applied, batch, big, config, open, segments};
use ferrata_core::{Record, SessionTable};
use ferrata_store::fault::{Fault, FaultFs, Op};
use ferrata_store::{LogStore, LogStoreConfig, SessionStore, StoreError};

/// Only the checkpoint carries it, so a recovered state tells which base it came from.
const MARKER: Record = Record::IdReserve {
    next_free_id: 777_777,
};

fn cfg() -> LogStoreConfig {
    let mut cfg = config();
    cfg.segment_bytes = 64 << 10;
    cfg
}

/// Several segments, and enough data that a checkpoint spans several ~1 MiB chunks, so a
/// recovery that used part of a checkpoint would be caught.
fn populate(fs: &FaultFs) -> (LogStore, SessionTable) {
    let (mut store, _) = open(fs, cfg());
    let mut model = SessionTable::new();
    for tx in 1..=3 {
        assert!(append(&mut store, &mut model, &big(tx, 400_000)));
    }
    for tx in 10..=20 {
        assert!(append(&mut store, &mut model, &batch(tx)));
    }
    (store, model)
}

/// What one run of the compaction scenario did.
struct Scenario {
    old: SessionTable,
    /// The checkpoint's state: the old state plus the marker.
    new: SessionTable,
    began: bool,
    finished_ok: bool,
    /// Every batch appended once the compaction began, in order, with whether it may be on
    /// disk: `Some(true)` acknowledged, `Some(false)` failed with an I/O error (outcome
    /// unknown), `None` refused without touching the disk.
    appended: Vec<(Vec<Record>, Option<bool>)>,
}

fn append_tracked(store: &mut LogStore, appended: &mut Vec<(Vec<Record>, Option<bool>)>, tx: i64) {
    let records = batch(tx);
    let status = match store.append(&records) {
        Ok(()) => Some(true),
        Err(StoreError::Poisoned { .. }) => None,
        Err(_) => Some(false),
    };
    appended.push((records, status));
}

/// Builds the log, calls `arm` (to inject faults from here on), then compacts in the background
/// with appends before, during and after the job, and drops the store.
fn scenario(fs: &FaultFs, arm: impl FnOnce(&FaultFs)) -> Scenario {
    let (mut store, old) = populate(fs);
    let new = applied(&old, &[MARKER]);
    arm(fs);
    let mut appended = Vec::new();
    let mut began = false;
    let mut finished_ok = false;
    match store.begin_compaction() {
        Ok(Some(job)) => {
            began = true;
            append_tracked(&mut store, &mut appended, 100);
            append_tracked(&mut store, &mut appended, 101);
            let outcome = job.run(&mut new.snapshot_records());
            append_tracked(&mut store, &mut appended, 102);
            finished_ok = store.finish_compaction(outcome).is_ok();
        }
        Ok(None) => panic!("LogStore compacts in the background"),
        Err(_) => {}
    }
    append_tracked(&mut store, &mut appended, 200);
    append_tracked(&mut store, &mut appended, 201);
    drop(store);
    Scenario {
        old,
        new,
        began,
        finished_ok,
        appended,
    }
}

/// Every state recovery may legitimately produce: a base (old or new) plus every acknowledged
/// batch, each unknown-outcome batch either whole or absent.
fn allowed(scenario: &Scenario) -> Vec<SessionTable> {
    let mut bases = vec![];
    if !scenario.finished_ok {
        bases.push(scenario.old.clone());
    }
    if scenario.began {
        bases.push(scenario.new.clone());
    }
    let mut states = bases;
    for (records, status) in &scenario.appended {
        states = match status {
            Some(true) => states.iter().map(|s| applied(s, records)).collect(),
            Some(false) => states
                .iter()
                .flat_map(|s| [s.clone(), applied(s, records)])
                .collect(),
            None => states,
        };
    }
    states
}

fn check_recovery(fs: &FaultFs, scenario: &Scenario, case: &str) {
    fs.clear_faults();
    let (mut store, recovered) = open(fs, cfg());
    let files = fs.files(&common::dir());
    assert!(
        files.iter().all(|name| !name.ends_with(".tmp")),
        "{case}: open deletes unfinished checkpoints: {files:?}"
    );
    let allowed = allowed(scenario);
    assert!(
        allowed.contains(&recovered),
        "{case}: recovered a state that is neither the old nor the new one plus the \
         acknowledged appends ({} transactions, next_free_id {}; job finished ok: {})",
        recovered.len(),
        recovered.next_free_id(),
        scenario.finished_ok
    );
    // Whatever it recovered, the store keeps working and compacts again.
    let mut model = recovered;
    assert!(append(&mut store, &mut model, &batch(300)), "{case}");
    store.compact(&mut model.snapshot_records()).unwrap();
    drop(store);
    fs.crash();
    assert_eq!(open(fs, cfg()).1, model, "{case}: after recompaction");
}

#[test]
fn a_power_loss_at_every_sync_point_of_a_compaction_recovers_old_or_new_state() {
    let dry = FaultFs::new();
    let mut start = 0;
    let done = scenario(&dry, |fs| start = fs.sync_count());
    assert!(done.finished_ok);
    let points = dry.sync_count() - start;
    // Rotation (header, directory), the appends, the checkpoint, its rename, the deletions.
    assert!(points >= 9, "only {points} sync points");
    for k in 0..=points {
        let fs = FaultFs::new();
        let run = scenario(&fs, |fs| fs.inject(Fault::on_sync().after(k).power_cut()));
        assert_eq!(fs.is_dead(), k < points, "sync point {k} of {points}");
        fs.crash();
        check_recovery(
            &fs,
            &run,
            &format!("power loss at sync point {k} of {points}"),
        );
    }
}

#[test]
fn a_process_crash_at_every_call_of_a_compaction_recovers_old_or_new_state() {
    let dry = FaultFs::new();
    let mut start = 0;
    let done = scenario(&dry, |fs| start = fs.total_ops());
    assert!(done.finished_ok);
    let calls = dry.total_ops() - start;
    let mut tmp_left = 0;
    for k in 0..=calls {
        let fs = FaultFs::new();
        let run = scenario(&fs, |fs| {
            fs.inject(Fault::on_any(&Op::ALL).after(k).power_cut())
        });
        assert_eq!(fs.is_dead(), k < calls, "call {k} of {calls}");
        if fs.files(&common::dir()).iter().any(|n| n.ends_with(".tmp")) {
            tmp_left += 1;
        }
        // Unlike a power loss, everything written survives, synced or not.
        fs.kill();
        check_recovery(&fs, &run, &format!("process crash at call {k} of {calls}"));
    }
    assert!(tmp_left > 0, "some crash points leave a .wal.tmp behind");
}

#[test]
fn any_failure_while_writing_the_checkpoint_changes_nothing_and_does_not_poison() {
    let dry = FaultFs::new();
    let (mut store, model) = populate(&dry);
    let job = store.begin_compaction().unwrap().unwrap();
    let start = dry.total_ops();
    job.run(&mut model.snapshot_records()).unwrap();
    let calls = dry.total_ops() - start;
    drop(store);

    for k in 0..calls {
        let case = format!("failure at call {k} of {calls} of the job");
        let fs = FaultFs::new();
        let (mut store, mut model) = populate(&fs);
        let job = store.begin_compaction().unwrap().unwrap();
        let snapshot: Vec<Record> = model.snapshot_records().collect();
        assert!(append(&mut store, &mut model, &batch(100)), "{case}");
        let before = segments(&fs, &common::dir());
        let mut fault = Fault::on_any(&Op::ALL).after(k);
        if k % 2 == 0 {
            fault = fault.no_space();
        }
        fs.inject(fault);
        let outcome = job.run(&mut snapshot.into_iter());
        let failed = outcome.is_err();
        let finished = store.finish_compaction(outcome);
        assert_eq!(failed, finished.is_err(), "{case}");
        fs.clear_faults();
        if failed {
            assert_eq!(store.stats().compactions_failed, 1, "{case}");
            assert_eq!(store.stats().compactions, 0, "{case}");
            let after = fs.files(&common::dir());
            assert!(
                after.iter().all(|name| !name.ends_with(".tmp")),
                "{case}: the unfinished checkpoint is removed: {after:?}"
            );
            for name in &before {
                assert!(after.contains(name), "{case}: {name} must stay");
            }
        }
        // Not poisoned: appends keep working.
        assert!(append(&mut store, &mut model, &batch(101)), "{case}");
        drop(store);
        fs.crash();
        let (mut store, recovered) = open(&fs, cfg());
        assert_eq!(recovered, model, "{case}: the log is intact");
        // A later compaction succeeds.
        store.compact(&mut model.snapshot_records()).unwrap();
        assert!(append(&mut store, &mut model, &batch(102)), "{case}");
        drop(store);
        fs.crash();
        assert_eq!(
            open(&fs, cfg()).1,
            model,
            "{case}: after a later compaction"
        );
        assert_eq!(segments(&fs, &common::dir()).len(), 2, "{case}");
    }
}

#[test]
fn no_space_for_the_checkpoint_or_the_new_segment_leaves_the_store_usable() {
    let fs = FaultFs::new();
    let (mut store, mut model) = populate(&fs);

    // No room for the segment appends would move to: the compaction does not start.
    fs.inject(Fault::on(Op::Create).no_space());
    let error = store.begin_compaction().unwrap_err();
    assert!(error.to_string().contains("disk is not full"), "{error}");
    assert!(append(&mut store, &mut model, &batch(100)));

    // No room for the checkpoint: the job fails, appends elsewhere still fit.
    fs.inject(Fault::on(Op::Write).on_path(".tmp").no_space().sticky());
    let job = store.begin_compaction().unwrap().unwrap();
    let snapshot: Vec<Record> = model.snapshot_records().collect();
    assert!(append(&mut store, &mut model, &batch(101)));
    let outcome = job.run(&mut snapshot.into_iter());
    let error = store.finish_compaction(outcome).unwrap_err();
    assert!(
        matches!(&error, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{error}"
    );
    assert!(
        fs.files(&common::dir())
            .iter()
            .all(|n| !n.ends_with(".tmp"))
    );
    assert!(append(&mut store, &mut model, &batch(102)));
    // The blocking form fails the same way and is just as harmless.
    assert!(store.compact(&mut model.snapshot_records()).is_err());
    assert!(append(&mut store, &mut model, &batch(103)));
    assert_eq!(store.stats().compactions_failed, 3);

    fs.clear_faults();
    store.compact(&mut model.snapshot_records()).unwrap();
    assert!(append(&mut store, &mut model, &batch(104)));
    drop(store);
    fs.crash();
    assert_eq!(open(&fs, cfg()).1, model);
}

#[test]
fn appends_go_on_while_a_compaction_job_is_pending() {
    let fs = FaultFs::new();
    let (mut store, mut model) = populate(&fs);
    let job = store.begin_compaction().unwrap().unwrap();
    let snapshot: Vec<Record> = model.snapshot_records().collect();
    // The job has not even started: appends do not wait for it.
    for tx in 100..110 {
        assert!(append(&mut store, &mut model, &batch(tx)));
    }
    assert!(!store.wants_compaction());
    assert!(matches!(
        store.begin_compaction(),
        Err(StoreError::CompactionRunning { .. })
    ));
    let checkpoint = job.checkpoint_sequence();
    let worker = std::thread::spawn(move || job.run(&mut snapshot.into_iter()));
    for tx in 110..120 {
        assert!(append(&mut store, &mut model, &batch(tx)));
    }
    let done = store.finish_compaction(worker.join().unwrap()).unwrap();
    assert_eq!(done.checkpoint_sequence(), checkpoint);
    assert!(done.removed_segments() > 0);
    assert_eq!(store.stats().compactions, 1);
    // Only what was appended since the compaction began still counts towards the next one.
    let since = store.stats().bytes_since_compaction;
    assert!(since > 0 && since < 64 << 10, "{since}");
    drop(store);
    fs.crash();
    assert_eq!(open(&fs, cfg()).1, model);
}

#[test]
fn after_a_failed_compaction_the_store_asks_again_only_after_more_growth() {
    let fs = FaultFs::new();
    let mut cfg = config();
    cfg.compact_after_bytes = 4_000;
    let (mut store, _) = open(&fs, cfg);
    let mut model = SessionTable::new();
    let mut tx = 0;
    while !store.wants_compaction() {
        tx += 1;
        assert!(append(&mut store, &mut model, &batch(tx)));
    }
    fs.inject(Fault::on(Op::SyncFile).on_path(".tmp"));
    assert!(store.compact(&mut model.snapshot_records()).is_err());
    assert!(
        !store.wants_compaction(),
        "a failing disk is not retried at once"
    );
    let failed_at = store.stats().bytes_since_compaction;
    while !store.wants_compaction() {
        tx += 1;
        assert!(append(&mut store, &mut model, &batch(tx)));
    }
    assert!(store.stats().bytes_since_compaction >= failed_at + 2_000);
    store.compact(&mut model.snapshot_records()).unwrap();
    assert!(!store.wants_compaction());
}
