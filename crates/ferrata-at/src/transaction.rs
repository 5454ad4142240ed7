//! A local transaction through an AT data source. Inside a global transaction each change is
//! recorded (before image, statement, after image) and the commit registers the branch with
//! its row locks, writes the undo log in the same local transaction, then commits.

use ferrata::{BranchRegistration, BranchReport, BranchStatus, BranchType, LockQuery};

use crate::database::{AtDatabase, TimeZone};
use crate::error::AtError;
use crate::image::{self, columns_of};
use crate::lock_key::LockKeys;
use crate::lock_retry::{Conflict, LockRetry, registration_application_data};
use crate::meta::TableMeta;
use crate::query::AtQuery;
use crate::source::AtDataSource;
use crate::sql::{
    Delete, Insert, InsertValue, Recognized, RowLock, SelectForUpdate, Statement, Update,
    check_primary_key_untouched, tracked_columns,
};
use crate::undo::{BranchUndoLog, SqlType, SqlUndoLog, Value, encode_rollback_info};
use crate::undo_table::{Inserted, LogStatus};

/// Whether the caller wants the statement's rows (`fetch_all`) or only its count (`execute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Count,
    Rows,
}

/// What the application's statement gave back.
struct Ran<R> {
    changed: u64,
    rows: Vec<R>,
}

impl<R> Ran<R> {
    fn counted(changed: u64) -> Ran<R> {
        Ran {
            changed,
            rows: Vec::new(),
        }
    }
}

/// Savepoint a SELECT … FOR UPDATE rolls back to while it waits for a global lock, so that the
/// holder is not blocked by this transaction's row locks meanwhile.
const LOCK_WAIT_SAVEPOINT: &str = "ferrata_at_lock_wait";

/// A local transaction; see [`AtDataSource::begin`]. Dropping it unfinished rolls it back.
#[derive(Debug)]
#[must_use = "an AT transaction rolls back unless committed"]
pub struct AtTransaction<DB: AtDatabase> {
    pub(crate) source: AtDataSource<DB>,
    tx: Option<sqlx::Transaction<'static, DB>>,
    xid: Option<String>,
    pub(crate) undo: Vec<SqlUndoLog>,
    pub(crate) locks: LockKeys,
    /// Outside a global transaction: record lock keys and check them with the TC at commit
    /// (Java's `@GlobalLock`).
    pub(crate) global_lock: bool,
}

/// Who began a local transaction: the application (`AtDataSource::begin`), or the data source
/// for one statement (`AtDataSource::execute`), which may roll it back and run it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Began {
    ByApplication,
    ByDataSource,
}

/// How `finish` failed.
#[derive(Debug)]
pub(crate) enum Finish {
    /// Rolled back after a lock conflict; run the statement again.
    Conflict(Conflict),
    Failed(AtError),
}

impl Finish {
    fn failed(error: impl Into<AtError>) -> Finish {
        Finish::Failed(error.into())
    }
}

impl<DB: AtDatabase> AtTransaction<DB> {
    pub(crate) fn new(
        source: AtDataSource<DB>,
        tx: sqlx::Transaction<'static, DB>,
        xid: Option<String>,
        global_lock: bool,
    ) -> AtTransaction<DB> {
        AtTransaction {
            source,
            tx: Some(tx),
            xid,
            undo: Vec::new(),
            locks: LockKeys::new(),
            global_lock,
        }
    }

    /// The global transaction this local one belongs to, if any.
    pub fn xid(&self) -> Option<&str> {
        self.xid.as_deref()
    }

    /// The connection, for statements AT must not see (reads, or changes that are not to be
    /// undone). Writes through it are NOT recorded and will not be rolled back globally.
    pub fn connection(&mut self) -> Result<&mut DB::Connection, AtError> {
        Ok(&mut *self.tx.as_mut().ok_or(AtError::Finished)?)
    }

