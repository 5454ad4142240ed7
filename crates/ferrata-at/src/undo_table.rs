//! The `undo_log` table: one row per AT branch, written in the branch's local transaction,
//! read and locked by its rollback, deleted after commit; a marker row (status 1) stops a
//! late phase-1 commit after its global transaction was rolled back.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::database::sealed::UndoSql;
use crate::database::{
    AtDatabase, BadTableName, TimeZone, ValueError, arguments, check_undo_table_name,
};
use crate::undo::Value;

/// Branches per batched DELETE (Java's IN-list limit).
pub const DELETE_BATCH_BRANCHES: usize = 1000;

/// `undo_log.log_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStatus {
    /// A branch's undo log, written by its phase 1.
    Normal,
    /// Written by a rollback that found no undo log: the global transaction is finished and a
    /// phase 1 still running must not commit.
    GlobalFinished,
    /// A status this version does not know (never treated as undoable).
    Other(i32),
}

impl LogStatus {
    pub fn code(self) -> i32 {
        match self {
            LogStatus::Normal => 0,
            LogStatus::GlobalFinished => 1,
            LogStatus::Other(code) => code,
        }
    }

    pub fn from_code(code: i32) -> LogStatus {
        match code {
            0 => LogStatus::Normal,
            1 => LogStatus::GlobalFinished,
            other => LogStatus::Other(other),
        }
    }
}

/// One undo row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoRow {
    pub context: String,
    pub rollback_info: Vec<u8>,
    pub status: LogStatus,
}

/// What inserting a row found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Inserted {
    Yes,
    /// A row for this (xid, branch) exists already: for a phase-1 insert, the global
    /// transaction was finished by a rollback (its marker row); for a marker, another
    /// rollback or the phase 1 got there first.
    AlreadyExists,
}

