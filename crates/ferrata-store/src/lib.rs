//! Session stores: the `SessionStore` trait (operations with per-operation outcomes, reads,
//! leases, ids), its model [`StoreState`] and conformance suite, the embedded write-ahead log
//! ([`LogStore`]) over a pluggable [`FileSystem`], and an in-memory store ([`MemoryStore`]).

mod append;
mod compaction;
mod config;
mod error;
mod format;
mod fs;
mod log;
mod memory;
mod op;
mod prealloc;
mod recovery;
mod repair;
mod segment;
mod state;

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
pub use op::{Condition, Lease, LeaseOutcome, OpOutcome, RowKey, RowLock, StoreLimits, StoreOp};
pub use prealloc::{Preallocation, SPARE_FILE_NAME};
pub use repair::{DroppedBytes, RepairReport};
pub use state::{
    ROW_KEY_SEPARATOR, StoreState, branch_rows, canonical_lock_key, check_limits, row_key,
};

use std::ops::Range;

use ferrata_core::{Record, StoredTransaction, TransactionId};
use ferrata_proto::GlobalStatus;

/// Durable storage of sessions, row locks, leases and ids. Blocking: the server drives it from
/// one writer thread. Every backend passes the [`conformance`] suite, whose model is
/// [`StoreState`]: a backend answers every call exactly as that model does.
pub trait SessionStore: Send {
    /// Applies `ops` in order as one group commit (one fsync, one database transaction) and
    /// returns once they are durable, pushing one outcome per op onto `outcomes`. An op that is
    /// not applied (a failed condition, a lock conflict) changes nothing and does not stop the
    /// others; later ops see the effects of earlier ones. The batch is atomic: after a crash,
    /// recovery sees all of its applied ops or none. On error the outcome is unknown (the batch
    /// may or may not survive a restart), so nothing in it may be acknowledged.
    fn apply(&mut self, ops: &[StoreOp], outcomes: &mut Vec<OpOutcome>) -> Result<(), StoreError>;

    /// [`SessionStore::apply`] of unconditional records, for callers that need no outcomes.
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let ops: Vec<StoreOp> = records.iter().cloned().map(StoreOp::put).collect();
        self.apply(&ops, &mut Vec::with_capacity(ops.len()))
    }

    /// The bounds this backend puts on stored values.
    fn limits(&self) -> StoreLimits {
        StoreLimits::NONE
    }

    /// One transaction with its branches, as stored now.
    fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError>;

    /// Up to `limit` transactions with one of `statuses`, in transaction-id order.
    fn transactions_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: usize,
    ) -> Result<Vec<StoredTransaction>, StoreError>;

    /// The rows among `rows` that are locked, with their holders, in the order asked.
    fn lock_holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError>;

    /// The distinct XID prefixes (the TC nodes, `host:port`, that began them) of the stored
    /// transactions, sorted.
    fn xid_prefixes(&self) -> Result<Vec<String>, StoreError>;

    /// Every stored transaction one TC node began (XID prefix `prefix`), in transaction-id
    /// order.
    fn transactions_of_node(&self, prefix: &str) -> Result<Vec<StoredTransaction>, StoreError>;

    /// Records that a TC node with XID prefix `prefix` (its `host:port`) uses this store, so
    /// that other nodes can reach it; idempotent.
    fn announce_node(&mut self, prefix: &str) -> Result<(), StoreError>;

    /// The XID prefixes of every node announced, sorted.
    fn nodes(&self) -> Result<Vec<String>, StoreError>;

    /// Takes the lease `name` for `holder` until `now_ms + ttl_ms`: free, already the
    /// holder's (a renewal), or expired before `now_ms`. Otherwise says who holds it. Nodes
    /// pass their own clocks, so a ttl must exceed the clock skew between them.
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError>;

    /// [`SessionStore::try_lease`] that also takes the lease while `previous` holds it, live
    /// or not: a node taking back what another took over while it was away.
    fn take_lease_from(
        &mut self,
        name: &str,
        holder: &str,
        previous: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Gives the lease up if `holder` holds it; says whether it did.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError>;

    /// Reserves `count` ids that no caller of this store (on any node) was or will be given
    /// again, durably, and returns them.
    fn reserve_ids(&mut self, count: i64) -> Result<Range<i64>, StoreError>;

    /// Rewrites storage so that it holds exactly `live` (the snapshot records of the current
    /// state), reclaiming space. Durable on return. Records appended afterwards follow the
    /// snapshot. Blocks appends for as long as it runs; see `begin_compaction`. Stores that
    /// never need it (a database) do nothing.
    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError>;

    /// Whether the store would like a compaction now (e.g. log bytes since the last compaction
    /// exceed a threshold). False while a background compaction is running.
    fn wants_compaction(&self) -> bool {
        false
    }

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
    fn apply(&mut self, ops: &[StoreOp], outcomes: &mut Vec<OpOutcome>) -> Result<(), StoreError> {
        (**self).apply(ops, outcomes)
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        (**self).append(records)
    }

    fn limits(&self) -> StoreLimits {
        (**self).limits()
    }

    fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError> {
        (**self).transaction(id)
    }

    fn transactions_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: usize,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        (**self).transactions_by_status(statuses, limit)
    }

    fn lock_holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError> {
        (**self).lock_holders(rows)
    }

    fn xid_prefixes(&self) -> Result<Vec<String>, StoreError> {
        (**self).xid_prefixes()
    }

    fn transactions_of_node(&self, prefix: &str) -> Result<Vec<StoredTransaction>, StoreError> {
        (**self).transactions_of_node(prefix)
    }

    fn announce_node(&mut self, prefix: &str) -> Result<(), StoreError> {
        (**self).announce_node(prefix)
    }

    fn nodes(&self) -> Result<Vec<String>, StoreError> {
        (**self).nodes()
    }

    fn take_lease_from(
        &mut self,
        name: &str,
        holder: &str,
        previous: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        (**self).take_lease_from(name, holder, previous, ttl_ms, now_ms)
    }

    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        (**self).try_lease(name, holder, ttl_ms, now_ms)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
        (**self).release_lease(name, holder)
    }

    fn reserve_ids(&mut self, count: i64) -> Result<Range<i64>, StoreError> {
        (**self).reserve_ids(count)
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
