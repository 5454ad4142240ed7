//! [`StoreState`]: the meaning of every store operation, in memory. The embedded backends keep
//! one as their index and answer from it; the conformance suite uses one as the model that
//! every other backend (a shared database) must answer exactly like.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use ferrata_core::lock::{
    LockHolder, LockKeyLimits, LockManager, LockRow, parse_lock_key, status_holds_locks,
};
use ferrata_core::{
    BranchSession, GlobalSession, Record, SessionTable, StoredTransaction, xid_prefix,
};
use ferrata_proto::{BranchType, GlobalStatus};

use crate::op::{Condition, Lease, LeaseOutcome, OpOutcome, RowKey, RowLock, StoreLimits, StoreOp};

/// Separates resource, table and primary key in a lock row's key (Seata's `row_key`).
pub const ROW_KEY_SEPARATOR: &str = "^^^";

/// The rows an AT branch locks, in lock-key order; none for other branch types.
pub fn branch_rows(branch: &BranchSession) -> Vec<LockRow<'_>> {
    if branch.branch_type != BranchType::At || branch.lock_key.is_empty() {
        return Vec::new();
    }
    // The core checked the key against its limits when the branch registered.
    parse_lock_key(&branch.lock_key, LockKeyLimits::NONE).unwrap_or_default()
}

/// A lock key rebuilt from its rows, as a database holding only the rows gives it back:
/// rows sorted by table then primary key, `table:pk,pk;table:pk`.
pub fn canonical_lock_key<'a>(rows: impl IntoIterator<Item = LockRow<'a>>) -> String {
    let mut rows: Vec<LockRow<'a>> = rows.into_iter().collect();
    rows.sort_unstable();
    rows.dedup();
    let mut key = String::new();
    let mut current: Option<&str> = None;
    for (table, pk) in rows {
        if current == Some(table) {
            key.push(',');
        } else {
            if current.is_some() {
                key.push(';');
            }
            key.push_str(table);
            key.push(':');
            current = Some(table);
        }
        key.push_str(pk);
    }
    key
}

/// Seata's `row_key` of a locked row: `resource^^^table^^^pk`.
pub fn row_key(resource_id: &str, table: &str, pk: &str) -> String {
    format!("{resource_id}{ROW_KEY_SEPARATOR}{table}{ROW_KEY_SEPARATOR}{pk}")
}

/// Sessions, row locks, leases and the id high-water mark, changed only through [`StoreOp`]s.
#[derive(Debug, Default)]
pub struct StoreState {
    table: SessionTable,
    locks: LockManager,
    leases: BTreeMap<String, Lease>,
    /// XID prefixes of the TC nodes announced.
    nodes: BTreeSet<String>,
    limits: StoreLimits,
    /// See [`status_holds_locks`].
    rollback_retry_timeout_unlock: bool,
}

impl StoreState {
    pub fn new(limits: StoreLimits) -> StoreState {
        StoreState {
            limits,
            ..StoreState::default()
        }
    }

    /// Whether a RollbackRetryTimeout releases the rows (see [`status_holds_locks`]); the
    /// coordinator's setting of the same name.
    pub fn set_rollback_retry_timeout_unlock(&mut self, unlock: bool) {
        self.rollback_retry_timeout_unlock = unlock;
        self.rebuild_locks();
    }

    /// Whether the AT branches of a transaction in `status` hold their rows here.
    pub fn holds_locks(&self, status: GlobalStatus) -> bool {
        status_holds_locks(status, self.rollback_retry_timeout_unlock)
    }

    /// The state of a recovered table: the AT branches of transactions whose status holds
    /// locks take their rows again.
    pub fn from_table(table: SessionTable, limits: StoreLimits) -> StoreState {
        let mut state = StoreState {
            table,
            locks: LockManager::new(),
            leases: BTreeMap::new(),
            nodes: BTreeSet::new(),
            limits,
            rollback_retry_timeout_unlock: false,
        };
        state.rebuild_locks();
        state
    }