#[derive(Debug, thiserror::Error)]
pub enum UndoTableError {
    #[error(transparent)]
    BadTableName(#[from] BadTableName),
    #[error("{operation} on the undo table {table}: {source}")]
    Database {
        operation: &'static str,
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("binding a parameter for the undo table: {0}")]
    Value(#[from] ValueError),
}

/// The undo table of one database, by name (`client.undo.logTable`).
#[derive(Debug)]
pub struct UndoTable<DB: AtDatabase> {
    table: String,
    sql: Arc<UndoSql>,
    database: PhantomData<fn() -> DB>,
}

impl<DB: AtDatabase> Clone for UndoTable<DB> {
    fn clone(&self) -> Self {
        UndoTable {
            table: self.table.clone(),
            sql: self.sql.clone(),
            database: PhantomData,
        }
    }
}

impl<DB: AtDatabase> UndoTable<DB> {
    pub fn new(table: &str) -> Result<UndoTable<DB>, BadTableName> {
        check_undo_table_name(table)?;
        Ok(UndoTable {
            table: table.to_owned(),
            sql: Arc::new(DB::undo_sql(table)),
            database: PhantomData,
        })
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(sqlx::Error) -> UndoTableError + '_ {
        move |source| UndoTableError::Database {
            operation,
            table: self.table.clone(),
            source,
        }
    }

    async fn execute(
        &self,
        conn: &mut DB::Connection,
        sql: &str,
        values: &[Value],
        operation: &'static str,
    ) -> Result<u64, UndoTableError> {
        let args = arguments::<DB>(values, TimeZone::UTC)?;
        DB::execute(conn, sql, args)
            .await
            .map_err(self.error(operation))
    }

    /// Creates the table with Seata's DDL unless it exists.
    pub async fn create(&self, conn: &mut DB::Connection) -> Result<(), UndoTableError> {
        for statement in &self.sql.create_table {
            self.execute(conn, statement, &[], "creating").await?;
        }
        Ok(())
    }

    /// Inserts a branch's undo row (status Normal) or a marker (GlobalFinished).
    pub async fn insert(
        &self,
        conn: &mut DB::Connection,
        branch_id: i64,
        xid: &str,
        context: &str,
        rollback_info: &[u8],
        status: LogStatus,
    ) -> Result<Inserted, UndoTableError> {
        let values = [
            Value::Long(branch_id),
            Value::String(xid.to_owned()),
            Value::String(context.to_owned()),
            Value::Bytes(rollback_info.to_vec()),
            Value::Int(status.code()),
        ];
        let args = arguments::<DB>(&values, TimeZone::UTC)?;
        match DB::execute(conn, &self.sql.insert, args).await {
            Ok(_) => Ok(Inserted::Yes),
            Err(sqlx::Error::Database(error)) if DB::is_duplicate_key(error.as_ref()) => {
                Ok(Inserted::AlreadyExists)
            }
            Err(error) => Err(self.error("inserting into")(error)),
        }
    }

    /// Inserts the global-finished marker for a branch whose phase 1 never committed.
    pub async fn insert_marker(
        &self,
        conn: &mut DB::Connection,
        branch_id: i64,
        xid: &str,
    ) -> Result<Inserted, UndoTableError> {
        let marker = crate::undo::global_finished();
        self.insert(
            conn,
            branch_id,
            xid,
            &marker.context.to_string(),
            &marker.rollback_info,
            LogStatus::GlobalFinished,
        )
        .await
    }

    /// Reads a branch's undo row and locks it until the transaction ends.
    pub async fn lock(
        &self,
        conn: &mut DB::Connection,
        branch_id: i64,
        xid: &str,
    ) -> Result<Option<UndoRow>, UndoTableError> {
        let args = arguments::<DB>(
            &[Value::Long(branch_id), Value::String(xid.to_owned())],
            TimeZone::UTC,
        )?;
        let rows = DB::fetch_all(conn, &self.sql.select_for_update, args)
            .await
            .map_err(self.error("locking a row of"))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (context, rollback_info, status) =
            DB::decode_undo_row(row).map_err(self.error("reading a row of"))?;
        Ok(Some(UndoRow {
            context,
            rollback_info,
            status: LogStatus::from_code(status),
        }))
    }

    /// Deletes one branch's undo row; the number of rows deleted.
    pub async fn delete(
        &self,
        conn: &mut DB::Connection,
        branch_id: i64,
        xid: &str,
    ) -> Result<u64, UndoTableError> {
        let values = [Value::Long(branch_id), Value::String(xid.to_owned())];
        self.execute(conn, &self.sql.delete, &values, "deleting from")
            .await
    }

    /// Deletes the undo rows of many committed branches, [`DELETE_BATCH_BRANCHES`] per
    /// statement; the number of rows deleted.
    pub async fn delete_many(
        &self,
        conn: &mut DB::Connection,
        branches: &[(i64, String)],
    ) -> Result<u64, UndoTableError> {
        let mut deleted = 0;
        for chunk in branches.chunks(DELETE_BATCH_BRANCHES) {
            let sql = DB::delete_many_sql(&self.table, chunk.len());
            let values: Vec<Value> = chunk
                .iter()
                .map(|(branch_id, _)| Value::Long(*branch_id))
                .chain(chunk.iter().map(|(_, xid)| Value::String(xid.clone())))
                .collect();
            deleted += self.execute(conn, &sql, &values, "deleting from").await?;
        }
        Ok(deleted)
    }

    /// Deletes rows created at least `days` days ago (by the database clock), in batches,
    /// until a batch finds fewer rows than it may delete; the number of rows deleted.
    pub async fn delete_older_than(
        &self,
        conn: &mut DB::Connection,
        days: i32,
    ) -> Result<u64, UndoTableError> {
        let mut deleted = 0;
        loop {
            let batch = self
                .execute(
                    conn,
                    &self.sql.delete_older,
                    &[Value::Int(days)],
                    "cleaning up",
                )
                .await?;
            deleted += batch;
            if batch < u64::from(crate::database::CLEANUP_BATCH_ROWS) {
                return Ok(deleted);
            }
        }
    }
}
