//! Session stores: the `SessionStore` trait, its conformance suite, the embedded write-ahead
//! log ([`LogStore`]) over a pluggable [`FileSystem`], and an in-memory store ([`MemoryStore`])
//! for tests of other crates.

mod append;
mod compaction;
mod config;
mod error;
mod format;
mod fs;
mod log;
mod memory;
mod prealloc;
mod recovery;
mod repair;
mod segment;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;

pub use compaction::{CompactionDone, CompactionJob};
pub use config::{
    DEFAULT_COMPACT_AFTER_BYTES, DEFAULT_SEGMENT_BYTES, LogStoreConfig, LogStoreStats,
};
pub use error::StoreError;
pub use fs::{
    DirLock, FileSystem, LOCK_FILE_NAME, LockError, OsFileSystem, ReadableFile, WritableFile,
};
pub use log::LogStore;
pub use memory::MemoryStore;
pub use prealloc::{Preallocation, SPARE_FILE_NAME};
pub use repair::{DroppedBytes, RepairReport};

use ferrata_core::Record;

/// Durable storage of session records. Blocking: the server drives it from one writer thread.
pub trait SessionStore: Send {
    /// Appends records in order and returns only once they are durable (fsync'd / committed).
    /// One call = one group commit: the caller batches many requests' records into one call.
    /// The batch is atomic: after a crash, recovery sees all of it or none of it. On error the
    /// outcome is unknown (the batch may or may not survive a restart), so nothing in it may be
    /// acknowledged.
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError>;

    /// Rewrites storage so that it holds exactly `live` (the snapshot records of the current
    /// state), reclaiming space. Durable on return. Records appended afterwards follow the
    /// snapshot. Blocks appends for as long as it runs; see `begin_compaction`.
    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError>;

    /// Whether the store would like a compaction now (e.g. log bytes since the last compaction
    /// exceed a threshold). False while a background compaction is running.
    fn wants_compaction(&self) -> bool;

    /// Starts a compaction that runs off the calling thread while appends continue: run the
    /// returned job anywhere with the snapshot records of the state as of this call (after
    /// every append made before it), then hand its outcome to `finish_compaction`. `Ok(None)`:
    /// this store compacts only in place, with `compact`. An error leaves the store usable.
    fn begin_compaction(&mut self) -> Result<Option<CompactionJob>, StoreError> {
        Ok(None)
    }

    /// Takes the outcome of the job from `begin_compaction` and returns it (for logging). A
    /// failed job changes nothing: the store stays usable and a later compaction may succeed.
    fn finish_compaction(
        &mut self,
        outcome: Result<CompactionDone, StoreError>,
    ) -> Result<CompactionDone, StoreError> {
        outcome
    }
}

// Lets callers hold `Box<dyn SessionStore>` where a generic store is expected.
impl<S: SessionStore + ?Sized> SessionStore for Box<S> {
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        (**self).append(records)
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        (**self).compact(live)
    }

    fn wants_compaction(&self) -> bool {
        (**self).wants_compaction()
    }

    fn begin_compaction(&mut self) -> Result<Option<CompactionJob>, StoreError> {
        (**self).begin_compaction()
    }

    fn finish_compaction(
        &mut self,
        outcome: Result<CompactionDone, StoreError>,
    ) -> Result<CompactionDone, StoreError> {
        (**self).finish_compaction(outcome)
    }
}
