//! The store's reads: transactions with their branches (in `gmt_create` order) and the rows
//! each AT branch holds, in one snapshot; lock holders by row; the id high-water mark.

use std::collections::HashMap;

use ferrata_core::{
    BranchId, BranchSession, Branches, GlobalSession, Record, SessionTable, StoredTransaction,
    TransactionId,
};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};
use ferrata_store::{RowKey, RowLock, StoreError, canonical_lock_key, row_key};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::dialect::SqlDatabase;
use crate::ops::{Arg, Sql, marks};
use crate::{NEXT_ID_KEY, NODE_TABLE, SqlStore, database_error};

/// Transaction ids per `IN (…)` list.
const IDS_PER_STATEMENT: usize = 500;

/// Which transactions to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter<'a> {
    All,
    /// Transactions whose XID starts with `prefix:` (one node's).
    XidPrefix(&'a str),
    Id(TransactionId),
    Statuses(&'a [GlobalStatus]),
}

fn decode_error(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

impl<DB> SqlStore<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Every stored session and the id high-water mark, as recovery wants them.
    pub(crate) async fn load_all(&self) -> Result<SessionTable, StoreError> {
        let mut table = SessionTable::new();
        let filter = match &self.xid_prefix {
            Some(prefix) => Filter::XidPrefix(prefix),
            None => Filter::All,
        };
        for tx in self.load(filter, None).await? {
            table.apply(&Record::GlobalAdd(tx.global));
            for branch in tx.branches {
                table.apply(&Record::BranchAdd(branch));
            }
        }
        let context = "cannot read the id reservation";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(context, e))?;
        let sql = format!(
            "SELECT {} FROM distributed_lock WHERE lock_key = ?",
            DB::text("lock_value")
        );
        let rows = Sql::<DB>::fetch(&mut *conn, &sql, vec![NEXT_ID_KEY.into()])
            .await
            .map_err(|e| database_error(context, e))?;
        if let Some(row) = rows.first() {
            let value: String = row.try_get(0).map_err(|e| database_error(context, e))?;
            let next_free_id = value.trim().parse::<i64>().map_err(|e| {
                StoreError::Invalid(format!(
                    "distributed_lock row {NEXT_ID_KEY} holds {value:?}, not a number: {e}"
                ))
            })?;
            table.apply(&Record::IdReserve { next_free_id });
        }
        Ok(table)
    }

    /// Every announced node's XID prefix, sorted.
    pub(crate) async fn node_prefixes(&self) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT {} FROM {NODE_TABLE}", DB::text("xid_prefix"));
        self.sorted_texts("cannot read the nodes of the store", &sql)
            .await
    }

    /// The distinct XID prefixes in `global_table`, sorted.
    pub(crate) async fn prefixes(&self) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT {} FROM global_table",
            DB::xid_prefix("xid")
        );
        self.sorted_texts("cannot read the XID prefixes of stored sessions", &sql)
            .await
    }

    /// The first column of every row of `sql`, as Rust sorts text (a database collation may
    /// differ), without repeats.
    async fn sorted_texts(&self, context: &str, sql: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(context, e))?;
        let rows = Sql::<DB>::fetch(&mut *conn, sql, Vec::new())
            .await
            .map_err(|e| database_error(context, e))?;
        let mut texts = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| database_error(context, e))?;
        texts.sort();
        texts.dedup();
        Ok(texts)
    }

    /// Transactions matching `filter` in transaction-id order (at most `limit`), read in one
    /// snapshot with their branches and each AT branch's held rows as its lock key.
    pub(crate) async fn load(
        &self,
        filter: Filter<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        let context = "cannot read sessions from the store";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(context, e))?;
        if let Some(statement) = DB::before_snapshot_read() {
            (&mut *conn)
                .execute(statement)
                .await
                .map_err(|e| database_error(context, e))?;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| database_error(context, e))?;
        let found = Self::read(&mut tx, filter, limit)
            .await
            .map_err(|e| database_error(context, e))?;
        tx.rollback()
            .await
            .map_err(|e| database_error(context, e))?;
        Ok(found)
    }

    async fn read(
        tx: &mut sqlx::Transaction<'_, DB>,
        filter: Filter<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<StoredTransaction>, sqlx::Error> {
        if let Some(statement) = DB::snapshot_read() {
            Sql::<DB>::execute(&mut **tx, statement, Vec::new()).await?;
        }
        let int = DB::BIGINT;
        let (condition, args): (String, Vec<Arg>) = match filter {
            Filter::All => (String::new(), Vec::new()),
            Filter::XidPrefix(prefix) => (
                "WHERE xid LIKE ? ESCAPE '!'".to_owned(),
                vec![Arg::from(format!("{}:%", like_escaped(prefix)))],
            ),
            Filter::Id(id) => ("WHERE transaction_id = ?".to_owned(), vec![id.0.into()]),
            Filter::Statuses(statuses) => (
                format!("WHERE status IN ({})", marks(statuses.len())),
                statuses
                    .iter()
                    .map(|s| Arg::from(i64::from(s.code())))
                    .collect(),
            ),
        };
        let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let text = DB::text;
        let sql = format!(
            "SELECT {}, transaction_id, CAST(status AS {int}), {}, {}, {}, \
             CAST(timeout AS {int}), begin_time, {} FROM global_table {condition} \
             ORDER BY transaction_id{limit}",
            text("xid"),
            text("application_id"),
            text("transaction_service_group"),
            text("transaction_name"),
            text("application_data"),
        );
        let mut globals = Vec::new();
        for row in Sql::<DB>::fetch(&mut **tx, &sql, args).await? {
            globals.push(global_of(&row)?);
        }
        if globals.is_empty() {
            return Ok(Vec::new());
        }
        let mut branches: HashMap<i64, Vec<BranchSession>> = HashMap::new();
        let mut held: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        // By xid: Seata's schema indexes branch and lock rows by xid, not by transaction id.
        let chunks: Vec<(String, Vec<Arg>)> = match filter {
            Filter::All => vec![(String::new(), Vec::new())],
            _ => globals
                .chunks(IDS_PER_STATEMENT)
                .map(|chunk| {
                    (
                        format!("WHERE xid IN ({})", marks(chunk.len())),
                        chunk.iter().map(|g| Arg::from(g.xid.clone())).collect(),
                    )
                })
                .collect(),
        };
        for (condition, args) in chunks {
            let sql = format!(
                "SELECT branch_id, transaction_id, {}, {}, CAST(status AS {int}), {}, {} \
                 FROM branch_table {condition} ORDER BY gmt_create, branch_id",
                text("resource_id"),
                text("branch_type"),
                text("client_id"),
                text("application_data"),
            );
            for row in Sql::<DB>::fetch(&mut **tx, &sql, args.clone()).await? {
                let branch = branch_of(&row)?;
                branches
                    .entry(branch.transaction_id.0)
                    .or_default()
                    .push(branch);
            }
            let sql = format!(
                "SELECT branch_id, {}, {} FROM lock_table {condition}",
                text("table_name"),
                text("pk")
            );
            for row in Sql::<DB>::fetch(&mut **tx, &sql, args).await? {
                let branch_id: i64 = row.try_get(0)?;
                let table: Option<String> = row.try_get(1)?;
                let pk: Option<String> = row.try_get(2)?;
                held.entry(branch_id)
                    .or_default()
                    .push((table.unwrap_or_default(), pk.unwrap_or_default()));
            }
        }
        Ok(globals
            .into_iter()
            .map(|global| {
                let list = branches
                    .remove(&global.transaction_id.0)
                    .unwrap_or_default();
                let branches: Branches = list
                    .into_iter()
                    .map(|mut branch| {
                        if let Some(rows) = held.get(&branch.branch_id.0) {
                            branch.lock_key = canonical_lock_key(
                                rows.iter().map(|(t, pk)| (t.as_str(), pk.as_str())),
                            );
                        }
                        branch
                    })
                    .collect();
                StoredTransaction { global, branches }
            })
            .collect())
    }

    /// The held rows among `rows`, in the order asked.
    pub(crate) async fn holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError> {
        let context = "cannot read lock holders from the store";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(context, e))?;
        let keys: Vec<String> = rows
            .iter()
            .map(|r| row_key(&r.resource_id, &r.table, &r.pk))
            .collect();
        let mut found: HashMap<String, (i64, i64)> = HashMap::new();
        for chunk in keys.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {}, transaction_id, branch_id FROM lock_table WHERE row_key IN ({})",
                DB::text("row_key"),
                marks(chunk.len())
            );
            let args = chunk.iter().map(|k| Arg::from(k.clone())).collect();
            let result = Sql::<DB>::fetch(&mut *conn, &sql, args)
                .await
                .map_err(|e| database_error(context, e))?;
            for row in result {
                let decoded: Result<(String, Option<i64>, i64), sqlx::Error> =
                    (|| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))();
                let (key, tx, branch) = decoded.map_err(|e| database_error(context, e))?;
                found.insert(key, (tx.unwrap_or_default(), branch));
            }
        }
        Ok(rows
            .iter()
            .zip(&keys)
            .filter_map(|(row, key)| {
                let &(tx, branch) = found.get(key)?;
                Some(RowLock {
                    resource_id: row.resource_id.clone(),
                    table: row.table.clone(),
                    pk: row.pk.clone(),
                    transaction_id: TransactionId(tx),
                    branch_id: BranchId(branch),
                })
            })
            .collect())
    }
}

