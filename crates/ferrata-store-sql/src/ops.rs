//! The store's writes, each inside the caller's database transaction: one [`StoreOp`] with the
//! same outcome [`ferrata_store::StoreState`] gives (conditions first, then limits, then the
//! record), leases and id reservation in `distributed_lock`.
//!
//! Concurrency: every op on a transaction first locks its `global_table` row (`FOR UPDATE`), so
//! two nodes changing one transaction take turns and a compare-and-set sees the winner's
//! status. Row locks are inserted sorted by `row_key` and skipped when present, then read back
//! with `FOR UPDATE`: a row another transaction holds is a conflict, undone to a savepoint so
//! the rest of the batch goes on.

use std::marker::PhantomData;

use ferrata_core::lock::{LockRow, status_holds_locks};
use ferrata_core::{BranchSession, GlobalSession, Record, TransactionId};
use ferrata_proto::GlobalStatus;
use ferrata_store::{
    Condition, Lease, LeaseOutcome, OpOutcome, RowLock, StoreOp, branch_rows, check_limits, row_key,
};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::dialect::SqlDatabase;
use crate::{NEXT_ID_KEY, timestamp};

pub(crate) use crate::tx::Tx;

/// One lock row to insert: its key, the branch taking it and that branch's transaction's xid.
pub(crate) struct LockInsert<'a> {
    pub key: &'a str,
    pub xid: &'a str,
    pub branch: &'a BranchSession,
    pub table: &'a str,
    pub pk: &'a str,
}

/// The `global_table` rows one database transaction locked, with their status and xid as that
/// transaction left them: later ops of the same batch need not read them again.
pub(crate) type LockedGlobals = std::collections::HashMap<TransactionId, (GlobalStatus, String)>;

/// Rows per multi-row INSERT and values per IN list: a power of two, far below every
/// database's parameter limit.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Times a branch's vanished lock rows are inserted again before giving up.
const LOCK_ROUNDS: usize = 4;

/// A bound parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Arg {
        Arg::Int(value)
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Arg {
        Arg::Text(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Arg {
        Arg::Text(value)
    }
}

/// `items` in pieces whose lengths are powers of two, largest first, at most
/// [`ROWS_PER_STATEMENT`]: whatever a batch's size, a database then sees a few statement shapes
/// of each kind, each parsed and planned once per connection (a VALUES list of a new length is
/// a new statement).
pub(crate) fn statement_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = ROWS_PER_STATEMENT.min(1 << items.len().ilog2());
        let (chunk, rest) = items.split_at(len);
        items = rest;
        Some(chunk)
    })
}

/// An IN list's values (at most [`ROWS_PER_STATEMENT`]) padded to a power of two by repeating
/// the last one, which selects nothing more: few statement shapes, as [`statement_chunks`].
pub(crate) fn padded<T: Clone>(values: &[T]) -> Vec<T> {
    let mut list = values.to_vec();
    if let Some(last) = values.last() {
        list.resize(values.len().next_power_of_two(), last.clone());
    }
    list
}

