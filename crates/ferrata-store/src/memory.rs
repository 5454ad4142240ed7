//! An in-memory [`SessionStore`] for tests of other crates: applies records to a
//! [`SessionTable`] and keeps nothing across processes.

use std::ops::Range;

use ferrata_core::{Record, SessionTable, StoredTransaction, TransactionId};
use ferrata_proto::GlobalStatus;

use crate::{
    LeaseOutcome, OpOutcome, RowKey, RowLock, SessionStore, StoreError, StoreLimits, StoreOp,
    StoreState,
};

/// A store that only keeps the live state in memory. Never fails; never asks to compact.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub state: StoreState,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding `table`, as if recovered.
    pub fn with_table(table: SessionTable) -> MemoryStore {
        MemoryStore {
            state: StoreState::from_table(table, StoreLimits::NONE),
        }
    }

    pub fn table(&self) -> &SessionTable {
        self.state.table()
    }
}

impl SessionStore for MemoryStore {
    fn apply(&mut self, ops: &[StoreOp], outcomes: &mut Vec<OpOutcome>) -> Result<(), StoreError> {
        outcomes.extend(ops.iter().map(|op| self.state.apply(op)));
        Ok(())
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
        Ok(self.state.reserve_ids(count).0)
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        let mut table = SessionTable::new();
        for record in live {
            table.apply(&record);
        }
        self.state = StoreState::from_table(table, StoreLimits::NONE);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::conformance;

    /// Stands in for a disk: on "reopen" the factory hands back what the previous MemoryStore
    /// for that directory held, so the suite's reopen checks exercise MemoryStore itself.
    #[derive(Debug)]
    struct Persisted {
        inner: MemoryStore,
        disk: Arc<Mutex<HashMap<PathBuf, SessionTable>>>,
        dir: PathBuf,
    }

    impl Persisted {
        fn save(&self) {
            self.disk
                .lock()
                .unwrap()
                .insert(self.dir.clone(), self.inner.table().clone());
        }
    }

    impl SessionStore for Persisted {
        fn apply(
            &mut self,
            ops: &[StoreOp],
            outcomes: &mut Vec<OpOutcome>,
        ) -> Result<(), StoreError> {
            self.inner.apply(ops, outcomes)?;
            self.save();
            Ok(())
        }

        fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError> {
            self.inner.transaction(id)
        }

        fn transactions_by_status(
            &self,
            statuses: &[GlobalStatus],
            limit: usize,
        ) -> Result<Vec<StoredTransaction>, StoreError> {
            self.inner.transactions_by_status(statuses, limit)
        }

        fn lock_holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError> {
            self.inner.lock_holders(rows)
        }

        fn xid_prefixes(&self) -> Result<Vec<String>, StoreError> {
            self.inner.xid_prefixes()
        }

        fn transactions_of_node(&self, prefix: &str) -> Result<Vec<StoredTransaction>, StoreError> {
            self.inner.transactions_of_node(prefix)
        }

        fn announce_node(&mut self, prefix: &str) -> Result<(), StoreError> {
            self.inner.announce_node(prefix)
        }

        fn nodes(&self) -> Result<Vec<String>, StoreError> {
            self.inner.nodes()
        }

        fn take_lease_from(
            &mut self,
            name: &str,
            holder: &str,
            previous: &str,
            ttl_ms: i64,
            now_ms: i64,
        ) -> Result<LeaseOutcome, StoreError> {
            self.inner
                .take_lease_from(name, holder, previous, ttl_ms, now_ms)
        }

        fn try_lease(
            &mut self,
            name: &str,
            holder: &str,
            ttl_ms: i64,
            now_ms: i64,
        ) -> Result<LeaseOutcome, StoreError> {
            self.inner.try_lease(name, holder, ttl_ms, now_ms)
        }

        fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
            self.inner.release_lease(name, holder)
        }

        fn reserve_ids(&mut self, count: i64) -> Result<Range<i64>, StoreError> {
            let range = self.inner.reserve_ids(count)?;
            self.save();
            Ok(range)
        }

        fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
            self.inner.compact(live)?;
            self.save();
            Ok(())
        }
    }

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        let disk: Arc<Mutex<HashMap<PathBuf, SessionTable>>> = Arc::default();
        let mut factory = |dir: &Path| -> (Box<dyn SessionStore>, SessionTable) {
            let table = disk.lock().unwrap().get(dir).cloned().unwrap_or_default();
            let store = Persisted {
                inner: MemoryStore::with_table(table.clone()),
                disk: disk.clone(),
                dir: dir.to_path_buf(),
            };
            (Box::new(store), table)
        };
        conformance::run_all(&mut factory);
    }
}
