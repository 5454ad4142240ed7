//! A whole batch in a few set-based statements instead of several per op: the rows it touches
//! are read (and locked) at once, its ops are played in memory in order by the rules of
//! `ops::apply_op`, and the net changes are written kind by kind. What cannot be decided from
//! those reads — an id reservation, a transaction or branch added again, rows that another op
//! of the same batch releases, a lock row another node took in between — sends the batch down
//! the op-by-op path instead (after a rollback), so every outcome stays the model's.
//!
//! PostgreSQL reads and writes a batch in one statement each (`postgres`); the other databases
//! use the statements of this file, a few per kind of change.

#[cfg(feature = "postgres")]
mod postgres;

use std::collections::{BTreeMap, HashMap, HashSet};

use ferrata_core::lock::status_holds_locks;
use ferrata_core::{BranchId, BranchSession, GlobalSession, Record, TransactionId};
use ferrata_proto::GlobalStatus;
use ferrata_store::{Condition, OpOutcome, RowLock, StoreOp, branch_rows, check_limits, row_key};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::dialect::SqlDatabase;
use crate::ops::{Arg, LockInsert, ROWS_PER_STATEMENT, Sql, Tx, marks, padded};
use crate::timestamp;

/// What [`Sql::apply_batch`] did.
#[derive(Debug)]
pub(crate) enum Fast {
    /// Every op's outcome, in order; the changes are written into the transaction.
    Applied(Vec<OpOutcome>),
    /// The batch must be applied op by op; the transaction may hold writes: roll it back.
    OpByOp(&'static str),
}

/// One transaction of the batch as its ops leave it.
#[derive(Debug, Default)]
struct TxState {
    /// `None`: not stored, or removed by the batch.
    status: Option<GlobalStatus>,
    xid: String,
    /// Added by an op of the batch.
    added: bool,
    removed: bool,
    /// Its lock rows go: it left the statuses that hold them, or was removed.
    released: bool,
}

/// What a batch reads: its transactions, its stored branches, the holders of its keys.
type ReadRows = (
    HashMap<TransactionId, TxState>,
    HashMap<BranchId, TransactionId>,
    Vec<(String, i64, i64)>,
);

/// The writes a batch comes down to.
#[derive(Debug, Default)]
struct Writes<'a> {
    global_upserts: BTreeMap<TransactionId, (&'a GlobalSession, i64)>,
    /// Final status of each transaction an update changed (after its upsert, if any).
    status_updates: BTreeMap<TransactionId, GlobalStatus>,
    /// Each branch with its time; its xid is its transaction's in the batch's reads.
    branch_upserts: Vec<(&'a BranchSession, i64)>,
    /// Key, taking branch, table, pk.
    lock_inserts: Vec<(String, &'a BranchSession, &'a str, &'a str)>,
    /// Its transaction, final status and, when some update carried it, application data.
    branch_updates:
        BTreeMap<BranchId, (TransactionId, ferrata_proto::BranchStatus, Option<&'a str>)>,
    branch_removes: Vec<BranchId>,
}

impl<DB> Sql<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Applies `ops` inside `tx` with set-based statements, or says why it cannot.
    pub(crate) async fn apply_batch(
        tx: &mut Tx<DB>,
        ops: &[StoreOp],
        base_micros: i64,
        rollback_retry_timeout_unlock: bool,
    ) -> Result<Fast, sqlx::Error> {
        let holds = |status| status_holds_locks(status, rollback_retry_timeout_unlock);
        let mut ids = Vec::with_capacity(ops.len());
        for op in ops {
            match op.record.transaction_id() {
                Some(id) => ids.push(id),
                None => return Ok(Fast::OpByOp("an id reservation")),
            }
        }
        ids.sort_unstable();
        ids.dedup();

        let branch_ids: Vec<i64> =
            ops.iter()
                .filter_map(|op| match &op.record {
                    Record::BranchAdd(b) => Some(b.branch_id.0),
                    Record::BranchUpdate { branch_id, .. }
                    | Record::BranchRemove { branch_id, .. } => Some(branch_id.0),
                    _ => None,
                })
                .collect();

        let wanted: Vec<String> = ops
            .iter()
            .filter_map(|op| match &op.record {
                // A branch the database cannot store is refused before its keys are read.
                Record::BranchAdd(b) if check_limits(&DB::limits(), &op.record).is_ok() => Some(b),
                _ => None,
            })
            .flat_map(|b| {
                branch_rows(b)
                    .into_iter()
                    .map(|(table, pk)| row_key(&b.resource_id, table, pk))
            })
            .collect();
        let mut keys: Vec<&str> = wanted.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        // Branches stored at the start (and as the batch leaves them below).
        let (mut txs, stored_branches, held) = Self::read(tx, &ids, &branch_ids, &keys).await?;
        let mut branches = stored_branches.clone();
        let mut holders: HashMap<String, (TransactionId, BranchId)> = HashMap::new();
        for (key, holder_tx, holder_branch) in held {
            if keys.binary_search(&key.as_str()).is_err() {
                // The collation matched a key that differs in case or trailing spaces.
                return Ok(Fast::OpByOp("a lock key the database compares loosely"));
            }
            holders.insert(key, (TransactionId(holder_tx), BranchId(holder_branch)));
        }
        // Transactions some op of the batch makes release rows (as far as the op alone says).
        let releasing: HashSet<TransactionId> = ops
            .iter()
            .filter_map(|op| match &op.record {
                Record::GlobalRemove { transaction_id }
                | Record::BranchRemove { transaction_id, .. } => Some(*transaction_id),
                Record::GlobalUpdate {
                    transaction_id,
                    status,
                } if !holds(*status) => Some(*transaction_id),
                Record::GlobalAdd(g) if !holds(g.status) => Some(g.transaction_id),
                _ => None,
            })
            .collect();

        let mut outcomes = Vec::with_capacity(ops.len());
        let mut writes = Writes::default();
        for (index, op) in ops.iter().enumerate() {
            let micros = base_micros + i64::try_from(index).unwrap_or_default();
            let Some(id) = op.record.transaction_id() else {
                unreachable!("an id reservation sent the batch op by op above");
            };
            let state = txs.entry(id).or_default();
            if let Condition::GlobalStatusIs(expected) = op.condition {
                match state.status {
                    None => {
                        outcomes.push(OpOutcome::NotFound);
                        continue;
                    }
                    Some(actual) if actual != expected => {
                        outcomes.push(OpOutcome::StatusMismatch { actual });
                        continue;
                    }
                    Some(_) => {}
                }
            }
            if let Err(reason) = check_limits(&DB::limits(), &op.record) {
                outcomes.push(OpOutcome::Unstorable { reason });
                continue;
            }
            let outcome = match &op.record {
                Record::IdReserve { .. } => unreachable!("no transaction id: handled above"),
                Record::GlobalAdd(global) => {
                    if state.added || state.removed {
                        return Ok(Fast::OpByOp("a transaction added twice"));
                    }
                    if state.status.is_some() && state.xid != global.xid {
                        return Ok(Fast::OpByOp("a transaction stored under another xid"));
                    }
                    if state
                        .status
                        .is_some_and(|old| holds(old) && !holds(global.status))
                    {
                        state.released = true;
                    }
                    state.status = Some(global.status);
                    state.xid.clone_from(&global.xid);
                    state.added = true;
                    writes.status_updates.remove(&id);
                    writes.global_upserts.insert(id, (global, micros));
                    OpOutcome::Applied
                }
                Record::GlobalUpdate { status, .. } => match state.status {
                    None => OpOutcome::NotFound,
                    Some(old) => {
                        if holds(old) && !holds(*status) {
                            state.released = true;
                        }
                        state.status = Some(*status);
                        writes.status_updates.insert(id, *status);
                        OpOutcome::Applied
                    }
                },
                Record::GlobalRemove { .. } => {
                    if state.status.is_none() {
                        OpOutcome::NotFound
                    } else {
                        state.status = None;
                        state.removed = true;
                        state.released = true;
                        branches.retain(|_, tx_id| *tx_id != id);
                        OpOutcome::Applied
                    }
                }
                Record::BranchAdd(branch) => {
                    let Some(status) = state.status else {
                        outcomes.push(OpOutcome::NotFound);
                        continue;
                    };
                    if stored_branches.contains_key(&branch.branch_id)
                        || branches.contains_key(&branch.branch_id)
                    {
                        return Ok(Fast::OpByOp("a branch added again"));
                    }
                    let rows = if holds(status) {
                        branch_rows(branch)
                    } else {
                        Vec::new()
                    };
                    if !rows.is_empty() && state.released {
                        return Ok(Fast::OpByOp("rows taken after their transaction let go"));
                    }
                    let mut conflict = None;
                    let mut free = Vec::new();
                    for &(table, pk) in &rows {
                        let key = row_key(&branch.resource_id, table, pk);
                        match holders.get(&key) {
                            None => free.push((key, table, pk)),
                            // Also the transaction's own: a branch of it that the batch removes
                            // frees the row for this one only if the removal comes first.
                            Some(&(holder_tx, _)) if releasing.contains(&holder_tx) => {
                                return Ok(Fast::OpByOp("rows another op of the batch releases"));
                            }
                            Some(&(holder_tx, _)) if holder_tx == id => {}
                            Some(&(holder_tx, holder_branch)) => {
                                conflict = Some(RowLock {
                                    resource_id: branch.resource_id.clone(),
                                    table: table.to_owned(),
                                    pk: pk.to_owned(),
                                    transaction_id: holder_tx,
                                    branch_id: holder_branch,
                                });
                                break;
                            }
                        }
                    }
                    if let Some(conflict) = conflict {
                        OpOutcome::LockConflict(conflict)
                    } else {
                        for (key, table, pk) in free {
                            // A key named twice in one lock key is taken once.
                            if holders
                                .insert(key.clone(), (id, branch.branch_id))
                                .is_none()
                            {
                                writes.lock_inserts.push((key, branch, table, pk));
                            }
                        }
                        branches.insert(branch.branch_id, id);
                        writes.branch_upserts.push((branch, micros));
                        OpOutcome::Applied
                    }
                }
                Record::BranchUpdate {
                    branch_id,
                    status,
                    application_data,
                    ..
                } => {
                    if branches.get(branch_id) == Some(&id) {
                        let entry = writes
                            .branch_updates
                            .entry(*branch_id)
                            .or_insert((id, *status, None));
                        entry.1 = *status;
                        if let Some(data) = application_data {
                            entry.2 = Some(data.as_str());
                        }
                        OpOutcome::Applied
                    } else {
                        OpOutcome::NotFound
                    }
                }
                Record::BranchRemove { branch_id, .. } => {
                    if branches.get(branch_id) == Some(&id) {
                        branches.remove(branch_id);
                        writes.branch_removes.push(*branch_id);
                        OpOutcome::Applied
                    } else {
                        OpOutcome::NotFound
                    }
                }
            };
            outcomes.push(outcome);
        }
        if Self::write_any(tx, &txs, writes, base_micros).await? {
            Ok(Fast::Applied(outcomes))
        } else {
            Ok(Fast::OpByOp("lock rows changed while they were taken"))
        }
    }

    /// The stored transactions among `ids` and their rows locked until the end of `tx`, which
    /// of `branch_ids` are stored (and in which transaction), and the holders of `keys` (sorted),
    /// their rows locked: (key, transaction, branch).
    async fn read(
        tx: &mut Tx<DB>,
        ids: &[TransactionId],
        branch_ids: &[i64],
        keys: &[&str],
    ) -> Result<ReadRows, sqlx::Error> {
        #[cfg(feature = "postgres")]
        if let Some(tx) = (tx as &mut dyn std::any::Any).downcast_mut::<Tx<sqlx::Postgres>>() {
            return postgres::read(tx, ids, branch_ids, keys).await;
        }
        let txs = Self::read_globals(tx, ids).await?;
        let branches = Self::read_branches(tx, branch_ids).await?;
        let held = if keys.is_empty() {
            Vec::new()
        } else {
            Self::holders_of_keys(tx, keys).await?
        };
        Ok((txs, branches, held))
    }

    /// Writes the batch's net changes (see [`Sql::write`]).
    async fn write_any(
        tx: &mut Tx<DB>,
        txs: &HashMap<TransactionId, TxState>,
        writes: Writes<'_>,
        micros: i64,
    ) -> Result<bool, sqlx::Error> {
        #[cfg(feature = "postgres")]
        if let Some(tx) = (tx as &mut dyn std::any::Any).downcast_mut::<Tx<sqlx::Postgres>>() {
            return postgres::write(tx, txs, writes, micros).await;
        }
        Self::write(tx, txs, writes, micros).await
    }

    /// The stored transactions among `ids`, their rows locked until the end of `tx`.
    async fn read_globals(
        tx: &mut Tx<DB>,
        ids: &[TransactionId],
    ) -> Result<HashMap<TransactionId, TxState>, sqlx::Error> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let chunk = padded(chunk);
            let sql = format!(
                "SELECT transaction_id, CAST(status AS {}), {} FROM global_table \
                 WHERE transaction_id IN ({}) ORDER BY transaction_id FOR UPDATE",
                DB::BIGINT,
                DB::text("xid"),
                marks(chunk.len())
            );
            let args = chunk.iter().map(|id| Arg::from(id.0)).collect();
            for row in Self::fetch(&mut **tx, &sql, args).await? {
                let id: i64 = row.try_get(0)?;
                let status = crate::ops::global_status(row.try_get::<i64, _>(1)?)?;
                found.insert(
                    TransactionId(id),
                    TxState {
                        status: Some(status),
                        xid: row.try_get(2)?,
                        ..TxState::default()
                    },
                );
            }
        }
        Ok(found)
    }

    /// Which of `branch_ids` are stored, and in which transactions.
    async fn read_branches(
        tx: &mut Tx<DB>,
        branch_ids: &[i64],
    ) -> Result<HashMap<BranchId, TransactionId>, sqlx::Error> {
        let mut found = HashMap::with_capacity(branch_ids.len());
        for chunk in branch_ids.chunks(ROWS_PER_STATEMENT) {
            let chunk = padded(chunk);
            let sql = format!(
                "SELECT transaction_id, branch_id FROM branch_table WHERE branch_id IN ({})",
                marks(chunk.len())
            );
            let args = chunk.iter().map(|id| Arg::from(*id)).collect();
            for row in Self::fetch(&mut **tx, &sql, args).await? {
                let tx_id: Option<i64> = row.try_get(0)?;
                found.insert(
                    BranchId(row.try_get(1)?),
                    TransactionId(tx_id.unwrap_or_default()),
                );
            }
        }
        Ok(found)
    }

    /// Writes the batch's net changes; false when a lock row it inserted did not end up its
    /// own (another node took the key in between, or its holder's row vanished).
    async fn write(
        tx: &mut Tx<DB>,
        txs: &HashMap<TransactionId, TxState>,
        mut writes: Writes<'_>,
        micros: i64,
    ) -> Result<bool, sqlx::Error> {
        let globals: Vec<(&GlobalSession, i64)> = writes.global_upserts.into_values().collect();
        if !globals.is_empty() {
            Self::upsert_globals(tx, &globals).await?;
        }
        let mut by_status: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
        for (id, status) in &writes.status_updates {
            if let Some(state) = txs.get(id).filter(|s| !s.removed) {
                by_status
                    .entry(status.code())
                    .or_default()
                    .push(state.xid.as_str());
            }
        }
        for (status, xids) in by_status {
            Self::set_status_where_in(tx, "global_table", "xid", status, &xids, micros).await?;
        }
        let xid_of = |branch: &BranchSession| -> &str {
            txs.get(&branch.transaction_id)
                .map_or("", |state| state.xid.as_str())
        };
        if !writes.branch_upserts.is_empty() {
            let rows: Vec<(&BranchSession, &str, i64)> = writes
                .branch_upserts
                .iter()
                .map(|&(branch, at)| (branch, xid_of(branch), at))
                .collect();
            Self::upsert_branches(tx, &rows).await?;
        }
        if !writes.lock_inserts.is_empty() {
            writes.lock_inserts.sort_by(|a, b| a.0.cmp(&b.0));
            let rows: Vec<LockInsert<'_>> = writes
                .lock_inserts
                .iter()
                .map(|&(ref key, branch, table, pk)| LockInsert {
                    key,
                    xid: xid_of(branch),
                    branch,
                    table,
                    pk,
                })
                .collect();
            let inserted = Self::insert_lock_rows(tx, &rows, micros).await?;
            if DB::COUNTS_ONLY_INSERTED_ROWS {
                // Each row was absent when read: one not inserted now is another's.
                if inserted != rows.len() as u64 {
                    return Ok(false);
                }
            } else if !Self::all_mine(tx, &rows).await? {
                return Ok(false);
            }
        }
        let mut plain: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (branch_id, (_, status, data)) in &writes.branch_updates {
            match data {
                None => plain.entry(status.code()).or_default().push(branch_id.0),
                Some(data) => {
                    let sql = format!(
                        "UPDATE branch_table SET status = ?, gmt_modified = {}, \
                         application_data = ? WHERE branch_id = ?",
                        DB::TIMESTAMP_PARAM
                    );
                    let args = vec![
                        Arg::from(i64::from(status.code())),
                        timestamp(micros).into(),
                        (*data).into(),
                        branch_id.0.into(),
                    ];
                    Self::execute(&mut **tx, &sql, args).await?;
                }
            }
        }
        for (status, ids) in plain {
            Self::set_status_where_in(tx, "branch_table", "branch_id", status, &ids, micros)
                .await?;
        }
        let released: Vec<&str> = txs
            .values()
            .filter(|s| s.released)
            .map(|s| s.xid.as_str())
            .collect();
        let removed: Vec<&str> = txs
            .values()
            .filter(|s| s.removed)
            .map(|s| s.xid.as_str())
            .collect();
        let branch_removes: Vec<i64> = writes.branch_removes.iter().map(|b| b.0).collect();
        Self::delete_where_in(tx, "lock_table", "xid", &released).await?;
        Self::delete_where_in(tx, "lock_table", "branch_id", &branch_removes).await?;
        Self::delete_where_in(tx, "branch_table", "branch_id", &branch_removes).await?;
        Self::delete_where_in(tx, "branch_table", "xid", &removed).await?;
        Self::delete_where_in(tx, "global_table", "xid", &removed).await?;
        Ok(true)
    }

    /// Whether every row of `rows` is now held by the branch that inserted it (read back).
    async fn all_mine(tx: &mut Tx<DB>, rows: &[LockInsert<'_>]) -> Result<bool, sqlx::Error> {
        let keys: Vec<&str> = rows.iter().map(|row| row.key).collect();
        let held = Self::holders_of_keys(tx, &keys).await?;
        let mine: HashMap<&str, (i64, i64)> = rows
            .iter()
            .map(|row| {
                (
                    row.key,
                    (row.branch.transaction_id.0, row.branch.branch_id.0),
                )
            })
            .collect();
        Ok(held.len() == rows.len()
            && held.iter().all(|(key, holder_tx, holder_branch)| {
                mine.get(key.as_str()) == Some(&(*holder_tx, *holder_branch))
            }))
    }

    /// `UPDATE table SET status = …, gmt_modified = … WHERE column IN (values)`.
    async fn set_status_where_in<V>(
        tx: &mut Tx<DB>,
        table: &str,
        column: &str,
        status: u8,
        values: &[V],
        micros: i64,
    ) -> Result<(), sqlx::Error>
    where
        V: Clone + Into<Arg>,
    {
        let head = format!(
            "UPDATE {table} SET status = ?, gmt_modified = {}",
            DB::TIMESTAMP_PARAM
        );
        let head_args = [Arg::from(i64::from(status)), timestamp(micros).into()];
        Self::where_in(tx, &head, &head_args, column, values).await
    }

    /// `DELETE FROM table WHERE column IN (values)`.
    async fn delete_where_in<V>(
        tx: &mut Tx<DB>,
        table: &str,
        column: &str,
        values: &[V],
    ) -> Result<(), sqlx::Error>
    where
        V: Clone + Into<Arg>,
    {
        Self::where_in(tx, &format!("DELETE FROM {table}"), &[], column, values).await
    }

    /// `head WHERE column IN (values)` with `head_args` first, in padded chunks; nothing for no
    /// values.
    async fn where_in<V>(
        tx: &mut Tx<DB>,
        head: &str,
        head_args: &[Arg],
        column: &str,
        values: &[V],
    ) -> Result<(), sqlx::Error>
    where
        V: Clone + Into<Arg>,
    {
        for chunk in values.chunks(ROWS_PER_STATEMENT) {
            let chunk = padded(chunk);
            let sql = format!("{head} WHERE {column} IN ({})", marks(chunk.len()));
            let mut args = head_args.to_vec();
            args.extend(chunk.into_iter().map(Into::into));
            Self::execute(&mut **tx, &sql, args).await?;
        }
        Ok(())
    }
}
