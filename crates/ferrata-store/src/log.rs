//! The embedded write-ahead log: append-only segment files, one checksummed frame per batch,
//! one write and one `fdatasync` per group commit, checkpoint compaction off the writer thread,
//! crash recovery, and repair of damaged directories.
//!
//! # Format (version 2)
//!
//! The specification — files, byte layout, recovery rules, fault model — is in
//! docs/RELIABILITY.md, "Embedded store format"; this is a summary. The directory holds segment
//! files `NNNNNNNNNNNNNNNNNNNN.wal` (20-digit sequence number), checkpoints being written
//! (`NNNNNNNNNNNNNNNNNNNN.wal.tmp`, deleted by recovery), a `LOCK` file (the directory lock) and
//! `damaged-<unix-ms>/` directories left by repair; anything else is ignored. All integers are
//! big-endian.
//!
//! * Segment header, 24 bytes: magic `FERRWAL\0`, format version u16 (2; 1 is still read),
//!   flags u16 (bit 0: checkpoint), sequence u64 (equals the file name), CRC-32 (IEEE) of the
//!   previous 20 bytes.
//! * Frames: payload length u32, CRC-32 of (the 4 length bytes + payload), payload whose first
//!   byte is the kind: `1` batch (record count u32, then the records of one `append`, or one
//!   ~1 MiB chunk of a checkpoint), `2` checkpoint end (record count u64 of the checkpoint),
//!   `3` seal (sequence u64 of the next segment; the last frame of every segment appends moved
//!   on from; version 2).
//! * Records: Seata's opcodes 1–6 (GlobalAdd, GlobalUpdate, GlobalRemove, BranchAdd,
//!   BranchUpdate, BranchRemove) and Ferrata's 100 (IdReserve), then their fields; strings are
//!   u32 byte length + UTF-8.
//!
//! A checkpoint segment holds a snapshot of the live state as of the end of the segment before
//! it. It is written to a `.tmp` file, synced, and renamed to its segment name, so it exists
//! only once complete. Recovery replays the newest checkpoint and every newer segment.

use std::path::Path;
use std::sync::Arc;

use ferrata_core::{Record, SessionTable};
use tracing::{info, warn};

use crate::compaction::{CompactionDone, CompactionJob};
use crate::format::{BatchFrame, FORMAT_VERSION, encode_header, push_seal};
use crate::fs::{DirLock, FileSystem, LockError, OsFileSystem, WritableFile};
use crate::prealloc::{Preallocation, Spare};
use crate::recovery::recover;
use crate::segment::{Disk, HEADER_LEN, segment_path};
use crate::{SessionStore, StoreError};

/// Default size after which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default log growth after which [`SessionStore::wants_compaction`] says yes.
pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 256 << 20;
/// An exceptional huge batch should not pin its buffer for the life of the process.
const MAX_RETAINED_BUFFER: usize = 16 << 20;

/// Configuration of a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStoreConfig {
    /// Directory of the segment files; created if missing. One process per directory: `open`
    /// locks it.
    pub dir: std::path::PathBuf,
    /// Start a new segment once the current one exceeds this many bytes.
    pub segment_bytes: u64,
    /// Ask for a compaction once this many bytes were logged since the last one.
    pub compact_after_bytes: u64,
    /// `fdatasync` every append (and the directory after creating files). `false` gives up
    /// durability; only for tests and benchmarks.
    pub fsync: bool,
    /// Prepare each next segment as a zero-filled spare file, so syncs change no file size.
    /// Costs one segment's worth of disk for the spare.
    pub preallocation: Preallocation,
}

impl LogStoreConfig {
    /// The defaults (64 MiB segments, compaction after 256 MiB, fsync on) for `dir`.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> LogStoreConfig {
        LogStoreConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
            fsync: true,
            preallocation: Preallocation::Off,
        }
    }
}

impl Default for LogStoreConfig {
    /// Seata's default directory name, `sessionStore`, relative to the working directory.
    fn default() -> LogStoreConfig {
        LogStoreConfig::new("sessionStore")
    }
}