    /// Runs an INSERT, UPDATE or DELETE (or any statement without a result set) and returns
    /// the number of rows it changed.
    pub async fn execute(&mut self, query: AtQuery) -> Result<u64, AtError> {
        // Untouched means unparsed too: SQL the parser does not know still runs outside AT.
        if !self.recorded() {
            return self.pass_through_execute(&query).await;
        }
        let recognized = self.recognize(&query)?;
        let zone = self.zone();
        match &recognized.statement {
            Statement::Update(update) => Ok(self
                .update(update, &query, zone, Want::Count)
                .await?
                .changed),
            Statement::Delete(delete) => Ok(self
                .delete(delete, &query, zone, Want::Count)
                .await?
                .changed),
            Statement::Insert(insert) => Ok(self
                .insert(insert, &query, zone, Want::Count)
                .await?
                .changed),
            Statement::PassThrough(_) => self.pass_through_execute(&query).await,
            Statement::SelectForUpdate(_) => Err(AtError::NotYetSupported(
                "SELECT … FOR UPDATE through execute(); use fetch_all()",
            )),
            Statement::UpdateJoin(join) => self.update_join(join, &query, zone).await,
            Statement::MultiDelete(delete) => self.multi_delete(delete, &query, zone).await,
            Statement::Unsupported { reason } => Err(AtError::Unsupported(reason.clone())),
        }
    }

    /// Runs a query and returns its rows. Inside a global transaction a `SELECT … FOR UPDATE`
    /// also waits until no other global transaction holds the rows it read (read committed, as
    /// Java's `SelectForUpdateExecutor`), and an INSERT, UPDATE or DELETE with `RETURNING`
    /// is recorded like through [`execute`](Self::execute) and gives back its rows. On
    /// PostgreSQL an INSERT's rows carry the primary-key columns after the ones it asked for
    /// (AT needs the keys of the rows it inserted): read them by name or by the positions
    /// you asked for.
    pub async fn fetch_all(&mut self, query: AtQuery) -> Result<Vec<DB::Row>, AtError> {
        let zone = self.zone();
        if !self.recorded() {
            return self.pass_through_fetch(&query).await;
        }
        let recognized = self.recognize(&query)?;
        match &recognized.statement {
            Statement::SelectForUpdate(select) if select.lock == RowLock::Update => {
                self.select_for_update(select, &query, zone).await
            }
            Statement::PassThrough(_) | Statement::SelectForUpdate(_) => {
                self.pass_through_fetch(&query).await
            }
            Statement::Update(update) => {
                Ok(self.update(update, &query, zone, Want::Rows).await?.rows)
            }
            Statement::Delete(delete) => {
                Ok(self.delete(delete, &query, zone, Want::Rows).await?.rows)
            }
            Statement::Insert(insert) => {
                Ok(self.insert(insert, &query, zone, Want::Rows).await?.rows)
            }
            Statement::Unsupported { reason } => Err(AtError::Unsupported(reason.clone())),
            Statement::UpdateJoin(_) | Statement::MultiDelete(_) => Err(AtError::NotYetSupported(
                "a statement over several tables through fetch_all(); use execute()",
            )),
        }
    }

    /// Commits. Inside a global transaction with changes: registers the branch (waiting for
    /// row locks held by other global transactions as the lock retry policy says), writes
    /// the undo log and commits, all or nothing.
    pub async fn commit(mut self) -> Result<(), AtError> {
        match self.finish(Began::ByApplication).await {
            Ok(()) => Ok(()),
            Err(Finish::Failed(error)) => Err(error),
            // `finish` returns a conflict only for transactions the data source began; the
            // application's waits inside it and ends in `Failed(LockWaitTimeout)`.
            Err(Finish::Conflict(conflict)) => {
                debug_assert!(
                    false,
                    "a conflict returned to the application: {conflict:?}"
                );
                Err(AtError::LockWaitTimeout(
                    crate::lock_retry::LockWaitTimeout { attempts: 0 },
                ))
            }
        }
    }

