//! The TCC fence: Seata's `tcc_fence_log` table in the business database, updated in the same
//! local transaction as each phase's business work, giving idempotent confirm/cancel, empty
//! rollback and suspension protection (semantics §5.4).

use std::time::Duration;

use crate::error::FenceError;
#[cfg(any(feature = "mysql", feature = "postgres"))]
use crate::error::{BoxError, FenceOperation, FenceStatus};
#[cfg(any(feature = "mysql", feature = "postgres"))]
use crate::participant::{BranchKey, PhaseWork};

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

/// Seata's MySQL DDL (`script/client/tcc/db/mysql.sql`), verbatim.
pub const DDL_MYSQL: &str = "CREATE TABLE IF NOT EXISTS `tcc_fence_log`
(
    `xid`           VARCHAR(128)  NOT NULL COMMENT 'global id',
    `branch_id`     BIGINT        NOT NULL COMMENT 'branch id',
    `action_name`   VARCHAR(64)   NOT NULL COMMENT 'action name',
    `status`        TINYINT       NOT NULL COMMENT 'status(tried:1;committed:2;rollbacked:3;suspended:4)',
    `gmt_create`    DATETIME(3)   NOT NULL COMMENT 'create time',
    `gmt_modified`  DATETIME(3)   NOT NULL COMMENT 'update time',
    PRIMARY KEY (`xid`, `branch_id`),
    KEY `idx_gmt_modified` (`gmt_modified`),
    KEY `idx_status` (`status`)
) ENGINE = InnoDB
DEFAULT CHARSET = utf8mb4;";

/// Seata's PostgreSQL DDL (`script/client/tcc/db/postgresql.sql`), verbatim.
pub const DDL_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS public.tcc_fence_log
(
    xid              VARCHAR(128)  NOT NULL,
    branch_id        BIGINT        NOT NULL,
    action_name      VARCHAR(64)   NOT NULL,
    status           SMALLINT      NOT NULL,
    gmt_create       TIMESTAMP(3)  NOT NULL,
    gmt_modified     TIMESTAMP(3)  NOT NULL,
    CONSTRAINT pk_tcc_fence_log PRIMARY KEY (xid, branch_id)
);
CREATE INDEX idx_gmt_modified ON public.tcc_fence_log (gmt_modified);
CREATE INDEX idx_status ON public.tcc_fence_log (status);";

/// Java's default `tcc.fence.logTableName`.
pub const DEFAULT_TABLE: &str = "tcc_fence_log";

/// Java's default `tcc.fence.cleanPeriod` (one day).
pub const DEFAULT_CLEAN_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// Rows the cleanup deletes per statement (Java's `LIMIT_DELETE`), so one run never holds
/// locks on a large part of the table.
pub const CLEAN_BATCH: u64 = 1000;

/// The MySQL DDL for a fence table named `table` (Seata's text when it is the default).
pub fn ddl_mysql(table: &str) -> Result<String, FenceError> {
    check_table_name(table)?;
    Ok(ddl_mysql_unchecked(table))
}

/// [`ddl_mysql`] for a name that passed `check_table_name`.
pub(crate) fn ddl_mysql_unchecked(table: &str) -> String {
    if table == DEFAULT_TABLE {
        return DDL_MYSQL.to_owned();
    }
    let quoted = table
        .split('.')
        .map(|part| format!("`{part}`"))
        .collect::<Vec<_>>()
        .join(".");
    DDL_MYSQL.replacen("`tcc_fence_log`", &quoted, 1)
}

/// The PostgreSQL DDL for a fence table named `table` (Seata's text when it is the default).
/// Index names are schema-wide in PostgreSQL, so another table's indexes get its name prefixed.
pub fn ddl_postgres(table: &str) -> Result<String, FenceError> {
    check_table_name(table)?;
    Ok(ddl_postgres_unchecked(table))
}

/// [`ddl_postgres`] for a name that passed `check_table_name`.
pub(crate) fn ddl_postgres_unchecked(table: &str) -> String {
    if table == DEFAULT_TABLE {
        return DDL_POSTGRES.to_owned();
    }
    let base = table.rsplit('.').next().unwrap_or(table);
    DDL_POSTGRES
        .replace("public.tcc_fence_log", table)
        .replace("pk_tcc_fence_log", &format!("pk_{base}"))
        .replace("idx_gmt_modified", &format!("idx_{base}_gmt_modified"))
        .replace("idx_status", &format!("idx_{base}_status"))
}