/// Counters of the I/O a [`LogStore`] has done since it was opened (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// Non-empty `append` calls that succeeded.
    pub appends: u64,
    /// `write` calls issued for segment data (headers, batches, checkpoint chunks).
    pub writes: u64,
    /// `fdatasync`/`fsync` calls on segment files.
    pub data_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
    /// Segment files created (rotations and checkpoints).
    pub segments_created: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Compactions that failed (the log stayed as it was).
    pub compactions_failed: u64,
    /// Bytes logged since the last compaction (what `wants_compaction` compares).
    pub bytes_since_compaction: u64,
    /// Sequence number of the segment appends go to.
    pub active_segment: u64,
}

impl LogStoreStats {
    /// Adds the I/O counters of work done elsewhere (a compaction job).
    fn add_io(&mut self, other: &LogStoreStats) {
        self.writes += other.writes;
        self.data_syncs += other.data_syncs;
        self.dir_syncs += other.dir_syncs;
        self.segments_created += other.segments_created;
    }
}

/// The embedded write-ahead log store.
#[derive(Debug)]
pub struct LogStore {
    config: LogStoreConfig,
    disk: Disk,
    lock: Arc<dyn DirLock>,
    active: Box<dyn WritableFile>,
    active_seq: u64,
    active_len: u64,
    /// Header version of the active segment: version-1 segments are never sealed.
    active_version: u16,
    /// Set once the active segment is sealed (naming this segment) until that segment exists:
    /// nothing more may go into the sealed one.
    sealed_next: Option<u64>,
    /// Reused for every append so the hot path does not allocate.
    buf: Vec<u8>,
    /// The preallocated file the next segment is made from.
    spare: Spare,
    /// Whether the active segment was preallocated (its syncs change no file size). A growing
    /// one is left for a preallocated one as soon as a spare is ready.
    active_preallocated: bool,
    stats: LogStoreStats,
    /// Set when a write or sync failed: the tail of the log is then unknown.
    poisoned: Option<String>,
    compaction: Option<RunningCompaction>,
    /// After a failed compaction, `wants_compaction` waits until the log has grown to this
    /// many bytes, so a full disk is not hammered with snapshot after snapshot.
    retry_compaction_at: u64,
}

#[derive(Debug, Clone, Copy)]
struct RunningCompaction {
    seq: u64,
    /// `bytes_since_compaction` when it started: what the checkpoint will make obsolete.
    bytes_before: u64,
}

/// Creates the store directory, makes its entry durable, and locks it.
pub(crate) fn prepare_dir(
    disk: &Disk,
    stats: &mut LogStoreStats,
) -> Result<Arc<dyn DirLock>, StoreError> {
    let dir = &disk.dir;
    disk.fs.create_dir_all(dir).map_err(|e| {
        StoreError::io(
            format!("cannot create store directory {}", dir.display()),
            e,
        )
    })?;
    // The directory may be new: its own entry must be durable before data in it is.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    disk.sync_other_dir(parent, stats)?;
    match disk.fs.lock_dir(dir) {
        Ok(lock) => Ok(Arc::from(lock)),
        Err(LockError::Held { pid }) => Err(StoreError::Locked {
            dir: dir.clone(),
            pid,
        }),
        Err(LockError::Io(e)) => Err(StoreError::io(
            format!(
                "cannot lock store directory {} (it must be on a local file system that \
                 supports file locks)",
                dir.display()
            ),
            e,
        )),
    }
}

/// Writes the header of a new segment for appends, and makes it and the directory entry
/// durable before any batch is acknowledged in it.
fn init_segment(
    disk: &Disk,
    file: &mut dyn WritableFile,
    path: &Path,
    seq: u64,
    stats: &mut LogStoreStats,
) -> Result<(), StoreError> {
    disk.write(file, &encode_header(seq, 0), path, stats)?;
    disk.sync_file(file, path, stats)?;
    disk.sync_dir(stats)
}

impl LogStore {
    /// Opens the store on the real file system; see [`LogStore::open_with`].
    pub fn open(config: LogStoreConfig) -> Result<(LogStore, SessionTable), StoreError> {
        LogStore::open_with(config, Arc::new(OsFileSystem))
    }