    fn rebuild_locks(&mut self) {
        self.locks = LockManager::new();
        for tx in self.table.transactions() {
            if !status_holds_locks(tx.global.status, self.rollback_retry_timeout_unlock) {
                continue;
            }
            for branch in tx.branches.iter() {
                let holder = LockHolder {
                    transaction_id: branch.transaction_id,
                    branch_id: branch.branch_id,
                };
                // Recovered branches were accepted together, so they cannot conflict.
                let _ = self
                    .locks
                    .acquire(holder, &branch.resource_id, &branch_rows(branch));
            }
        }
    }

    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Number of locked rows.
    pub fn locked_rows(&self) -> usize {
        self.locks.len()
    }

    /// Applies one operation if its conditions hold, and says what happened.
    pub fn apply(&mut self, op: &StoreOp) -> OpOutcome {
        if let Err(outcome) = self.check_condition(op) {
            return outcome;
        }
        if let Err(reason) = check_limits(&self.limits, &op.record) {
            return OpOutcome::Unstorable { reason };
        }
        match &op.record {
            Record::IdReserve { .. } => {}
            Record::GlobalAdd(global) => {
                self.status_changes(global.transaction_id, global.status);
            }
            Record::GlobalUpdate {
                transaction_id,
                status,
            } => {
                if self.table.get(*transaction_id).is_none() {
                    return OpOutcome::NotFound;
                }
                self.status_changes(*transaction_id, *status);
            }
            Record::GlobalRemove { transaction_id } => {
                let Some(tx) = self.table.get(*transaction_id) else {
                    return OpOutcome::NotFound;
                };
                for branch in tx.branches.iter() {
                    self.locks
                        .release(branch.branch_id, &branch.resource_id, &branch_rows(branch));
                }
            }
            Record::BranchAdd(branch) => {
                let Some(tx) = self.table.get(branch.transaction_id) else {
                    return OpOutcome::NotFound;
                };
                let rows =
                    if status_holds_locks(tx.global.status, self.rollback_retry_timeout_unlock) {
                        branch_rows(branch)
                    } else {
                        Vec::new()
                    };
                if let Some(conflict) = self.conflict(branch, &rows) {
                    return OpOutcome::LockConflict(conflict);
                }
                // A branch added again replaces the earlier one, rows included.
                if let Some(old) = tx.branches.get(branch.branch_id) {
                    self.locks
                        .release(old.branch_id, &old.resource_id, &branch_rows(old));
                }
                let holder = LockHolder {
                    transaction_id: branch.transaction_id,
                    branch_id: branch.branch_id,
                };
                let taken = self.locks.acquire(holder, &branch.resource_id, &rows);
                debug_assert!(taken.is_ok(), "rows were checked free just above");
            }
            Record::BranchUpdate {
                transaction_id,
                branch_id,
                ..
            } => {
                let exists = self
                    .table
                    .get(*transaction_id)
                    .is_some_and(|tx| tx.branches.get(*branch_id).is_some());
                if !exists {
                    return OpOutcome::NotFound;
                }
            }
            Record::BranchRemove {
                transaction_id,
                branch_id,
            } => {
                let Some(branch) = self
                    .table
                    .get(*transaction_id)
                    .and_then(|tx| tx.branches.get(*branch_id))
                else {
                    return OpOutcome::NotFound;
                };
                self.locks
                    .release(branch.branch_id, &branch.resource_id, &branch_rows(branch));
            }
        }
        self.table.apply(&op.record);
        OpOutcome::Applied
    }

    /// A transaction moves to `status`: leaving the statuses that hold locks releases its rows
    /// (a commit decision, a rollback given up with unlocking).
    fn status_changes(
        &mut self,
        transaction_id: ferrata_core::TransactionId,
        status: GlobalStatus,
    ) {
        let Some(tx) = self.table.get(transaction_id) else {
            return;
        };
        if self.holds_locks(tx.global.status) && !self.holds_locks(status) {
            for branch in tx.branches.iter() {
                self.locks
                    .release(branch.branch_id, &branch.resource_id, &branch_rows(branch));
            }
        }
    }