/// `text` with LIKE's wildcards (and the escape character `!`) escaped by `!`.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// A nullable text column; NULL reads as "" (as Seata's nullable columns mean).
fn text_at<R: Row>(row: &R, index: usize) -> Result<String, sqlx::Error>
where
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    Ok(row.try_get::<Option<String>, _>(index)?.unwrap_or_default())
}

/// A nullable integer column; NULL reads as 0.
pub(crate) fn int_at<R: Row>(row: &R, index: usize) -> Result<i64, sqlx::Error>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    Ok(row.try_get::<Option<i64>, _>(index)?.unwrap_or_default())
}

fn global_of<R: Row>(row: &R) -> Result<GlobalSession, sqlx::Error>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    let text = |i: usize| text_at(row, i);
    let int = |i: usize| int_at(row, i);
    Ok(GlobalSession {
        xid: text(0)?,
        transaction_id: TransactionId(int(1)?),
        status: crate::ops::global_status(int(2)?)?,
        application_id: text(3)?,
        transaction_service_group: text(4)?,
        transaction_name: text(5)?,
        timeout_ms: i32::try_from(int(6)?)
            .map_err(|_| decode_error(format!("timeout {} out of range", int(6).unwrap_or(0))))?,
        begin_time_ms: int(7)?,
        application_data: text(8)?,
    })
}

fn branch_of<R: Row>(row: &R) -> Result<BranchSession, sqlx::Error>
where
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    usize: ColumnIndex<R>,
{
    let text = |i: usize| text_at(row, i);
    let int = |i: usize| int_at(row, i);
    let type_name = text(3)?;
    let branch_type = BranchType::ALL
        .iter()
        .copied()
        .find(|t| t.name() == type_name)
        .ok_or_else(|| decode_error(format!("unknown branch type {type_name:?}")))?;
    let status_code = int(4)?;
    let status = u8::try_from(status_code)
        .ok()
        .and_then(BranchStatus::from_code)
        .ok_or_else(|| decode_error(format!("unknown branch status {status_code}")))?;
    Ok(BranchSession {
        branch_id: BranchId(row.try_get::<i64, _>(0)?),
        transaction_id: TransactionId(int(1)?),
        resource_id: text(2)?,
        lock_key: String::new(),
        branch_type,
        status,
        client_id: text(5)?,
        application_data: text(6)?,
    })
}