    /// Opens (creating and locking the directory) over `fs` and recovers: replays the
    /// segments and returns the live state. Repairs only what a crash can leave (a torn tail,
    /// an unfinished checkpoint or segment header, segments an interrupted compaction did not
    /// delete); anything else is [`StoreError::Corrupt`] (see [`LogStore::repair`]). A
    /// directory another store holds is [`StoreError::Locked`]; the lock is released when the
    /// store (and any compaction job it started) is dropped.
    pub fn open_with(
        config: LogStoreConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<(LogStore, SessionTable), StoreError> {
        let disk = Disk {
            fs,
            dir: config.dir.clone(),
            fsync: config.fsync,
        };
        let mut stats = LogStoreStats::default();
        let lock = prepare_dir(&disk, &mut stats)?;
        let recovered = recover(&disk, &mut stats)?;

        let mut active_version = FORMAT_VERSION;
        let mut sealed_next = None;
        let mut active_preallocated = false;
        let (active, active_seq, active_len) = match recovered.active {
            Some(segment) => {
                active_preallocated = segment.preallocated;
                let file = match segment.file {
                    Some(file) => file,
                    None => disk.open_write_at(&segment.path, segment.len)?,
                };
                active_version = segment.version;
                // A crash between sealing a segment and creating the next: the first append
                // (or compaction) creates it.
                sealed_next = segment.sealed_next;
                (file, segment.seq, segment.len)
            }
            None => {
                let path = segment_path(&disk.dir, 1);
                let mut file = disk.create(&path)?;
                stats.segments_created += 1;
                if let Err(e) = init_segment(&disk, file.as_mut(), &path, 1, &mut stats) {
                    // Best effort: a header-less newest file is discarded by the next open anyway.
                    drop(file);
                    let _ = disk.fs.remove_file(&path);
                    return Err(e);
                }
                (file, 1, HEADER_LEN)
            }
        };
        stats.bytes_since_compaction = recovered.bytes_since_compaction;
        stats.active_segment = active_seq;
        let table = recovered.table;
        let spare = Spare::new(&disk, config.preallocation, config.segment_bytes);
        info!(
            dir = %config.dir.display(),
            transactions = table.len(),
            active_segment = active_seq,
            "session log recovered"
        );
        let store = LogStore {
            config,
            disk,
            lock,
            active,
            active_seq,
            active_len,
            active_version,
            sealed_next,
            buf: Vec::with_capacity(64 << 10),
            spare,
            active_preallocated,
            stats,
            poisoned: None,
            compaction: None,
            retry_compaction_at: 0,
        };
        Ok((store, table))
    }

    /// I/O counters since `open`.
    pub fn stats(&self) -> LogStoreStats {
        self.stats
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &LogStoreConfig {
        &self.config
    }

    /// Whether a compaction job was started and its outcome not yet finished.
    pub fn compaction_running(&self) -> bool {
        self.compaction.is_some()
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: &StoreError) {
        warn!(error = %error, "session store poisoned; it refuses further writes until restart");
        self.poisoned = Some(error.to_string());
    }

    /// Moves appends on to segment `next`: seals the active segment naming `next` (unless it is
    /// sealed already, naming another, or a version-1 segment), then creates `next`. A failed
    /// seal leaves the active segment's tail unknown and poisons the store; a failed creation
    /// leaves the sealed segment as it is, and the next append or compaction tries again.
    fn rotate(&mut self, next: u64) -> Result<(), StoreError> {
        let next = match self.sealed_next {
            Some(named) => named,
            None => {
                if self.active_version >= 2 {
                    self.seal(next)?;
                }
                self.trim_preallocated_tail();
                next
            }
        };
        self.switch_to_new_segment(next)
    }

    fn seal(&mut self, next: u64) -> Result<(), StoreError> {
        self.buf.clear();
        push_seal(&mut self.buf, next)?;
        self.write_buf_durably()?;
        self.sealed_next = Some(next);
        Ok(())
    }

    /// Writes `buf` at the end of the active segment and syncs it. From the write on, a failure
    /// leaves the file tail unknown: appending after it could put acknowledged batches behind
    /// garbage, so the store is poisoned instead.
    fn write_buf_durably(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.disk.dir, self.active_seq);
        let mut result = self
            .disk
            .write(self.active.as_mut(), &self.buf, &path, &mut self.stats);
        if result.is_ok() {
            result = self
                .disk
                .sync_file(self.active.as_mut(), &path, &mut self.stats);
        }
        if let Err(e) = result {
            self.poison(&e);
            return Err(e);
        }
        let n = self.buf.len() as u64;
        self.active_len += n;
        self.stats.bytes_since_compaction += n;
        Ok(())
    }

    /// Gives the unused zeros of a preallocated segment that appends moved on from back to
    /// the file system. Not synced: a crash before the size change is durable leaves zeros
    /// after the seal, which recovery reads as the end of the segment.
    fn trim_preallocated_tail(&mut self) {
        if self.config.preallocation == Preallocation::Off {
            return;
        }
        if let Err(e) = self.active.set_len(self.active_len) {
            warn!(error = %e, segment = self.active_seq, "cannot trim the unused end of a preallocated segment");
        }
    }

    /// Makes `seq` the segment appends go to. On failure the current segment stays active,
    /// intact, and the half-made file is removed.
    fn switch_to_new_segment(&mut self, seq: u64) -> Result<(), StoreError> {
        let path = segment_path(&self.disk.dir, seq);
        // If even creating fails there is nothing to undo (and the name may not be ours).
        let mut file = self.disk.create(&path)?;
        self.stats.segments_created += 1;
        let spare = self.spare.take();
        let preallocated = spare.is_some();
        if let Some(spare) = spare {
            // The name is ours now; the spare replaces the empty file under it.
            drop(file);
            let renamed = self
                .disk
                .rename(&spare, &path)
                .and_then(|()| self.disk.open_write_at(&path, 0));
            file = match renamed {
                Ok(file) => file,
                Err(e) => {
                    self.discard_partial(&path);
                    return Err(e);
                }
            };
        }
        if let Err(e) = init_segment(&self.disk, file.as_mut(), &path, seq, &mut self.stats) {
            drop(file);
            self.discard_partial(&path);
            return Err(e);
        }
        self.active = file;
        self.active_seq = seq;
        self.active_len = HEADER_LEN;
        self.active_version = FORMAT_VERSION;
        self.sealed_next = None;
        self.stats.active_segment = seq;
        self.active_preallocated = preallocated;
        self.spare.replenish(&self.disk);
        Ok(())
    }

    /// Removes a segment whose creation failed, so that neither the next attempt nor recovery
    /// trips over it; if even that fails, the next rotation would collide with it, so nothing
    /// more may be written.
    fn discard_partial(&mut self, path: &Path) {
        match self.disk.fs.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let error = StoreError::io(
                    format!("cannot remove unfinished segment {}", path.display()),
                    e,
                );
                self.poison(&error);
            }
        }
    }

    /// Starts a compaction; see [`SessionStore::begin_compaction`].
    fn start_compaction(&mut self) -> Result<CompactionJob, StoreError> {
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

    fn compaction_failed(&mut self, error: &StoreError) {
        warn!(error = %error, "compaction failed; the log is intact and appends continue");
        self.stats.compactions_failed += 1;
        self.retry_compaction_at = self
            .stats
            .bytes_since_compaction
            .saturating_add(self.config.compact_after_bytes / 2);
    }

    fn shrink_buf(&mut self) {
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::with_capacity(64 << 10);
        }
    }
}