/// Table names are spliced into SQL text, so only plain identifiers are accepted.
pub(crate) fn check_table_name(table: &str) -> Result<(), FenceError> {
    let parts: Vec<&str> = table.split('.').collect();
    let plain = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 63
    };
    if parts.len() <= 2 && parts.iter().all(|p| plain(p)) {
        Ok(())
    } else {
        Err(FenceError::BadTableName(table.to_owned()))
    }
}

/// The per-database part of the fence: SQL text and error codes. Sealed: implemented for
/// `sqlx::MySql` (also MariaDB) and `sqlx::Postgres` only.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) mod sealed {
    /// The statements of one dialect, with the table name filled in. Parameters, in order:
    /// `insert` (xid, branch_id, action_name, status); `select_*` (xid, branch_id);
    /// `update_status` (new status, xid, branch_id, old status); `delete_older` (age in µs).
    #[derive(Debug, Clone)]
    pub struct FenceSql {
        pub insert: String,
        pub select_for_update: String,
        pub select_status: String,
        pub update_status: String,
        pub delete_older: String,
        /// Seata's DDL for the table.
        pub create_table: String,
        /// Run first, in the creating transaction, to serialise concurrent creators (needed
        /// where the DDL is not idempotent).
        pub create_lock: Option<String>,
        /// Returns one nullable text column, NULL when the table does not exist yet; `None`
        /// when the DDL is idempotent by itself.
        pub table_exists: Option<String>,
    }

    pub trait Dialect: sqlx::Database {
        /// `table` has passed `check_table_name`.
        fn fence_sql(table: &str) -> FenceSql;

        /// A duplicate primary key (the branch's row exists already).
        fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool;

        /// The database rolled the whole transaction back to break a deadlock or a
        /// serialization conflict, so running it again from its start can succeed.
        fn is_deadlock(error: &dyn sqlx::error::DatabaseError) -> bool;

        /// Rows a statement changed (sqlx has no trait method for it).
        fn rows_affected(result: &Self::QueryResult) -> u64;
    }
}

/// The databases the fence runs on: `sqlx::MySql` (feature `mysql`, also MariaDB) and
/// `sqlx::Postgres` (feature `postgres`).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub trait FenceDatabase: sealed::Dialect {}

/// The fence over one database pool. Each `fenced_*` call opens one local transaction, does the
/// fence step, hands the open transaction to the business work, and commits both or neither.
///
/// Timestamps come from the database clock (`gmt_create`, `gmt_modified` and the cleanup
/// cut-off), so application hosts with skewed clocks cannot delete each other's fresh rows.
/// Build it with [`TccFence::builder`], which creates the table and starts the cleanup.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub struct TccFence<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    table: String,
    sql: std::sync::Arc<sealed::FenceSql>,
    /// The cleanup task started by the builder; stopped when the last clone is dropped.
    cleanup: Option<std::sync::Arc<tokio_util::task::AbortOnDropHandle<()>>>,
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: sqlx::Database> Clone for TccFence<DB> {
    fn clone(&self) -> Self {
        TccFence {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: self.sql.clone(),
            cleanup: self.cleanup.clone(),
        }
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: sqlx::Database> std::fmt::Debug for TccFence<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TccFence")
            .field("database", &DB::NAME)
            .field("table", &self.table)
            .field("cleanup", &self.cleanup.is_some())
            .finish()
    }
}

/// Sets a fence up in one call: creates its table (Seata's DDL, if missing) and starts the
/// periodic cleanup. From [`TccFence::builder`].
#[cfg(any(feature = "mysql", feature = "postgres"))]
#[derive(Debug)]
#[must_use = "a fence builder does nothing until `start` is awaited"]
pub struct TccFenceBuilder<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    table: String,
    clean_period: Duration,
    table_setup: TableSetup,
}