    /// Commits; with `Began::ByDataSource` and the rollback-on-conflict policy a lock conflict
    /// rolls the local transaction back and returns `Finish::Conflict` for the caller to run
    /// the statement again.
    pub(crate) async fn finish(&mut self, began: Began) -> Result<(), Finish> {
        let mut tx = self.tx.take().ok_or(Finish::Failed(AtError::Finished))?;
        let Some(xid) = self.xid.clone() else {
            if self.global_lock
                && !self.locks.is_empty()
                && let Err(error) = self.wait_for_global_locks("").await
            {
                tx.rollback().await.map_err(Finish::failed)?;
                return Err(Finish::Failed(error));
            }
            return tx.commit().await.map_err(Finish::failed);
        };
        if self.undo.is_empty() || self.locks.is_empty() {
            return tx.commit().await.map_err(Finish::failed);
        }
        let shared = self.source.inner.clone();
        let policy = shared.settings.lock_retry;
        let lock_key = self.locks.to_string();
        // Insert-only branches register optimistically first (skipCheckLock), as Java does:
        // rows they insert are new, so a conflict is unlikely and the TC can skip its check.
        let insert_only = self
            .undo
            .iter()
            .all(|item| item.before_image.as_ref().is_none_or(|i| i.rows.is_empty()));
        let optimistic = insert_only && policy.retries > 0;
        let mut retry = LockRetry::new(policy);
        let branch_id = loop {
            let skip_check_lock = optimistic.then_some(retry.attempts() == 1);
            let mut registration =
                BranchRegistration::new(xid.clone(), BranchType::At, shared.resource_id.clone())
                    .lock_key(lock_key.clone());
            let application_began = began == Began::ByApplication;
            if let Some(data) = registration_application_data(application_began, skip_check_lock) {
                registration = registration.application_data(data);
            }
            match shared.client.branch_register(registration).await {
                Ok(branch_id) => break branch_id,
                Err(ferrata::Error::LockConflict { fail_fast, .. }) => {
                    // Fail-fast means "you hold rows the holder needs": only true when the
                    // application holds them; a statement this crate began can wait.
                    let conflict = if fail_fast && application_began {
                        Conflict::FailFast
                    } else {
                        Conflict::Held
                    };
                    if !application_began && policy.rollback_on_conflict {
                        tx.rollback().await.map_err(Finish::failed)?;
                        return Err(Finish::Conflict(conflict));
                    }
                    if let Err(timeout) = retry.wait_after(conflict, false).await {
                        tx.rollback().await.map_err(Finish::failed)?;
                        return Err(Finish::Failed(timeout.into()));
                    }
                }
                Err(error) => {
                    tx.rollback().await.map_err(Finish::failed)?;
                    return Err(Finish::Failed(error.into()));
                }
            }
        };
        let log = BranchUndoLog {
            xid: xid.clone(),
            branch_id,
            sql_undo_logs: std::mem::take(&mut self.undo),
        };
        let written = async {
            let encoded = encode_rollback_info(&log, &shared.settings.undo, None)?;
            let inserted = shared
                .undo_table
                .insert(
                    &mut tx,
                    branch_id,
                    &xid,
                    &encoded.context.to_string(),
                    &encoded.rollback_info,
                    LogStatus::Normal,
                )
                .await?;
            if inserted == Inserted::AlreadyExists {
                return Err(AtError::GlobalFinished { xid: xid.clone() });
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(error) = written {
            tracing::warn!(%xid, branch_id, %error, "phase one of an AT branch failed; reporting it");
            self.report_phase_one_failed(&xid, branch_id).await;
            return Err(Finish::Failed(error));
        }
        Ok(())
    }

    /// Waits (as the lock retry policy says) until the TC reports every row of this
    /// transaction's lock keys free for `xid` (empty: outside any global transaction).
    async fn wait_for_global_locks(&self, xid: &str) -> Result<(), AtError> {
        let shared = &self.source.inner;
        let mut retry = LockRetry::new(shared.settings.lock_retry);
        loop {
            let query = LockQuery::new(xid, BranchType::At, shared.resource_id.clone())
                .lock_key(self.locks.to_string());
            if shared.client.lock_query(query).await? {
                return Ok(());
            }
            retry.wait_after(Conflict::Held, false).await?;
        }
    }

    /// Rolls the local transaction back (nothing was registered yet).
    pub async fn rollback(mut self) -> Result<(), AtError> {
        let tx = self.tx.take().ok_or(AtError::Finished)?;
        Ok(tx.rollback().await?)
    }

    async fn report_phase_one_failed(&self, xid: &str, branch_id: i64) {
        let shared = &self.source.inner;
        for attempt in 1..=shared.settings.report_retry_count.max(1) {
            let report =
                BranchReport::new(xid, branch_id, BranchType::At, BranchStatus::PhaseOneFailed)
                    .resource_id(shared.resource_id.clone());
            match shared.client.branch_report(report).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%xid, branch_id, attempt, %error, "cannot report PhaseOne_Failed")
                }
            }
        }
    }

    /// Whether statements are recorded (inside a global transaction) or at least lock-checked
    /// (global-lock mode); otherwise they run untouched.
    fn recorded(&self) -> bool {
        self.xid.is_some() || self.global_lock
    }

    fn zone(&self) -> TimeZone {
        self.source.inner.settings.java_time_zone
    }

    fn recognize(&self, query: &AtQuery) -> Result<std::sync::Arc<Recognized>, AtError> {
        let recognized = self
            .source
            .inner
            .statements
            .get_or_parse(query.sql(), DB::SQL)?;
        if recognized.param_count != query.params().len() {
            return Err(AtError::ParamCount {
                expected: recognized.param_count,
                given: query.params().len(),
            });
        }
        Ok(recognized)
    }

    async fn pass_through_fetch(&mut self, query: &AtQuery) -> Result<Vec<DB::Row>, AtError> {
        let args = crate::database::arguments::<DB>(query.params(), self.zone())?;
        Ok(DB::fetch_all(self.connection()?, query.sql(), args).await?)
    }

    async fn pass_through_execute(&mut self, query: &AtQuery) -> Result<u64, AtError> {
        let zone = self.zone();
        self.run(query, zone).await
    }

    /// The statement's values for the parameters an image query takes (1-based ordinals).
    pub(crate) fn mapped(query: &AtQuery, ordinals: &[usize]) -> Vec<Value> {
        ordinals
            .iter()
            .map(|n| query.params()[n - 1].clone())
            .collect()
    }

    pub(crate) async fn table_meta(
        &mut self,
        table: &str,
    ) -> Result<std::sync::Arc<TableMeta>, AtError> {
        let shared = self.source.inner.clone();
        shared.meta(self.connection()?, table).await
    }

    async fn update(
        &mut self,
        update: &Update,
        query: &AtQuery,
        zone: TimeZone,
        want: Want,
    ) -> Result<Ran<DB::Row>, AtError> {
        let meta = self.table_meta(&update.table.name.render(DB::SQL)).await?;
        let names = self.update_image_columns(&meta, &update.table, &update.assignments)?;
        let columns = columns_of(&meta, &names)?;
        let image_query = update.before_image_query(DB::SQL, &names);
        let before = self
            .read_before(&image_query, query, &meta, &columns, zone)
            .await?;
        let ran = self.run_as(query, zone, want).await?;
        if before.is_empty() {
            return Ok(ran);
        }
        let keys = image::keys_of(&meta, &before);
        let after = image::rows_by_key::<DB>(
            self.connection()?,
            &update.table,
            &meta,
            &columns,
            &keys,
            zone,
        )
        .await?;
        self.record(SqlType::Update, &update.table.name, &meta, before, after)?;
        Ok(ran)
    }

    async fn delete(
        &mut self,
        delete: &Delete,
        query: &AtQuery,
        zone: TimeZone,
        want: Want,
    ) -> Result<Ran<DB::Row>, AtError> {
        let meta = self.table_meta(&delete.table.name.render(DB::SQL)).await?;
        let names: Vec<&str> = meta.columns.iter().map(|c| c.name.as_str()).collect();
        let columns = columns_of(&meta, &names)?;
        let image_query = delete.before_image_query(DB::SQL, &names);
        let before = self
            .read_before(&image_query, query, &meta, &columns, zone)
            .await?;
        let ran = self.run_as(query, zone, want).await?;
        if before.is_empty() {
            return Ok(ran);
        }
        self.record(
            SqlType::Delete,
            &delete.table.name,
            &meta,
            before,
            Vec::new(),
        )?;
        Ok(ran)
    }

    async fn insert(
        &mut self,
        insert: &Insert,
        query: &AtQuery,
        zone: TimeZone,
        want: Want,
    ) -> Result<Ran<DB::Row>, AtError> {
        // INSERT IGNORE is an upsert whose conflicting rows stay as they are.
        if insert.on_conflict.is_some() || insert.ignore {
            if want == Want::Rows && insert.returning.is_some() {
                return Err(AtError::NotYetSupported(
                    "an upsert with RETURNING through fetch_all(); use execute()",
                ));
            }
            let changed = self.upsert(insert, query, zone).await?;
            return Ok(Ran::counted(changed));
        }
        let meta = self.table_meta(&insert.table.name.render(DB::SQL)).await?;
        let names: Vec<&str> = meta.columns.iter().map(|c| c.name.as_str()).collect();
        let columns = columns_of(&meta, &names)?;
        let key_names: Vec<&str> = meta.primary_key.iter().map(String::as_str).collect();
        let key_columns = columns_of(&meta, &key_names)?;
        let (keys, rows) = match DB::SQL {
            // PostgreSQL says which keys it inserted, generated or not: RETURNING them (after
            // the application's own RETURNING list, which comes last in the statement).
            crate::sql::Dialect::Postgres => {
                let quoted = key_names
                    .iter()
                    .map(|k| DB::SQL.quote(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let statement = query.sql().trim_end().trim_end_matches(';');
                let sql = if insert.returning.is_some() {
                    format!("{statement}, {quoted}")
                } else {
                    format!("{statement} RETURNING {quoted}")
                };
                let args = crate::database::arguments::<DB>(query.params(), zone)?;
                let rows = DB::fetch_all(self.connection()?, &sql, args).await?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in &rows {
                    // The key columns are the last ones of each row.
                    let first = sqlx::Row::len(row) - key_columns.len();
                    let key = key_columns
                        .iter()
                        .enumerate()
                        .map(|(i, column)| DB::decode_value(row, first + i, column, zone))
                        .collect::<Result<Vec<Value>, _>>()?;
                    keys.push(key);
                }
                let rows = if insert.returning.is_some() {
                    rows
                } else {
                    Vec::new()
                };
                (keys, rows)
            }
            crate::sql::Dialect::MySql => {
                let args = crate::database::arguments::<DB>(query.params(), zone)?;
                let rows = match want {
                    // MariaDB's INSERT … RETURNING gives rows; LAST_INSERT_ID() is set as usual.
                    Want::Rows => DB::fetch_all(self.connection()?, query.sql(), args).await?,
                    Want::Count => {
                        DB::execute(self.connection()?, query.sql(), args).await?;
                        Vec::new()
                    }
                };
                (self.mysql_inserted_keys(insert, query, &meta).await?, rows)
            }
        };
        let inserted = keys.len() as u64;
        let after = image::rows_by_key::<DB>(
            self.connection()?,
            &insert.table,
            &meta,
            &columns,
            &keys,
            zone,
        )
        .await?;
        self.record(
            SqlType::Insert,
            &insert.table.name,
            &meta,
            Vec::new(),
            after,
        )?;
        Ok(Ran {
            changed: inserted,
            rows,
        })
    }

    /// The keys a MySQL INSERT wrote: from the statement's values, and for a generated key
    /// from `LAST_INSERT_ID()` (the first of the statement's rows; InnoDB gives a simple
    /// multi-row insert consecutive values `auto_increment_increment` apart).
    async fn mysql_inserted_keys(
        &mut self,
        insert: &Insert,
        query: &AtQuery,
        meta: &TableMeta,
    ) -> Result<Vec<Vec<Value>>, AtError> {
        let column_names: Vec<String> = match &insert.columns {
            Some(columns) => columns.iter().map(|c| c.normalized(DB::SQL)).collect(),
            None => meta.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let mut generated: Option<(i64, i64)> = None;
        let mut keys = Vec::with_capacity(insert.rows.len());
        for (row_index, row) in insert.rows.iter().enumerate() {
            let mut key = Vec::with_capacity(meta.primary_key.len());
            for key_column in &meta.primary_key {
                let position = column_names
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(key_column));
                let given = position.and_then(|p| row.get(p));
                let value = match given {
                    Some(InsertValue::Param(n)) => Some(query.params()[n - 1].clone()),
                    Some(InsertValue::Number(text)) => Some(
                        text.parse::<i64>()
                            .map(Value::Long)
                            .unwrap_or_else(|_| Value::String(text.clone())),
                    ),
                    Some(InsertValue::String(text)) => Some(Value::String(text.clone())),
                    Some(InsertValue::Boolean(b)) => Some(Value::Bool(*b)),
                    Some(InsertValue::Null | InsertValue::Default) | None => None,
                    Some(InsertValue::Expr(_)) => {
                        return Err(AtError::NotYetSupported(
                            "an INSERT whose primary key is an expression",
                        ));
                    }
                };
                let value = match (value, meta.column(key_column)) {
                    (Some(Value::Null) | None, Some(column)) if column.generated_key => {
                        let (first, step) = match generated {
                            Some(found) => found,
                            None => {
                                let found = self.mysql_generated_ids().await?;
                                generated = Some(found);
                                found
                            }
                        };
                        Value::Long(first + step * row_index as i64)
                    }
                    (Some(value), _) => value,
                    (None, _) => {
                        return Err(AtError::NotYetSupported(
                            "an INSERT that leaves a primary-key column to a default other than AUTO_INCREMENT",
                        ));
                    }
                };
                key.push(value);
            }
            keys.push(key);
        }
        Ok(keys)
    }

    async fn mysql_generated_ids(&mut self) -> Result<(i64, i64), AtError> {
        let args = DB::Arguments::default();
        let rows = DB::fetch_all(
            self.connection()?,
            "SELECT CAST(LAST_INSERT_ID() AS SIGNED), CAST(@@auto_increment_increment AS SIGNED)",
            args,
        )
        .await?;
        let row = rows
            .first()
            .ok_or(AtError::Database(sqlx::Error::RowNotFound))?;
        let first: i64 = DB::decode_i64(row, 0)?;
        let step: i64 = DB::decode_i64(row, 1)?;
        Ok((first, step.max(1)))
    }

    /// Reads a before image with `image` (an image query over the statement's own clauses,
    /// taking some of its parameters).
    pub(crate) async fn read_before(
        &mut self,
        image: &crate::sql::ImageQuery,
        query: &AtQuery,
        meta: &TableMeta,
        columns: &[&crate::meta::ColumnMeta],
        zone: TimeZone,
    ) -> Result<Vec<crate::undo::Row>, AtError> {
        let args = crate::database::arguments::<DB>(&Self::mapped(query, &image.params), zone)?;
        image::read_rows::<DB>(self.connection()?, &image.sql, args, meta, columns, zone).await
    }

    /// Runs the application's statement itself; the number of rows it changed.
    pub(crate) async fn run(&mut self, query: &AtQuery, zone: TimeZone) -> Result<u64, AtError> {
        let args = crate::database::arguments::<DB>(query.params(), zone)?;
        Ok(DB::execute(self.connection()?, query.sql(), args).await?)
    }

    /// Runs the application's statement, keeping its rows when they are wanted (`RETURNING`).
    async fn run_as(
        &mut self,
        query: &AtQuery,
        zone: TimeZone,
        want: Want,
    ) -> Result<Ran<DB::Row>, AtError> {
        match want {
            Want::Count => Ok(Ran::counted(self.run(query, zone).await?)),
            Want::Rows => {
                let args = crate::database::arguments::<DB>(query.params(), zone)?;
                let rows = DB::fetch_all(self.connection()?, query.sql(), args).await?;
                Ok(Ran {
                    changed: rows.len() as u64,
                    rows,
                })
            }
        }
    }

    /// The columns an UPDATE's images hold: with `only_care_update_columns` (Java's default)
    /// the key, the assigned columns and those the database updates itself (MySQL
    /// `ON UPDATE`); else every column. Refuses assignments to the primary key.
    pub(crate) fn update_image_columns<'m>(
        &self,
        meta: &'m TableMeta,
        table: &crate::sql::TableRef,
        assignments: &[crate::sql::Assignment],
    ) -> Result<Vec<&'m str>, AtError> {
        let key: Vec<&str> = meta.primary_key.iter().map(String::as_str).collect();
        check_primary_key_untouched(DB::SQL, table, &key, assignments)
            .map_err(AtError::Unsupported)?;
        let all: Vec<&'m str> = meta.columns.iter().map(|c| c.name.as_str()).collect();
        if !self.source.inner.settings.only_care_update_columns {
            return Ok(all);
        }
        let on_update: Vec<&str> = meta
            .columns
            .iter()
            .filter(|c| c.on_update)
            .map(|c| c.name.as_str())
            .collect();
        Ok(tracked_columns(
            DB::SQL,
            &all,
            &key,
            &on_update,
            assignments,
        ))
    }

    /// Records one statement's undo item for `table` (as written) and locks its rows: the
    /// before image's for a DELETE, the after image's otherwise.
    pub(crate) fn record(
        &mut self,
        sql_type: SqlType,
        table: &crate::sql::TableName,
        meta: &TableMeta,
        before: Vec<crate::undo::Row>,
        after: Vec<crate::undo::Row>,
    ) -> Result<(), AtError> {
        let locked = if sql_type == SqlType::Delete {
            &before
        } else {
            &after
        };
        image::lock_rows(&mut self.locks, &table.unquoted(), meta, locked)?;
        let written = table.render(DB::SQL);
        self.undo.push(SqlUndoLog {
            sql_type,
            table_name: written.clone(),
            before_image: Some(image::image(&written, before)),
            after_image: Some(image::image(&written, after)),
        });
        Ok(())
    }

    async fn select_for_update(
        &mut self,
        select: &SelectForUpdate,
        query: &AtQuery,
        zone: TimeZone,
    ) -> Result<Vec<DB::Row>, AtError> {
        if select.tables.len() != 1 {
            return Err(AtError::NotYetSupported(
                "SELECT … FOR UPDATE over several tables",
            ));
        }
        let shared = self.source.inner.clone();
        // As written for metadata and the undo log; unquoted in lock keys, as Java's.
        let table = select.tables[0].name.render(DB::SQL);
        let lock_table = select.tables[0].name.unquoted();
        let meta = self.table_meta(&table).await?;
        let key: Vec<&str> = meta.primary_key.iter().map(String::as_str).collect();
        let key_columns = columns_of(&meta, &key)?;
        let lock_query = select.lock_query(DB::SQL, 0, &key);
        let xid = self.xid.clone().unwrap_or_default();
        let mut retry = LockRetry::new(shared.settings.lock_retry);
        loop {
            let conn = self.connection()?;
            DB::execute(
                conn,
                &format!("SAVEPOINT {LOCK_WAIT_SAVEPOINT}"),
                DB::Arguments::default(),
            )
            .await?;
            let args = crate::database::arguments::<DB>(query.params(), zone)?;
            let rows = DB::fetch_all(conn, query.sql(), args).await?;
            let args =
                crate::database::arguments::<DB>(&Self::mapped(query, &lock_query.params), zone)?;
            let keyed =
                image::read_rows::<DB>(conn, &lock_query.sql, args, &meta, &key_columns, zone)
                    .await?;
            let mut locks = LockKeys::new();
            image::lock_rows(&mut locks, &lock_table, &meta, &keyed)?;
            let lockable = locks.is_empty()
                || shared
                    .client
                    .lock_query(
                        LockQuery::new(xid.clone(), BranchType::At, shared.resource_id.clone())
                            .lock_key(locks.to_string()),
                    )
                    .await?;
            if lockable {
                DB::execute(
                    conn,
                    &format!("RELEASE SAVEPOINT {LOCK_WAIT_SAVEPOINT}"),
                    DB::Arguments::default(),
                )
                .await?;
                return Ok(rows);
            }
            DB::execute(
                conn,
                &format!("ROLLBACK TO SAVEPOINT {LOCK_WAIT_SAVEPOINT}"),
                DB::Arguments::default(),
            )
            .await?;
            retry.wait_after(Conflict::Held, true).await?;
        }
    }
}