impl SessionStore for LogStore {
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if records.is_empty() {
            return Ok(());
        }
        let leave_growing_segment = !self.active_preallocated && self.spare.poll_ready();
        if self.sealed_next.is_some()
            || self.active_len > self.config.segment_bytes
            || leave_growing_segment
        {
            // A failure to create the new segment leaves the store usable (not poisoned).
            self.rotate(self.active_seq + 1)?;
        }
        self.buf.clear();
        let mut frame = BatchFrame::begin(&mut self.buf);
        for record in records {
            frame.push(&mut self.buf, record)?;
        }
        frame.finish(&mut self.buf)?;
        self.write_buf_durably()?;
        self.stats.appends += 1;
        self.shrink_buf();
        Ok(())
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        let job = self.start_compaction()?;
        let outcome = job.run(live);
        self.finish_compaction(outcome).map(|_| ())
    }

    fn wants_compaction(&self) -> bool {
        let logged = self.stats.bytes_since_compaction;
        self.poisoned.is_none()
            && self.compaction.is_none()
            && logged >= self.config.compact_after_bytes
            && logged >= self.retry_compaction_at
    }

    fn begin_compaction(&mut self) -> Result<Option<CompactionJob>, StoreError> {
        self.start_compaction().map(Some)
    }

    fn finish_compaction(
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
}
