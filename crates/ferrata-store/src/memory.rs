//! An in-memory [`SessionStore`] for tests of other crates: applies records to a
//! [`SessionTable`] and keeps nothing across processes.

use ferrata_core::{Record, SessionTable};

use crate::{SessionStore, StoreError};

/// A store that only keeps the live state in memory. Never fails; never asks to compact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    /// The state the appended records describe.
    pub table: SessionTable,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl SessionStore for MemoryStore {
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        for record in records {
            self.table.apply(record);
        }
        Ok(())
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        let mut table = SessionTable::new();
        for record in live {
            table.apply(&record);
        }
        self.table = table;
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        false
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
                .insert(self.dir.clone(), self.inner.table.clone());
        }
    }

    impl SessionStore for Persisted {
        fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
            self.inner.append(records)?;
            self.save();
            Ok(())
        }

        fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
            self.inner.compact(live)?;
            self.save();
            Ok(())
        }

        fn wants_compaction(&self) -> bool {
            self.inner.wants_compaction()
        }
    }

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        let disk: Arc<Mutex<HashMap<PathBuf, SessionTable>>> = Arc::default();
        let mut factory = |dir: &Path| -> (Box<dyn SessionStore>, SessionTable) {
            let table = disk.lock().unwrap().get(dir).cloned().unwrap_or_default();
            let store = Persisted {
                inner: MemoryStore {
                    table: table.clone(),
                },
                disk: disk.clone(),
                dir: dir.to_path_buf(),
            };
            (Box::new(store), table)
        };
        conformance::run_all(&mut factory);
    }
}