/// `?, ?, …` for `n` parameters.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The statements, written once for every [`SqlDatabase`]; the bounds are what sqlx needs to
/// run them generically.
pub(crate) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    pub(crate) async fn execute(
        conn: &mut DB::Connection,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<(), sqlx::Error> {
        if args.is_empty() {
            // The text protocol: MySQL prepares no SAVEPOINT.
            conn.execute(sql).await?;
            return Ok(());
        }
        Self::execute_counted(conn, sql, args).await?;
        Ok(())
    }

    /// Runs a DELETE (or another write) and says how many rows it changed.
    pub(crate) async fn execute_counted(
        conn: &mut DB::Connection,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<u64, sqlx::Error> {
        let sql = DB::placeholders(sql);
        Ok(DB::rows_affected(
            &Self::bound(&sql, args).execute(conn).await?,
        ))
    }

    /// `sql`, in this database's placeholders, with `args` bound.
    fn bound(sql: &str, args: Vec<Arg>) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>> {
        let mut query = sqlx::query::<DB>(sql);
        for arg in args {
            query = match arg {
                Arg::Int(value) => query.bind(value),
                Arg::Text(value) => query.bind(value),
            };
        }
        query
    }

    pub(crate) async fn fetch(
        conn: &mut DB::Connection,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<DB::Row>, sqlx::Error> {
        let sql = DB::placeholders(sql);
        Self::bound(&sql, args).fetch_all(conn).await
    }

    /// The stored status and xid of a transaction, its row locked until the end of `tx`: read
    /// once per database transaction, then kept in `locked` as this transaction changes it.
    async fn lock_global(
        tx: &mut Tx<DB>,
        locked: &mut LockedGlobals,
        id: TransactionId,
    ) -> Result<Option<(GlobalStatus, String)>, sqlx::Error> {
        if let Some(known) = locked.get(&id) {
            return Ok(Some(known.clone()));
        }
        let found = Self::read_global_for_update(tx, id).await?;
        if let Some(known) = &found {
            locked.insert(id, known.clone());
        }
        Ok(found)
    }

    async fn read_global_for_update(
        tx: &mut Tx<DB>,
        id: TransactionId,
    ) -> Result<Option<(GlobalStatus, String)>, sqlx::Error> {
        let sql = format!(
            "SELECT CAST(status AS {}), {} FROM global_table WHERE transaction_id = ? FOR UPDATE",
            DB::BIGINT,
            DB::text("xid")
        );
        let rows = Self::fetch(&mut **tx, &sql, vec![id.0.into()]).await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => Ok(Some((
                global_status(row.try_get::<i64, _>(0)?)?,
                row.try_get(1)?,
            ))),
        }
    }

    /// Seata's schema indexes branch and lock rows by xid, not by transaction id: a delete by
    /// transaction id would scan and lock every row, and nodes deleting side by side deadlock.
    async fn delete_locks_of_transaction(tx: &mut Tx<DB>, xid: &str) -> Result<(), sqlx::Error> {
        Self::execute(
            &mut **tx,
            "DELETE FROM lock_table WHERE xid = ?",
            vec![xid.into()],
        )
        .await
    }

    /// Inserts or replaces global rows (one statement per [`ROWS_PER_STATEMENT`]), each with
    /// its own time.
    pub(crate) async fn upsert_globals(
        tx: &mut Tx<DB>,
        globals: &[(&GlobalSession, i64)],
    ) -> Result<(), sqlx::Error> {
        let ts = DB::TIMESTAMP_PARAM;
        let updated = [
            "transaction_id",
            "status",
            "application_id",
            "transaction_service_group",
            "transaction_name",
            "timeout",
            "begin_time",
            "application_data",
            "gmt_modified",
        ]
        .map(|column| format!("{column} = {}", DB::inserted(column)))
        .join(", ");
        for chunk in statement_chunks(globals) {
            let values =
                vec![format!("(?, ?, ?, ?, ?, ?, ?, ?, ?, {ts}, {ts})"); chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO global_table (xid, transaction_id, status, application_id, \
                 transaction_service_group, transaction_name, timeout, begin_time, \
                 application_data, gmt_create, gmt_modified) VALUES {values} {} {updated}",
                DB::on_conflict_update("xid")
            );
            let mut args = Vec::with_capacity(chunk.len() * 11);
            for &(global, micros) in chunk {
                let at = timestamp(micros);
                args.extend([
                    global.xid.as_str().into(),
                    global.transaction_id.0.into(),
                    i64::from(global.status.code()).into(),
                    global.application_id.as_str().into(),
                    global.transaction_service_group.as_str().into(),
                    global.transaction_name.as_str().into(),
                    i64::from(global.timeout_ms).into(),
                    global.begin_time_ms.into(),
                    global.application_data.as_str().into(),
                    Arg::from(at.clone()),
                    at.into(),
                ]);
            }
            Self::execute(&mut **tx, &sql, args).await?;
        }
        Ok(())
    }

    /// Takes the branch's rows (sorted, skipping rows present) and finds the first row, in
    /// lock-key order, that another transaction holds.
    async fn take_rows(
        tx: &mut Tx<DB>,
        branch: &BranchSession,
        xid: &str,
        rows: &[LockRow<'_>],
        micros: i64,
    ) -> Result<Option<RowLock>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(None);
        }
        let keyed: Vec<(String, LockRow<'_>)> = rows
            .iter()
            .map(|&(table, pk)| (row_key(&branch.resource_id, table, pk), (table, pk)))
            .collect();
        let mut sorted: Vec<&(String, LockRow<'_>)> = keyed.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut to_insert = sorted.clone();
        let mut rounds = 0;
        loop {
            let inserts: Vec<LockInsert<'_>> = to_insert
                .iter()
                .map(|(key, (table, pk))| LockInsert {
                    key,
                    xid,
                    branch,
                    table,
                    pk,
                })
                .collect();
            Self::insert_lock_rows(tx, &inserts, micros).await?;
            let held = Self::holders_for_update(tx, &sorted).await?;
            // Any row held by another transaction is a conflict, also one the database's
            // collation matched to a key that differs in case or trailing spaces (MySQL).
            if let Some(&(ref key, holder_tx, holder_branch)) = held
                .iter()
                .find(|(_, holder, _)| *holder != branch.transaction_id.0)
            {
                let (table, pk) = keyed
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(keyed[0].1, |(_, row)| *row);
                return Ok(Some(RowLock {
                    resource_id: branch.resource_id.clone(),
                    table: table.to_owned(),
                    pk: pk.to_owned(),
                    transaction_id: TransactionId(holder_tx),
                    branch_id: ferrata_core::BranchId(holder_branch),
                }));
            }
            if !DB::KEYS_COMPARE_EXACTLY {
                return Ok(None);
            }
            // PostgreSQL's insert-if-absent does not wait for a row being deleted by its
            // holder's commit: a key that vanished in between is inserted again.
            let present: std::collections::HashSet<&str> =
                held.iter().map(|(key, _, _)| key.as_str()).collect();
            to_insert = sorted
                .iter()
                .copied()
                .filter(|entry| !present.contains(entry.0.as_str()))
                .collect();
            if to_insert.is_empty() {
                return Ok(None);
            }
            rounds += 1;
            if rounds > LOCK_ROUNDS {
                return Err(sqlx::Error::Protocol(format!(
                    "lock rows of branch {} vanished {LOCK_ROUNDS} times while being taken",
                    branch.branch_id
                )));
            }
        }
    }

    /// Inserts lock rows, skipping rows present, and returns the count the database reports
    /// (see `COUNTS_ONLY_INSERTED_ROWS`). Callers sort them by key: nodes inserting overlapping
    /// rows then take them in one order and do not deadlock.
    pub(crate) async fn insert_lock_rows(
        tx: &mut Tx<DB>,
        rows: &[LockInsert<'_>],
        micros: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut counted = 0;
        let ts = DB::TIMESTAMP_PARAM;
        let at = timestamp(micros);
        for chunk in statement_chunks(rows) {
            let values =
                vec![format!("(?, ?, ?, ?, ?, ?, ?, 0, {ts}, {ts})"); chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO lock_table (row_key, xid, transaction_id, branch_id, resource_id, \
                 table_name, pk, status, gmt_create, gmt_modified) VALUES {values} {}",
                DB::on_conflict_skip("row_key")
            );
            let mut args = Vec::with_capacity(chunk.len() * 9);
            for row in chunk {
                args.extend([
                    Arg::from(row.key),
                    row.xid.into(),
                    row.branch.transaction_id.0.into(),
                    row.branch.branch_id.0.into(),
                    row.branch.resource_id.as_str().into(),
                    row.table.into(),
                    row.pk.into(),
                    at.clone().into(),
                    at.clone().into(),
                ]);
            }
            counted += Self::execute_counted(&mut **tx, &sql, args).await?;
        }
        Ok(counted)
    }

    /// The rows held under `rows`' keys, locked until the end of `tx`: (key, transaction,
    /// branch).
    async fn holders_for_update(
        tx: &mut Tx<DB>,
        rows: &[&(String, LockRow<'_>)],
    ) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
        let keys: Vec<&str> = rows.iter().map(|entry| entry.0.as_str()).collect();
        Self::holders_of_keys(tx, &keys).await
    }

    /// The rows held under `keys`, locked until the end of `tx`: (key, transaction, branch).
    pub(crate) async fn holders_of_keys(
        tx: &mut Tx<DB>,
        keys: &[&str],
    ) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
        let mut held = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let chunk = padded(chunk);
            let sql = format!(
                "SELECT {}, transaction_id, branch_id FROM lock_table \
                 WHERE row_key IN ({}) FOR UPDATE",
                DB::text("row_key"),
                marks(chunk.len())
            );
            let args = chunk.iter().map(|key| Arg::from(*key)).collect();
            for row in Self::fetch(&mut **tx, &sql, args).await? {
                let key: String = row.try_get(0)?;
                let holder_tx: Option<i64> = row.try_get(1)?;
                held.push((key, holder_tx.unwrap_or_default(), row.try_get(2)?));
            }
        }
        Ok(held)
    }

    /// Inserts or replaces branch rows: (branch, its transaction's xid, its time).
    pub(crate) async fn upsert_branches(
        tx: &mut Tx<DB>,
        branches: &[(&BranchSession, &str, i64)],
    ) -> Result<(), sqlx::Error> {
        let ts = DB::TIMESTAMP_PARAM;
        // gmt_create stays: a branch added again keeps its place in the order.
        let updated = [
            "xid",
            "transaction_id",
            "resource_id",
            "branch_type",
            "status",
            "client_id",
            "application_data",
            "gmt_modified",
        ]
        .map(|column| format!("{column} = {}", DB::inserted(column)))
        .join(", ");
        for chunk in statement_chunks(branches) {
            let values =
                vec![format!("(?, ?, ?, ?, ?, ?, ?, ?, {ts}, {ts})"); chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO branch_table (branch_id, xid, transaction_id, resource_id, \
                 branch_type, status, client_id, application_data, gmt_create, gmt_modified) \
                 VALUES {values} {} {updated}",
                DB::on_conflict_update("branch_id")
            );
            let mut args = Vec::with_capacity(chunk.len() * 10);
            for &(branch, xid, micros) in chunk {
                let at = timestamp(micros);
                args.extend([
                    branch.branch_id.0.into(),
                    xid.into(),
                    branch.transaction_id.0.into(),
                    branch.resource_id.as_str().into(),
                    branch.branch_type.name().into(),
                    i64::from(branch.status.code()).into(),
                    branch.client_id.as_str().into(),
                    branch.application_data.as_str().into(),
                    Arg::from(at.clone()),
                    at.into(),
                ]);
            }
            Self::execute(&mut **tx, &sql, args).await?;
        }
        Ok(())
    }

    async fn branch_exists(
        tx: &mut Tx<DB>,
        transaction_id: TransactionId,
        branch_id: ferrata_core::BranchId,
    ) -> Result<bool, sqlx::Error> {
        let rows = Self::fetch(
            &mut **tx,
            "SELECT branch_id FROM branch_table WHERE branch_id = ? AND transaction_id = ? FOR UPDATE",
            vec![branch_id.0.into(), transaction_id.0.into()],
        )
        .await?;
        Ok(!rows.is_empty())
    }

    /// Applies one op inside `tx`; `micros` is the time written into new rows. `locked` holds
    /// the rows of `global_table` this database transaction locked so far.
    pub(crate) async fn apply_op(
        tx: &mut Tx<DB>,
        locked: &mut LockedGlobals,
        op: &StoreOp,
        micros: i64,
        rollback_retry_timeout_unlock: bool,
    ) -> Result<OpOutcome, sqlx::Error> {
        let holds = |status| status_holds_locks(status, rollback_retry_timeout_unlock);
        // The transaction's row, locked: conditions and every change below read it.
        let (stored, stored_xid) = match op.record.transaction_id() {
            Some(id) => match Self::lock_global(tx, locked, id).await? {
                Some((status, xid)) => (Some(status), xid),
                None => (None, String::new()),
            },
            None => (None, String::new()),
        };
        if let Condition::GlobalStatusIs(expected) = op.condition {
            match stored {
                None => return Ok(OpOutcome::NotFound),
                Some(actual) if actual != expected => {
                    return Ok(OpOutcome::StatusMismatch { actual });
                }
                Some(_) => {}
            }
        }
        if let Err(reason) = check_limits(&DB::limits(), &op.record) {
            return Ok(OpOutcome::Unstorable { reason });
        }
        match &op.record {
            Record::GlobalAdd(global) => {
                if stored.is_some_and(|old| holds(old) && !holds(global.status)) {
                    Self::delete_locks_of_transaction(tx, &stored_xid).await?;
                }
                Self::upsert_globals(tx, &[(global, micros)]).await?;
                locked.insert(global.transaction_id, (global.status, global.xid.clone()));
            }
            Record::GlobalUpdate { status, .. } => {
                let Some(old) = stored else {
                    return Ok(OpOutcome::NotFound);
                };
                if holds(old) && !holds(*status) {
                    Self::delete_locks_of_transaction(tx, &stored_xid).await?;
                }
                let sql = format!(
                    "UPDATE global_table SET status = ?, gmt_modified = {} WHERE xid = ?",
                    DB::TIMESTAMP_PARAM
                );
                Self::execute(
                    &mut **tx,
                    &sql,
                    vec![
                        i64::from(status.code()).into(),
                        timestamp(micros).into(),
                        stored_xid.clone().into(),
                    ],
                )
                .await?;
                if let Some(id) = op.record.transaction_id() {
                    locked.insert(id, (*status, stored_xid.clone()));
                }
            }
            Record::GlobalRemove { .. } => {
                if stored.is_none() {
                    return Ok(OpOutcome::NotFound);
                }
                let xid = vec![Arg::from(stored_xid.clone())];
                Self::delete_locks_of_transaction(tx, &stored_xid).await?;
                Self::execute(
                    &mut **tx,
                    "DELETE FROM branch_table WHERE xid = ?",
                    xid.clone(),
                )
                .await?;
                Self::execute(&mut **tx, "DELETE FROM global_table WHERE xid = ?", xid).await?;
                if let Some(id) = op.record.transaction_id() {
                    locked.remove(&id);
                }
            }
            Record::BranchAdd(branch) => {
                let Some(status) = stored else {
                    return Ok(OpOutcome::NotFound);
                };
                let rows = if holds(status) {
                    branch_rows(branch)
                } else {
                    Vec::new()
                };
                // A savepoint keeps a conflict from undoing the batch's other ops.
                Self::execute(&mut **tx, "SAVEPOINT ferrata_branch", Vec::new()).await?;
                Self::execute(
                    &mut **tx,
                    "DELETE FROM lock_table WHERE branch_id = ?",
                    vec![branch.branch_id.0.into()],
                )
                .await?;
                if let Some(conflict) =
                    Self::take_rows(tx, branch, &stored_xid, &rows, micros).await?
                {
                    Self::execute(
                        &mut **tx,
                        "ROLLBACK TO SAVEPOINT ferrata_branch",
                        Vec::new(),
                    )
                    .await?;
                    return Ok(OpOutcome::LockConflict(conflict));
                }
                Self::execute(&mut **tx, "RELEASE SAVEPOINT ferrata_branch", Vec::new()).await?;
                Self::upsert_branches(tx, &[(branch, &stored_xid, micros)]).await?;
            }
            Record::BranchUpdate {
                transaction_id,
                branch_id,
                status,
                application_data,
            } => {
                if !Self::branch_exists(tx, *transaction_id, *branch_id).await? {
                    return Ok(OpOutcome::NotFound);
                }
                let ts = DB::TIMESTAMP_PARAM;
                let mut args: Vec<Arg> =
                    vec![i64::from(status.code()).into(), timestamp(micros).into()];
                let sql = match application_data {
                    Some(data) => {
                        args.push(data.as_str().into());
                        format!(
                            "UPDATE branch_table SET status = ?, gmt_modified = {ts}, \
                             application_data = ? WHERE branch_id = ?"
                        )
                    }
                    None => {
                        format!(
                            "UPDATE branch_table SET status = ?, gmt_modified = {ts} WHERE branch_id = ?"
                        )
                    }
                };
                args.push(branch_id.0.into());
                Self::execute(&mut **tx, &sql, args).await?;
            }
            Record::BranchRemove {
                transaction_id,
                branch_id,
            } => {
                // Removing nothing is the answer that the branch is not there.
                let removed = Self::execute_counted(
                    &mut **tx,
                    "DELETE FROM branch_table WHERE branch_id = ? AND transaction_id = ?",
                    vec![branch_id.0.into(), transaction_id.0.into()],
                )
                .await?;
                if removed == 0 {
                    return Ok(OpOutcome::NotFound);
                }
                Self::execute(
                    &mut **tx,
                    "DELETE FROM lock_table WHERE branch_id = ?",
                    vec![branch_id.0.into()],
                )
                .await?;
            }
            Record::IdReserve { next_free_id } => {
                if Self::next_free_id_for_update(tx).await?.is_none() {
                    Self::insert_next_free_id_if_absent(tx, *next_free_id).await?;
                }
                // Locked now, whoever created it: the counter only grows.
                match Self::next_free_id_for_update(tx).await? {
                    Some(current) if current >= *next_free_id => {}
                    _ => Self::set_next_free_id(tx, *next_free_id).await?,
                }
            }
        }
        Ok(OpOutcome::Applied)
    }

    async fn next_free_id_for_update(tx: &mut Tx<DB>) -> Result<Option<i64>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM distributed_lock WHERE lock_key = ? FOR UPDATE",
            DB::text("lock_value")
        );
        let rows = Self::fetch(&mut **tx, &sql, vec![NEXT_ID_KEY.into()]).await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => {
                let value: String = row.try_get(0)?;
                value.trim().parse::<i64>().map(Some).map_err(|e| {
                    sqlx::Error::Decode(
                        format!("distributed_lock {NEXT_ID_KEY} holds {value:?}: {e}").into(),
                    )
                })
            }
        }
    }

    async fn set_next_free_id(tx: &mut Tx<DB>, next: i64) -> Result<(), sqlx::Error> {
        Self::execute(
            &mut **tx,
            "UPDATE distributed_lock SET lock_value = ? WHERE lock_key = ?",
            vec![next.to_string().into(), NEXT_ID_KEY.into()],
        )
        .await
    }

    /// Creates the counter at `next` unless it exists. A second node creating it at the same
    /// moment waits for the first one's transaction, then inserts nothing.
    async fn insert_next_free_id_if_absent(tx: &mut Tx<DB>, next: i64) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES (?, ?, 0) {}",
            DB::on_conflict_skip("lock_key")
        );
        Self::execute(
            &mut **tx,
            &sql,
            vec![NEXT_ID_KEY.into(), next.to_string().into()],
        )
        .await
    }

    /// Reserves `count` ids above every id reserved before and every id in the tables (ids
    /// seata-server gave, on a database taken over from it).
    pub(crate) async fn reserve_ids(
        tx: &mut Tx<DB>,
        count: i64,
    ) -> Result<std::ops::Range<i64>, sqlx::Error> {
        if Self::next_free_id_for_update(tx).await?.is_none() {
            let sql = "SELECT MAX(transaction_id) FROM global_table";
            let max_tx = first_i64(Self::fetch(&mut **tx, sql, Vec::new()).await?)?;
            let sql = "SELECT MAX(branch_id) FROM branch_table";
            let max_branch = first_i64(Self::fetch(&mut **tx, sql, Vec::new()).await?)?;
            let first = max_tx.max(max_branch).saturating_add(1).max(1);
            Self::insert_next_free_id_if_absent(tx, first).await?;
        }
        // Read again, locked: the counter is ours, or the one another node created meanwhile
        // (its ids must not be handed out twice).
        let start = Self::next_free_id_for_update(tx)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let end = start.saturating_add(count.max(0));
        Self::set_next_free_id(tx, end).await?;
        Ok(start..end)
    }

    pub(crate) async fn try_lease(
        tx: &mut Tx<DB>,
        name: &str,
        holder: &str,
        previous: Option<&str>,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, sqlx::Error> {
        let expires_at_ms = now_ms.saturating_add(ttl_ms.max(0));
        let sql = format!(
            "SELECT {}, expire FROM distributed_lock WHERE lock_key = ? FOR UPDATE",
            DB::text("lock_value")
        );
        let rows = Self::fetch(&mut **tx, &sql, vec![name.into()]).await?;
        match rows.first() {
            None => {
                Self::execute(
                    &mut **tx,
                    "INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES (?, ?, ?)",
                    vec![name.into(), holder.into(), expires_at_ms.into()],
                )
                .await?;
            }
            Some(row) => {
                let current: String = row.try_get(0)?;
                let expire: Option<i64> = row.try_get(1)?;
                let expire = expire.unwrap_or_default();
                let current = current.trim();
                if current != holder
                    && Some(current) != previous
                    && !current.is_empty()
                    && expire >= now_ms
                {
                    return Ok(LeaseOutcome::Taken(Lease {
                        name: name.to_owned(),
                        holder: current.to_owned(),
                        expires_at_ms: expire,
                    }));
                }
                Self::execute(
                    &mut **tx,
                    "UPDATE distributed_lock SET lock_value = ?, expire = ? WHERE lock_key = ?",
                    vec![holder.into(), expires_at_ms.into(), name.into()],
                )
                .await?;
            }
        }
        Ok(LeaseOutcome::Held { expires_at_ms })
    }

    pub(crate) async fn release_lease(
        tx: &mut Tx<DB>,
        name: &str,
        holder: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM distributed_lock WHERE lock_key = ? FOR UPDATE",
            DB::text("lock_value")
        );
        let rows = Self::fetch(&mut **tx, &sql, vec![name.into()]).await?;
        let held = match rows.first() {
            Some(row) => row.try_get::<String, _>(0)?.trim() == holder,
            None => false,
        };
        if held {
            // Seata's own "free" value: one space and no expiry.
            Self::execute(
                &mut **tx,
                "UPDATE distributed_lock SET lock_value = ' ', expire = 0 WHERE lock_key = ?",
                vec![name.into()],
            )
            .await?;
        }
        Ok(held)
    }
}

