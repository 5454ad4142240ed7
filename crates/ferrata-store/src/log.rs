//! The embedded write-ahead log store, [`LogStore`]: what it holds and how it is opened
//! (lock, recover, resume the newest segment). Appending is in `append`, compaction in
//! `compaction`, recovery in `recovery`, file I/O in `segment`, the byte layout in `format`.
//!
//! The on-disk format — files, byte layout, recovery rules, fault model — is specified in one
//! place: docs/RELIABILITY.md, "Embedded store format".

use std::sync::Arc;

use std::ops::Range;

use ferrata_core::{Record, SessionTable, StoredTransaction, TransactionId};
use ferrata_proto::GlobalStatus;
use tracing::{info, warn};

use crate::append::{APPEND_BUFFER_BYTES, first_segment};
use crate::compaction::{CompactionDone, CompactionJob, RunningCompaction};
use crate::fs::{DirLock, FileSystem, OsFileSystem, WritableFile};
use crate::prealloc::Spare;
use crate::recovery::recover;
use crate::segment::Disk;
use crate::{
    LeaseOutcome, LogStoreConfig, LogStoreStats, OpOutcome, RowKey, RowLock, SessionStore,
    StoreError, StoreLimits, StoreOp, StoreState,
};

/// The embedded write-ahead log store.
#[derive(Debug)]
pub struct LogStore {
    pub(crate) config: LogStoreConfig,
    pub(crate) disk: Disk,
    pub(crate) lock: Arc<dyn DirLock>,
    pub(crate) active: Box<dyn WritableFile>,
    pub(crate) active_seq: u64,
    pub(crate) active_len: u64,
    /// Header version of the active segment: version-1 segments are never sealed.
    pub(crate) active_version: u16,
    /// Set once the active segment is sealed (naming this segment) until that segment exists:
    /// nothing more may go into the sealed one.
    pub(crate) sealed_next: Option<u64>,
    /// Reused for every append so the hot path does not allocate.
    pub(crate) buf: Vec<u8>,
    /// The preallocated file the next segment is made from.
    pub(crate) spare: Spare,
    /// Whether the active segment was preallocated (its syncs change no file size). A growing
    /// one is left for a preallocated one as soon as a spare is ready.
    pub(crate) active_preallocated: bool,
    pub(crate) stats: LogStoreStats,
    /// Set when a write or sync failed: the tail of the log is then unknown.
    pub(crate) poisoned: Option<String>,
    pub(crate) compaction: Option<RunningCompaction>,
    /// After a failed compaction, `wants_compaction` waits until the log has grown to this
    /// many bytes, so a full disk is not hammered with snapshot after snapshot.
    pub(crate) retry_compaction_at: u64,
    /// The live state the log describes: answers conditions, lock checks and reads.
    pub(crate) state: StoreState,
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
        let lock = disk.prepare_dir(&mut stats)?;
        let recovered = recover(&disk, &mut stats)?;
        let segment = match recovered.active {
            Some(segment) => segment,
            None => first_segment(&disk, &mut stats)?,
        };
        let active = match segment.file {
            Some(file) => file,
            None => disk.open_write_at(&segment.path, segment.len)?,
        };
        let spare = Spare::new(&disk, config.preallocation, config.segment_bytes);
        stats.bytes_since_compaction = recovered.bytes_since_compaction;
        stats.active_segment = segment.seq;
        let table = recovered.table;
        let mut state = StoreState::from_table(table.clone(), StoreLimits::NONE);
        state.set_rollback_retry_timeout_unlock(config.rollback_retry_timeout_unlock);
        info!(
            dir = %config.dir.display(),
            transactions = table.len(),
            active_segment = segment.seq,
            "session log recovered"
        );
        let store = LogStore {
            config,
            disk,
            lock,
            active,
            active_seq: segment.seq,
            active_len: segment.len,
            active_version: segment.version,
            // A crash between sealing a segment and creating the next: the first append (or
            // compaction) creates it.
            sealed_next: segment.sealed_next,
            buf: Vec::with_capacity(APPEND_BUFFER_BYTES),
            spare,
            active_preallocated: segment.preallocated,
            stats,
            poisoned: None,
            compaction: None,
            retry_compaction_at: 0,
            state,
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

    pub(crate) fn check_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&mut self, error: &StoreError) {
        warn!(error = %error, "session store poisoned; it refuses further writes until restart");
        self.poisoned = Some(error.to_string());
    }
}

impl SessionStore for LogStore {
    fn apply(&mut self, ops: &[StoreOp], outcomes: &mut Vec<OpOutcome>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return self.check_poisoned();
        }
        // Rotation happens before the index changes, so its failure leaves the store usable.
        self.prepare_append()?;
        let mut applied: Vec<&Record> = Vec::with_capacity(ops.len());
        for op in ops {
            let outcome = self.state.apply(op);
            if outcome.is_applied() {
                applied.push(&op.record);
            }
            outcomes.push(outcome);
        }
        self.write_batch(&applied)
    }

    fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError> {
        Ok(self.state.transaction(id))
    }

    fn transactions_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: usize,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        Ok(self.state.transactions_by_status(statuses, limit))
    }

    fn lock_holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError> {
        Ok(self.state.lock_holders(rows))
    }

    fn xid_prefixes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state.xid_prefixes())
    }

    fn transactions_of_node(&self, prefix: &str) -> Result<Vec<StoredTransaction>, StoreError> {
        Ok(self.state.transactions_of_node(prefix))
    }

    fn announce_node(&mut self, prefix: &str) -> Result<(), StoreError> {
        self.state.announce_node(prefix);
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state.nodes())
    }

    fn take_lease_from(
        &mut self,
        name: &str,
        holder: &str,
        previous: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        Ok(self
            .state
            .take_lease_from(name, holder, previous, ttl_ms, now_ms))
    }

    /// Leases live in memory: the directory lock already makes this process the only user.
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        Ok(self.state.try_lease(name, holder, ttl_ms, now_ms))
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
        Ok(self.state.release_lease(name, holder))
    }

    fn reserve_ids(&mut self, count: i64) -> Result<Range<i64>, StoreError> {
        self.prepare_append()?;
        let (range, record) = self.state.reserve_ids(count);
        self.write_batch(&[&record])?;
        Ok(range)
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        let job = self.start_compaction()?;
        let outcome = job.run(live);
        self.finish_compaction(outcome).map(|_| ())
    }

    fn wants_compaction(&self) -> bool {
        self.compaction_due()
    }

    fn begin_compaction(&mut self) -> Result<Option<CompactionJob>, StoreError> {
        self.start_compaction().map(Some)
    }

    fn finish_compaction(
        &mut self,
        outcome: Result<CompactionDone, StoreError>,
    ) -> Result<CompactionDone, StoreError> {
        self.take_compaction_outcome(outcome)
    }
}