    fn check_condition(&self, op: &StoreOp) -> Result<(), OpOutcome> {
        let Condition::GlobalStatusIs(expected) = op.condition else {
            return Ok(());
        };
        let global = op
            .record
            .transaction_id()
            .and_then(|id| self.table.get(id))
            .map(|tx| &tx.global)
            .ok_or(OpOutcome::NotFound)?;
        if global.status != expected {
            return Err(OpOutcome::StatusMismatch {
                actual: global.status,
            });
        }
        Ok(())
    }

    /// The first row (in lock-key order) held by another transaction.
    fn conflict(&self, branch: &BranchSession, rows: &[LockRow<'_>]) -> Option<RowLock> {
        rows.iter().find_map(|&(table, pk)| {
            let holder = self.locks.holder(&branch.resource_id, table, pk)?;
            (holder.transaction_id != branch.transaction_id).then(|| RowLock {
                resource_id: branch.resource_id.clone(),
                table: table.to_owned(),
                pk: pk.to_owned(),
                transaction_id: holder.transaction_id,
                branch_id: holder.branch_id,
            })
        })
    }

    /// The rows `branch` itself holds, as a lock key in canonical form: what a database that
    /// keeps only lock rows gives back as the branch's lock key. Rows its lock key names that
    /// an earlier branch of the same transaction took stay that branch's.
    pub fn held_lock_key(&self, branch: &BranchSession) -> String {
        let own = LockHolder {
            transaction_id: branch.transaction_id,
            branch_id: branch.branch_id,
        };
        canonical_lock_key(
            branch_rows(branch).into_iter().filter(|&(table, pk)| {
                self.locks.holder(&branch.resource_id, table, pk) == Some(own)
            }),
        )
    }

    pub fn transaction(&self, id: ferrata_core::TransactionId) -> Option<StoredTransaction> {
        self.table.get(id).cloned()
    }

    /// Up to `limit` transactions with one of `statuses`, in transaction-id order.
    pub fn transactions_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: usize,
    ) -> Vec<StoredTransaction> {
        self.table
            .transactions()
            .filter(|tx| statuses.contains(&tx.global.status))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The distinct XID prefixes (what precedes the last `:`, the TC node that began them) of
    /// the stored transactions, sorted.
    pub fn xid_prefixes(&self) -> Vec<String> {
        let prefixes: BTreeSet<&str> = self
            .table
            .transactions()
            .map(|tx| xid_prefix(&tx.global.xid))
            .collect();
        prefixes.into_iter().map(str::to_owned).collect()
    }

    /// Every stored transaction whose XID has `prefix` (one TC node's), in transaction-id
    /// order.
    pub fn transactions_of_node(&self, prefix: &str) -> Vec<StoredTransaction> {
        self.table
            .transactions()
            .filter(|tx| xid_prefix(&tx.global.xid) == prefix)
            .cloned()
            .collect()
    }

    /// Records a TC node's XID prefix.
    pub fn announce_node(&mut self, prefix: &str) {
        self.nodes.insert(prefix.to_owned());
    }

    /// Every node's XID prefix announced, sorted.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().cloned().collect()
    }

    /// The held rows among `rows`, in the order asked.
    pub fn lock_holders(&self, rows: &[RowKey]) -> Vec<RowLock> {
        rows.iter()
            .filter_map(|row| {
                let holder = self.locks.holder(&row.resource_id, &row.table, &row.pk)?;
                Some(RowLock {
                    resource_id: row.resource_id.clone(),
                    table: row.table.clone(),
                    pk: row.pk.clone(),
                    transaction_id: holder.transaction_id,
                    branch_id: holder.branch_id,
                })
            })
            .collect()
    }

    /// Takes, renews or takes over (once expired at `now_ms`) the lease `name` for `holder`.
    pub fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> LeaseOutcome {
        self.lease(name, holder, None, ttl_ms, now_ms)
    }