fn first_i64<R: Row>(rows: Vec<R>) -> Result<i64, sqlx::Error>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    rows.first()
        .map_or(Ok(0), |row| crate::read::int_at(row, 0))
}

pub(crate) fn global_status(code: i64) -> Result<GlobalStatus, sqlx::Error> {
    u8::try_from(code)
        .ok()
        .and_then(GlobalStatus::from_code)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown global status {code}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_chunks_are_powers_of_two_largest_first() {
        let items: Vec<u32> = (0..600).collect();
        let lens =
            |n: usize| -> Vec<usize> { statement_chunks(&items[..n]).map(<[u32]>::len).collect() };
        assert_eq!(lens(0), Vec::<usize>::new());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(37), [32, 4, 1]);
        assert_eq!(lens(600), [256, 256, 64, 16, 8]);
        let joined: Vec<u32> = statement_chunks(&items[..37]).flatten().copied().collect();
        assert_eq!(joined, items[..37], "every item once, in order");
    }

    #[test]
    fn padded_lists_repeat_the_last_value() {
        assert_eq!(padded::<i64>(&[]), Vec::<i64>::new());
        assert_eq!(padded(&[7]), [7]);
        assert_eq!(padded(&[1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(padded(&[1, 2, 3, 4, 5]).len(), 8);
    }
}
