//! What a [`crate::LogStore`] is opened with ([`LogStoreConfig`]) and the I/O counters it keeps
//! ([`LogStoreStats`]).

use crate::Preallocation;

/// Default size after which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default log growth after which [`crate::SessionStore::wants_compaction`] says yes.
pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 256 << 20;

/// Configuration of a [`crate::LogStore`].
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
    /// The coordinator's `rollback_retry_timeout_unlock`: whether a RollbackRetryTimeout
    /// releases rows (see [`ferrata_core::lock::status_holds_locks`]).
    pub rollback_retry_timeout_unlock: bool,
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
            rollback_retry_timeout_unlock: false,
        }
    }
}

impl Default for LogStoreConfig {
    /// Seata's default directory name, `sessionStore`, relative to the working directory.
    fn default() -> LogStoreConfig {
        LogStoreConfig::new("sessionStore")
    }
}

/// Counters of the I/O a [`crate::LogStore`] has done since it was opened (for metrics and tests).
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
    pub(crate) fn add_io(&mut self, other: &LogStoreStats) {
        self.writes += other.writes;
        self.data_syncs += other.data_syncs;
        self.dir_syncs += other.dir_syncs;
        self.segments_created += other.segments_created;
    }
}
