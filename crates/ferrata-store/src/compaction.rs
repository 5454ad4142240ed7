//! Background compaction: the writer thread starts a [`CompactionJob`] (appends move on to a
//! fresh segment), any thread runs it (writes the checkpoint, deletes what it supersedes), and
//! the writer thread hands the outcome back to the store with `finish_compaction`. Both halves
//! live here: the job, and the [`LogStore`] side that starts it and takes its outcome.

use std::sync::Arc;

use ferrata_core::Record;
use tracing::warn;

use crate::fs::DirLock;
use crate::segment::{Disk, write_checkpoint};
use crate::{LogStore, LogStoreStats, StoreError};

/// A checkpoint to write, started by [`crate::SessionStore::begin_compaction`]. `Send`: run it
/// on any thread while the store keeps appending, then pass the result of [`run`] to
/// [`crate::SessionStore::finish_compaction`]. Dropping it unrun is harmless (nothing was
/// written); the store still expects `finish_compaction` with an error before the next one.
///
/// [`run`]: CompactionJob::run
#[derive(Debug)]
#[must_use = "a compaction job does nothing until it is run and its outcome finished"]
pub struct CompactionJob {
    disk: Disk,
    seq: u64,
    // Keeps the directory locked while the job runs, even if the store is dropped first.
    _lock: Arc<dyn DirLock>,
}

/// A compaction that completed: its checkpoint is durable.
#[derive(Debug, Clone)]
pub struct CompactionDone {
    seq: u64,
    records: u64,
    bytes: u64,
    removed_segments: u64,
    pub(crate) io: LogStoreStats,
}

impl CompactionDone {
    /// Sequence number of the checkpoint segment.
    pub fn checkpoint_sequence(&self) -> u64 {
        self.seq
    }

    /// Records in the checkpoint.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Size of the checkpoint segment in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Files deleted because the checkpoint supersedes them (older segments, and leftovers of
    /// earlier failed compactions).
    pub fn removed_segments(&self) -> u64 {
        self.removed_segments
    }
}

impl CompactionJob {
    pub(crate) fn new(disk: Disk, seq: u64, lock: Arc<dyn DirLock>) -> CompactionJob {
        CompactionJob {
            disk,
            seq,
            _lock: lock,
        }
    }

    /// Sequence number of the checkpoint segment this job writes.
    pub fn checkpoint_sequence(&self) -> u64 {
        self.seq
    }

    /// Writes `live` as the checkpoint and deletes the segments it supersedes. `live` must be
    /// the snapshot records of the state as of the moment `begin_compaction` returned, that is
    /// after every append made before it and none made after. Blocking; safe to run while the
    /// store appends. On error nothing the log needs was touched: recovery still replays the
    /// old segments and the newer ones in order.
    pub fn run(self, live: &mut dyn Iterator<Item = Record>) -> Result<CompactionDone, StoreError> {
        let mut io = LogStoreStats::default();
        let written = write_checkpoint(&self.disk, self.seq, live, &mut io)?;
        let removed_segments = remove_superseded(&self.disk, self.seq, &mut io);
        Ok(CompactionDone {
            seq: self.seq,
            records: written.records,
            bytes: written.bytes,
            removed_segments,
            io,
        })
    }
}

/// Deletes every segment (and unfinished checkpoint) older than the checkpoint `seq`. Best
/// effort: recovery deletes whatever is left, since it starts at the newest checkpoint.
fn remove_superseded(disk: &Disk, seq: u64, io: &mut LogStoreStats) -> u64 {
    let listing = match disk.list() {
        Ok(listing) => listing,
        Err(e) => {
            warn!(error = %e, "cannot list old segments after compaction; they will be deleted at next start");
            return 0;
        }
    };
    let mut removed = 0;
    let old = listing.segments.iter().chain(listing.temps.iter());
    for (_, path) in old.filter(|(s, _)| *s < seq) {
        match disk.remove(path) {
            Ok(()) => removed += 1,
            Err(e) => {
                warn!(error = %e, "cannot delete a compacted segment; it will be deleted at next start");
            }
        }
    }
    if removed > 0
        && let Err(e) = disk.sync_dir(io)
    {
        warn!(error = %e, "cannot sync the store directory after deleting old segments");
    }
    removed
}

/// The compaction a [`LogStore`] started and has not yet taken the outcome of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningCompaction {
    seq: u64,
    /// `bytes_since_compaction` when it started: what the checkpoint will make obsolete.
    bytes_before: u64,
}

impl LogStore {
    /// [`crate::SessionStore::wants_compaction`].
    pub(crate) fn compaction_due(&self) -> bool {
        let logged = self.stats.bytes_since_compaction;
        self.poisoned.is_none()
            && self.compaction.is_none()
            && logged >= self.config.compact_after_bytes
            && logged >= self.retry_compaction_at
    }

    /// Starts a compaction; see [`crate::SessionStore::begin_compaction`].
    pub(crate) fn start_compaction(&mut self) -> Result<CompactionJob, StoreError> {
        self.check_poisoned()?;
        if let Some(running) = self.compaction {
            return Err(StoreError::CompactionRunning {
                checkpoint: running.seq,
            });
        }
        let mut rotated = Ok(());
        if let Some(named) = self.sealed_next {
            // Finish the rotation a failure interrupted: the sealed segment names its successor.
            rotated = self.rotate(named);
        }
        // The checkpoint takes the next number; appends move past it, so replaying the
        // checkpoint and then every newer segment is correct whenever it completes.
        let seq = self.active_seq + 1;
        let bytes_before = self.stats.bytes_since_compaction;
        if let Err(e) = rotated.and_then(|()| self.rotate(seq + 1)) {
            self.compaction_failed(&e);
            return Err(e);
        }
        self.compaction = Some(RunningCompaction { seq, bytes_before });
        Ok(CompactionJob::new(
            self.disk.clone(),
            seq,
            self.lock.clone(),
        ))
    }

    /// [`crate::SessionStore::finish_compaction`]: books the outcome of the running job.
    pub(crate) fn take_compaction_outcome(
        &mut self,
        outcome: Result<CompactionDone, StoreError>,
    ) -> Result<CompactionDone, StoreError> {
        let Some(running) = self.compaction.take() else {
            warn!("finish_compaction called but no compaction is running; ignored");
            return outcome;
        };
        match &outcome {
            Ok(done) if done.checkpoint_sequence() == running.seq => {
                self.stats.add_io(&done.io);
                self.stats.compactions += 1;
                self.stats.bytes_since_compaction = self
                    .stats
                    .bytes_since_compaction
                    .saturating_sub(running.bytes_before);
                self.retry_compaction_at = 0;
            }
            Ok(done) => {
                warn!(
                    running = running.seq,
                    finished = done.checkpoint_sequence(),
                    "finish_compaction got the outcome of another job; ignored"
                );
                self.compaction = Some(running);
            }
            Err(e) => self.compaction_failed(e),
        }
        outcome
    }

    fn compaction_failed(&mut self, error: &StoreError) {
        warn!(error = %error, "compaction failed; the log is intact and appends continue");
        self.stats.compactions_failed += 1;
        self.retry_compaction_at = self
            .stats
            .bytes_since_compaction
            .saturating_add(self.config.compact_after_bytes / 2);
    }
}