    /// [`StoreState::try_lease`], also taking the lease while `previous` holds it.
    pub fn take_lease_from(
        &mut self,
        name: &str,
        holder: &str,
        previous: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> LeaseOutcome {
        self.lease(name, holder, Some(previous), ttl_ms, now_ms)
    }

    fn lease(
        &mut self,
        name: &str,
        holder: &str,
        previous: Option<&str>,
        ttl_ms: i64,
        now_ms: i64,
    ) -> LeaseOutcome {
        let expires_at_ms = now_ms.saturating_add(ttl_ms.max(0));
        match self.leases.get_mut(name) {
            Some(lease)
                if lease.holder != holder
                    && Some(lease.holder.as_str()) != previous
                    && lease.expires_at_ms >= now_ms =>
            {
                LeaseOutcome::Taken(lease.clone())
            }
            Some(lease) => {
                lease.holder = holder.to_owned();
                lease.expires_at_ms = expires_at_ms;
                LeaseOutcome::Held { expires_at_ms }
            }
            None => {
                self.leases.insert(
                    name.to_owned(),
                    Lease {
                        name: name.to_owned(),
                        holder: holder.to_owned(),
                        expires_at_ms,
                    },
                );
                LeaseOutcome::Held { expires_at_ms }
            }
        }
    }

    /// Gives the lease up if `holder` holds it; says whether it did.
    pub fn release_lease(&mut self, name: &str, holder: &str) -> bool {
        match self.leases.get_mut(name) {
            Some(lease) if lease.holder == holder => {
                lease.expires_at_ms = 0;
                lease.holder.clear();
                true
            }
            _ => false,
        }
    }

    /// The next `count` ids nobody was given before, and the record that makes it so durably.
    pub fn reserve_ids(&mut self, count: i64) -> (Range<i64>, Record) {
        let start = self.table.next_free_id().max(1);
        let end = start.saturating_add(count.max(0));
        let record = Record::IdReserve { next_free_id: end };
        self.table.apply(&record);
        (start..end, record)
    }
}

fn check_global(limits: &StoreLimits, global: &GlobalSession) -> Result<(), String> {
    limits.check("xid", &global.xid, limits.xid_chars)?;
    limits.check(
        "application id",
        &global.application_id,
        limits.application_id_chars,
    )?;
    limits.check(
        "transaction service group",
        &global.transaction_service_group,
        limits.transaction_service_group_chars,
    )?;
    limits.check(
        "transaction name",
        &global.transaction_name,
        limits.transaction_name_chars,
    )?;
    limits.check(
        "global application data",
        &global.application_data,
        limits.application_data_chars,
    )
}

/// Whether `record` fits `limits`; the error names the first field that does not.
pub fn check_limits(limits: &StoreLimits, record: &Record) -> Result<(), String> {
    match record {
        Record::GlobalAdd(global) => check_global(limits, global),
        Record::BranchAdd(branch) => {
            limits.check("resource id", &branch.resource_id, limits.resource_id_chars)?;
            limits.check("client id", &branch.client_id, limits.client_id_chars)?;
            limits.check(
                "branch type",
                branch.branch_type.name(),
                limits.branch_type_chars,
            )?;
            limits.check(
                "branch application data",
                &branch.application_data,
                limits.application_data_chars,
            )?;
            for (table, pk) in branch_rows(branch) {
                limits.check("lock table name", table, limits.lock_table_chars)?;
                limits.check("lock primary key", pk, limits.lock_pk_chars)?;
                limits.check(
                    "lock row key",
                    &row_key(&branch.resource_id, table, pk),
                    limits.lock_row_key_chars,
                )?;
            }
            Ok(())
        }
        Record::BranchUpdate {
            application_data: Some(data),
            ..
        } => limits.check(
            "branch application data",
            data,
            limits.application_data_chars,
        ),
        _ => Ok(()),
    }
}
