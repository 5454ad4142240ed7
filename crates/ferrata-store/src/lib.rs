//! Session stores: the `SessionStore` trait, its conformance suite, the embedded write-ahead
//! log ([`LogStore`]) and an in-memory store ([`MemoryStore`]) for tests of other crates.

mod error;
mod format;
mod log;
mod memory;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::StoreError;
pub use log::{
    DEFAULT_COMPACT_AFTER_BYTES, DEFAULT_SEGMENT_BYTES, LogStore, LogStoreConfig, LogStoreStats,
};
pub use memory::MemoryStore;

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
    /// snapshot.
    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError>;

    /// Whether the store would like a compaction now (e.g. log bytes since the last compaction
    /// exceed a threshold).
    fn wants_compaction(&self) -> bool;
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
}