/// Whether `TccFenceBuilder::start` creates the fence table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableSetup {
    /// Create the table with Seata's DDL when it does not exist (the default).
    #[default]
    CreateIfMissing,
    /// The table is managed elsewhere (migrations, a DBA); leave the schema alone.
    Existing,
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: sqlx::Database> TccFenceBuilder<DB> {
    /// The fence table (Java's `tcc.fence.logTableName`; default `tcc_fence_log`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How often the cleanup runs and how old a final row must be to go (Java's
    /// `tcc.fence.cleanPeriod`; default one day). Zero starts no cleanup.
    pub fn clean_period(mut self, period: Duration) -> Self {
        self.clean_period = period;
        self
    }

    /// Whether to create the table (default [`TableSetup::CreateIfMissing`]).
    pub fn table_setup(mut self, setup: TableSetup) -> Self {
        self.table_setup = setup;
        self
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB> TccFenceBuilder<DB>
where
    DB: FenceDatabase,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i16: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Creates the table (unless [`TableSetup::Existing`]) and starts the cleanup (unless the
    /// period is zero); the cleanup stops when the last clone of the fence is dropped.
    /// Needs a Tokio runtime.
    pub async fn start(self) -> Result<TccFence<DB>, FenceError> {
        let mut fence = TccFence::with_table(self.pool, &self.table)?;
        if self.table_setup == TableSetup::CreateIfMissing {
            fence.create_table().await?;
        }
        fence.cleanup = fence
            .spawn_cleanup(self.clean_period)
            .map(|task| std::sync::Arc::new(tokio_util::task::AbortOnDropHandle::new(task)));
        Ok(fence)
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: FenceDatabase> TccFence<DB> {
    /// Sets up a fence on `pool`: `TccFence::builder(pool).start().await?` creates the default
    /// table if missing and cleans it once a day.
    pub fn builder(pool: sqlx::Pool<DB>) -> TccFenceBuilder<DB> {
        TccFenceBuilder {
            pool,
            table: DEFAULT_TABLE.to_owned(),
            clean_period: DEFAULT_CLEAN_PERIOD,
            table_setup: TableSetup::default(),
        }
    }

    /// A fence on `pool` using the default table `tcc_fence_log`, with no table creation and
    /// no cleanup (see [`TccFence::builder`] for both).
    pub fn new(pool: sqlx::Pool<DB>) -> Self {
        TccFence {
            pool,
            table: DEFAULT_TABLE.to_owned(),
            sql: std::sync::Arc::new(DB::fence_sql(DEFAULT_TABLE)),
            cleanup: None,
        }
    }

    /// A fence using table `table` (Java's `tcc.fence.logTableName`), with no table creation
    /// and no cleanup.
    pub fn with_table(pool: sqlx::Pool<DB>, table: &str) -> Result<Self, FenceError> {
        check_table_name(table)?;
        Ok(TccFence {
            pool,
            table: table.to_owned(),
            sql: std::sync::Arc::new(DB::fence_sql(table)),
            cleanup: None,
        })
    }

    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn db_error(&self, operation: FenceOperation, source: sqlx::Error) -> FenceError {
        FenceError::Database {
            operation,
            table: self.table.clone(),
            source: Box::new(source),
        }
    }
}

/// A random delay of 0-59 s before the first cleanup (Java's), so that many application
/// instances started together do not all clean at once.
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn first_clean_delay() -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    Duration::from_secs(random % 60)
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
fn is_duplicate_key<DB: FenceDatabase>(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(DB::is_duplicate_key)
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
fn is_deadlock<DB: FenceDatabase>(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(DB::is_deadlock)
}

/// How many times the fence runs one local transaction when the database rolls it back to break
/// a deadlock (or when an empty rollback loses the race for the branch's row), before it gives
/// up and returns the error (which phase 2 answers as retryable).
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// Why a failed local transaction is worth running again from its start, if it is.
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn rerun_reason<DB: FenceDatabase>(error: &FenceError) -> Option<&'static str> {
    let FenceError::Database {
        operation, source, ..
    } = error
    else {
        return None;
    };
    if is_deadlock::<DB>(source) {
        Some("deadlock or serialization failure")
    } else if *operation == FenceOperation::InsertSuspended && is_duplicate_key::<DB>(source) {
        // Without a gap lock (PostgreSQL, or MySQL under READ COMMITTED) the lookup of an empty
        // rollback cannot see a try that inserted the row but had not committed; once it has,
        // a new transaction finds the row and cancels the try (or sees it already rolled back).
        Some("a concurrent transaction inserted the branch's row first")
    } else {
        None
    }
}

/// Runs `attempt` (one whole local transaction, from its BEGIN up to the point where the
/// business work would receive it) until it succeeds or fails for a reason a new transaction
/// cannot overcome, at most [`CONFLICT_ATTEMPTS`] times. Every attempt rolls its own transaction
/// back when it fails, so nothing of a failed attempt survives; the statement that failed is
/// never retried on its own.
#[cfg(any(feature = "mysql", feature = "postgres"))]
async fn rerun_on_conflict<DB: FenceDatabase, T, Fut>(
    branch: Branch<'_>,
    phase: &'static str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, FenceError>
where
    Fut: std::future::Future<Output = Result<T, FenceError>>,
{
    let Branch { xid, branch_id } = branch;
    let mut number = 1;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(reason) = rerun_reason::<DB>(&error) else {
            return Err(error);
        };
        if number >= CONFLICT_ATTEMPTS {
            tracing::warn!(
                xid,
                branch_id,
                phase,
                attempt = number,
                reason,
                "the fence's local transaction failed on its last attempt; giving up"
            );
            return Err(error);
        }
        tracing::warn!(
            xid,
            branch_id,
            phase,
            attempt = number,
            max_attempts = CONFLICT_ATTEMPTS,
            reason,
            %error,
            "the fence's local transaction was rolled back; running it again"
        );
        tokio::time::sleep(conflict_backoff(number)).await;
        number += 1;
    }
}

/// A random pause of up to 5 ms per failed attempt, so that transactions that collided do not
/// collide again in lockstep.
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn conflict_backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_micros(random % (5_000 * u64::from(attempt)))
}

/// Which branch a fence step is for.
#[cfg(any(feature = "mysql", feature = "postgres"))]
#[derive(Debug, Clone, Copy)]
struct Branch<'a> {
    xid: &'a str,
    branch_id: i64,
}

/// How the fence step of a phase-2 transaction ended.
#[cfg(any(feature = "mysql", feature = "postgres"))]
enum PhaseTwoStart<Tx> {
    /// The row went from tried to the phase's status in `Tx`; the business work runs next.
    Run(Tx),
    /// The transaction is over and the business work is not called; the phase's answer.
    Done(bool),
}

/// The local transaction a fenced phase runs in (the business work's `Local`).
#[cfg(any(feature = "mysql", feature = "postgres"))]
type Tx<DB> = sqlx::Transaction<'static, DB>;

#[cfg(any(feature = "mysql", feature = "postgres"))]
async fn rollback_quietly<DB: sqlx::Database>(tx: Tx<DB>) {
    // Dropping the transaction would roll back too; an explicit rollback frees the
    // connection's locks now, and its failure only means the connection is gone.
    if let Err(error) = tx.rollback().await {
        tracing::debug!(%error, "local rollback failed; the connection is discarded");
    }
}

/// The fence operations, written once for every [`FenceDatabase`]; the bounds are what sqlx
/// needs to run the statements (executors, and encoding/decoding of the column types).
#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB> TccFence<DB>
where
    DB: FenceDatabase,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i16: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Creates the fence table with Seata's DDL if it does not exist; safe to run from many
    /// processes at once. [`TccFence::builder`] calls it.
    pub async fn create_table(&self) -> Result<(), FenceError> {
        use FenceOperation as Op;
        let mut tx = self.begin().await?;
        if let Some(lock) = &self.sql.create_lock {
            sqlx::query(lock)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(Op::LockForCreateTable, e))?;
        }
        let missing = match &self.sql.table_exists {
            Some(lookup) => {
                let found: Option<String> = sqlx::query_scalar(lookup)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.db_error(Op::LookUpTable, e))?;
                found.is_none()
            }
            None => true,
        };
        if missing {
            sqlx::raw_sql(&self.sql.create_table)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(Op::CreateTable, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.db_error(Op::CommitCreateTable, e))
    }

    async fn begin(&self) -> Result<Tx<DB>, FenceError> {
        self.pool
            .begin()
            .await
            .map_err(|e| self.db_error(FenceOperation::Begin, e))
    }

    async fn insert(
        &self,
        tx: &mut Tx<DB>,
        branch: Branch<'_>,
        action_name: &str,
        status: FenceStatus,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&self.sql.insert)
            .bind(branch.xid)
            .bind(branch.branch_id)
            .bind(action_name)
            .bind(status.code())
            .execute(&mut **tx)
            .await
            .map(drop)
    }

    fn known_status(branch: Branch<'_>, code: i16) -> Result<FenceStatus, FenceError> {
        FenceStatus::from_code(i64::from(code)).ok_or_else(|| FenceError::UnknownStatus {
            xid: branch.xid.to_owned(),
            branch_id: branch.branch_id,
            status: i64::from(code),
        })
    }

    /// Locks the branch's row (if any) until the transaction ends and returns its status.
    async fn lock_status(
        &self,
        tx: &mut Tx<DB>,
        branch: Branch<'_>,
    ) -> Result<Option<FenceStatus>, FenceError> {
        let status: Option<i16> = sqlx::query_scalar(&self.sql.select_for_update)
            .bind(branch.xid)
            .bind(branch.branch_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| self.db_error(FenceOperation::SelectForUpdate, e))?;
        status
            .map(|code| Self::known_status(branch, code))
            .transpose()
    }

    /// Starts a phase-2 transaction with the branch's row (if any) locked; on failure the
    /// transaction is rolled back before the error is returned.
    async fn begin_locked(
        &self,
        branch: Branch<'_>,
    ) -> Result<(Tx<DB>, Option<FenceStatus>), FenceError> {
        let mut tx = self.begin().await?;
        match self.lock_status(&mut tx, branch).await {
            Ok(status) => Ok((tx, status)),
            Err(error) => {
                rollback_quietly(tx).await;
                Err(error)
            }
        }
    }

    /// `UPDATE ... SET status = to WHERE ... AND status = 1`; true when the row changed.
    async fn mark(
        &self,
        tx: &mut Tx<DB>,
        branch: Branch<'_>,
        to: FenceStatus,
    ) -> Result<bool, FenceError> {
        let done = sqlx::query(&self.sql.update_status)
            .bind(to.code())
            .bind(branch.xid)
            .bind(branch.branch_id)
            .bind(FenceStatus::Tried.code())
            .execute(&mut **tx)
            .await
            .map_err(|e| self.db_error(FenceOperation::UpdateStatus, e))?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// The branch's fence status, read without locking (for operators and tests).
    pub async fn status(
        &self,
        xid: &str,
        branch_id: i64,
    ) -> Result<Option<FenceStatus>, FenceError> {
        let branch = Branch { xid, branch_id };
        let status: Option<i16> = sqlx::query_scalar(&self.sql.select_status)
            .bind(xid)
            .bind(branch_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db_error(FenceOperation::SelectStatus, e))?;
        status
            .map(|code| Self::known_status(branch, code))
            .transpose()
    }

    /// Phase 1: inserts status 1 (tried) and runs `work` in the same transaction.
    /// A duplicate key means a rollback got there first (suspension): the try is refused
    /// and its transaction rolled back. The status-4 row stays (unlike Java, which
    /// deletes it at once) so that a retried late try is refused too; the cleanup
    /// removes it after the clean period. A deadlock before `work` runs the
    /// transaction again (see [`CONFLICT_ATTEMPTS`]).
    pub async fn fenced_try<T, F, Fut>(
        &self,
        xid: &str,
        branch_id: i64,
        action_name: &str,
        work: F,
    ) -> Result<T, FenceError>
    where
        F: FnOnce(Tx<DB>) -> Fut,
        Fut: std::future::Future<Output = (Tx<DB>, Result<T, BoxError>)>,
    {
        let branch = Branch { xid, branch_id };
        let tx =
            rerun_on_conflict::<DB, _, _>(branch, "try", || self.start_try(branch, action_name))
                .await?;
        let (tx, result) = work(tx).await;
        match result {
            Ok(value) => {
                tx.commit()
                    .await
                    .map_err(|e| self.db_error(FenceOperation::CommitTry, e))?;
                Ok(value)
            }
            Err(error) => {
                rollback_quietly(tx).await;
                Err(FenceError::Business(error))
            }
        }
    }

    /// Begins the try's transaction and inserts the tried row.
    async fn start_try(&self, branch: Branch<'_>, action_name: &str) -> Result<Tx<DB>, FenceError> {
        let mut tx = self.begin().await?;
        let inserted = self
            .insert(&mut tx, branch, action_name, FenceStatus::Tried)
            .await;
        match inserted {
            Ok(()) => Ok(tx),
            Err(error) => {
                rollback_quietly(tx).await;
                let Branch { xid, branch_id } = branch;
                if is_duplicate_key::<DB>(&error) {
                    tracing::error!(
                        xid,
                        branch_id,
                        "branch already rolled back before its try: try refused (suspension)"
                    );
                    return Err(FenceError::Suspended {
                        xid: xid.to_owned(),
                        branch_id,
                    });
                }
                Err(self.db_error(FenceOperation::InsertTried, error))
            }
        }
    }

    /// Phase 2 commit: status 1 → 2 and `work` in one transaction. Already committed →
    /// `Ok(true)` without calling `work`; rolled back or suspended → `Ok(false)`; no row
    /// → `NoRecord`. `work` returning `Ok(false)` or `Err` rolls everything back.
    /// A deadlock before `work` runs the transaction again.
    pub async fn fenced_commit<F, Fut>(
        &self,
        xid: &str,
        branch_id: i64,
        work: F,
    ) -> Result<bool, FenceError>
    where
        F: FnOnce(Tx<DB>) -> Fut,
        Fut: std::future::Future<Output = (Tx<DB>, Result<bool, BoxError>)>,
    {
        let branch = Branch { xid, branch_id };
        let start =
            rerun_on_conflict::<DB, _, _>(branch, "confirm", || self.start_commit(branch)).await?;
        match start {
            PhaseTwoStart::Done(answer) => Ok(answer),
            PhaseTwoStart::Run(tx) => self.run_phase_two(tx, branch, "confirm", work).await,
        }
    }

    /// The fence step of a commit: locks the row and moves it from tried to committed.
    async fn start_commit(&self, branch: Branch<'_>) -> Result<PhaseTwoStart<Tx<DB>>, FenceError> {
        let Branch { xid, branch_id } = branch;
        let (tx, status) = self.begin_locked(branch).await?;
        match status {
            None => {
                rollback_quietly(tx).await;
                Err(FenceError::NoRecord {
                    xid: xid.to_owned(),
                    branch_id,
                })
            }
            Some(FenceStatus::Committed) => {
                rollback_quietly(tx).await;
                tracing::info!(
                    xid,
                    branch_id,
                    "branch already committed: confirm skipped (idempotent)"
                );
                Ok(PhaseTwoStart::Done(true))
            }
            Some(status @ (FenceStatus::Rollbacked | FenceStatus::Suspended)) => {
                rollback_quietly(tx).await;
                tracing::warn!(
                    xid,
                    branch_id,
                    ?status,
                    "commit of a branch that was rolled back: refused"
                );
                Ok(PhaseTwoStart::Done(false))
            }
            Some(FenceStatus::Tried) => self.mark_tried(tx, branch, FenceStatus::Committed).await,
        }
    }

    /// Phase 2 rollback: status 1 → 3 and `work` in one transaction. No row → inserts
    /// status 4 and returns `Ok(true)` without calling `work` (empty rollback, which also
    /// blocks a late try); already rolled back or suspended → `Ok(true)`; committed →
    /// `Ok(false)`. `work` returning `Ok(false)` or `Err` rolls everything back.
    /// A deadlock before `work` (the empty rollback's gap lock makes them expected under
    /// REPEATABLE READ), or a try inserting the row while an empty rollback looked for
    /// it, runs the transaction again.
    pub async fn fenced_rollback<F, Fut>(
        &self,
        xid: &str,
        branch_id: i64,
        action_name: &str,
        work: F,
    ) -> Result<bool, FenceError>
    where
        F: FnOnce(Tx<DB>) -> Fut,
        Fut: std::future::Future<Output = (Tx<DB>, Result<bool, BoxError>)>,
    {
        let branch = Branch { xid, branch_id };
        let start = rerun_on_conflict::<DB, _, _>(branch, "cancel", || {
            self.start_rollback(branch, action_name)
        })
        .await?;
        match start {
            PhaseTwoStart::Done(answer) => Ok(answer),
            PhaseTwoStart::Run(tx) => self.run_phase_two(tx, branch, "cancel", work).await,
        }
    }

    /// The fence step of a rollback: locks the row and moves it from tried to rolled
    /// back, or, when there is no row, records the empty rollback and commits.
    async fn start_rollback(
        &self,
        branch: Branch<'_>,
        action_name: &str,
    ) -> Result<PhaseTwoStart<Tx<DB>>, FenceError> {
        let Branch { xid, branch_id } = branch;
        let (mut tx, status) = self.begin_locked(branch).await?;
        match status {
            None => {
                if let Err(error) = self
                    .insert(&mut tx, branch, action_name, FenceStatus::Suspended)
                    .await
                {
                    rollback_quietly(tx).await;
                    return Err(self.db_error(FenceOperation::InsertSuspended, error));
                }
                tx.commit()
                    .await
                    .map_err(|e| self.db_error(FenceOperation::CommitEmptyRollback, e))?;
                tracing::info!(
                    xid,
                    branch_id,
                    "rollback before any try: recorded as suspended (empty rollback)"
                );
                Ok(PhaseTwoStart::Done(true))
            }
            Some(FenceStatus::Rollbacked | FenceStatus::Suspended) => {
                rollback_quietly(tx).await;
                tracing::info!(
                    xid,
                    branch_id,
                    "branch already rolled back: cancel skipped (idempotent)"
                );
                Ok(PhaseTwoStart::Done(true))
            }
            Some(FenceStatus::Committed) => {
                rollback_quietly(tx).await;
                tracing::warn!(
                    xid,
                    branch_id,
                    "rollback of a branch that was committed: refused"
                );
                Ok(PhaseTwoStart::Done(false))
            }
            Some(FenceStatus::Tried) => self.mark_tried(tx, branch, FenceStatus::Rollbacked).await,
        }
    }

    /// Moves the locked tried row to `to`; on failure the transaction is rolled back.
    async fn mark_tried(
        &self,
        mut tx: Tx<DB>,
        branch: Branch<'_>,
        to: FenceStatus,
    ) -> Result<PhaseTwoStart<Tx<DB>>, FenceError> {
        match self.mark(&mut tx, branch, to).await {
            Ok(true) => Ok(PhaseTwoStart::Run(tx)),
            // Cannot happen under the row lock; answer "not done" rather than guess.
            Ok(false) => {
                rollback_quietly(tx).await;
                Ok(PhaseTwoStart::Done(false))
            }
            Err(error) => {
                rollback_quietly(tx).await;
                Err(error)
            }
        }
    }

    /// Runs the phase-2 business work in the transaction the fence step left open and
    /// commits both only on `Ok(true)`. `work` runs once per call: a deadlock inside it
    /// is returned (phase 2 answers retryable and the TC calls again).
    async fn run_phase_two<F, Fut>(
        &self,
        tx: Tx<DB>,
        branch: Branch<'_>,
        phase: &'static str,
        work: F,
    ) -> Result<bool, FenceError>
    where
        F: FnOnce(Tx<DB>) -> Fut,
        Fut: std::future::Future<Output = (Tx<DB>, Result<bool, BoxError>)>,
    {
        let (tx, result) = work(tx).await;
        if let Err(error) = &result
            && error
                .downcast_ref::<sqlx::Error>()
                .is_some_and(is_deadlock::<DB>)
        {
            let Branch { xid, branch_id } = branch;
            tracing::warn!(
                xid,
                branch_id,
                phase,
                "deadlock in the business work; the TC retries"
            );
        }
        self.finish_phase_two(tx, result).await
    }

    /// Commits on `Ok(true)`; otherwise rolls back (as Java: a false result makes the local
    /// transaction rollback-only).
    async fn finish_phase_two(
        &self,
        tx: Tx<DB>,
        result: Result<bool, BoxError>,
    ) -> Result<bool, FenceError> {
        match result {
            Ok(true) => {
                tx.commit()
                    .await
                    .map_err(|e| self.db_error(FenceOperation::CommitPhaseTwo, e))?;
                Ok(true)
            }
            Ok(false) => {
                rollback_quietly(tx).await;
                Ok(false)
            }
            Err(error) => {
                rollback_quietly(tx).await;
                Err(FenceError::Business(error))
            }
        }
    }

    /// Runs `work` in a plain local transaction, for phase 2 of a branch registered
    /// without the fence (`useTCCFence` false): commits only on `Ok(true)`.
    pub async fn unfenced<F, Fut>(&self, work: F) -> Result<bool, FenceError>
    where
        F: FnOnce(Tx<DB>) -> Fut,
        Fut: std::future::Future<Output = (Tx<DB>, Result<bool, BoxError>)>,
    {
        let tx = self.begin().await?;
        let (tx, result) = work(tx).await;
        self.finish_phase_two(tx, result).await
    }

    /// Deletes rows in a final status (2, 3, 4) last modified more than `age` ago, in
    /// batches of [`CLEAN_BATCH`]; status-1 rows are never removed. Returns how many rows went.
    pub async fn delete_older_than(&self, age: Duration) -> Result<u64, FenceError> {
        let micros = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        let mut total = 0;
        loop {
            let done = sqlx::query(&self.sql.delete_older)
                .bind(micros)
                .execute(&self.pool)
                .await
                .map_err(|e| self.db_error(FenceOperation::DeleteOldRows, e))?;
            let deleted = DB::rows_affected(&done);
            total += deleted;
            if deleted < CLEAN_BATCH {
                return Ok(total);
            }
        }
    }

    /// Starts the periodic cleanup (Java's `tcc.fence.cleanPeriod`): after a random
    /// 0-59 s, and then every `period`, deletes final rows older than `period`.
    /// A zero period starts nothing. Abort the returned task to stop it
    /// ([`TccFence::builder`] starts one that stops with the fence).
    #[must_use = "dropping the handle does not stop the cleanup; keep it to abort it"]
    pub fn spawn_cleanup(&self, period: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if period.is_zero() {
            tracing::info!("TCC fence cleanup disabled (clean period is zero)");
            return None;
        }
        // The task holds no clone of the fence's cleanup handle, so dropping the last fence
        // stops it.
        let fence = TccFence {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: self.sql.clone(),
            cleanup: None,
        };
        Some(tokio::spawn(async move {
            tokio::time::sleep(first_clean_delay()).await;
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match fence.delete_older_than(period).await {
                    Ok(deleted) => {
                        tracing::info!(deleted, table = %fence.table, "TCC fence cleanup done")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "TCC fence cleanup failed; next try in one period")
                    }
                }
            }
        }))
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB> crate::participant::PhaseGuard<Tx<DB>> for TccFence<DB>
where
    DB: FenceDatabase,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i16: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    fn is_fence(&self) -> bool {
        true
    }

    async fn guard_prepare<'a, T>(
        &self,
        branch: BranchKey<'_>,
        work: PhaseWork<'a, Tx<DB>, T>,
    ) -> Result<T, FenceError>
    where
        T: Send,
    {
        self.fenced_try(branch.xid, branch.branch_id, branch.action_name, work)
            .await
    }

    async fn guard_commit<'a>(
        &self,
        branch: BranchKey<'_>,
        fenced: bool,
        work: PhaseWork<'a, Tx<DB>, bool>,
    ) -> Result<bool, FenceError> {
        if fenced {
            self.fenced_commit(branch.xid, branch.branch_id, work).await
        } else {
            self.unfenced(work).await
        }
    }

    async fn guard_rollback<'a>(
        &self,
        branch: BranchKey<'_>,
        fenced: bool,
        work: PhaseWork<'a, Tx<DB>, bool>,
    ) -> Result<bool, FenceError> {
        if fenced {
            self.fenced_rollback(branch.xid, branch.branch_id, branch.action_name, work)
                .await
        } else {
            self.unfenced(work).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(check_table_name("tcc_fence_log").is_ok());
        assert!(check_table_name("app.tcc_fence_log").is_ok());
        assert!(check_table_name("t; DROP TABLE x").is_err());
        assert!(check_table_name("a.b.c").is_err());
        assert!(check_table_name("").is_err());
    }

    #[test]
    fn ddl_for_other_tables() {
        assert_eq!(ddl_mysql(DEFAULT_TABLE).ok().as_deref(), Some(DDL_MYSQL));
        assert_eq!(
            ddl_postgres(DEFAULT_TABLE).ok().as_deref(),
            Some(DDL_POSTGRES)
        );
        let m = ddl_mysql("app.fence").unwrap();
        assert!(m.starts_with("CREATE TABLE IF NOT EXISTS `app`.`fence`"));
        let p = ddl_postgres("fence").unwrap();
        assert!(p.contains("CREATE INDEX idx_fence_status ON fence (status);"));
        assert!(!p.contains("public."));
    }
}
