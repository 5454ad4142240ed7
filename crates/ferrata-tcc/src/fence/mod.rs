//! The TCC fence: Seata's `tcc_fence_log` table in the business database, updated in the same
//! local transaction as each phase's business work, giving idempotent confirm/cancel, empty
//! rollback and suspension protection (semantics §5.4).

use std::time::Duration;

use crate::error::FenceError;

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
    if table == DEFAULT_TABLE {
        return Ok(DDL_MYSQL.to_owned());
    }
    let quoted = table
        .split('.')
        .map(|part| format!("`{part}`"))
        .collect::<Vec<_>>()
        .join(".");
    Ok(DDL_MYSQL.replacen("`tcc_fence_log`", &quoted, 1))
}

/// The PostgreSQL DDL for a fence table named `table` (Seata's text when it is the default).
/// Index names are schema-wide in PostgreSQL, so another table's indexes get its name prefixed.
pub fn ddl_postgres(table: &str) -> Result<String, FenceError> {
    check_table_name(table)?;
    if table == DEFAULT_TABLE {
        return Ok(DDL_POSTGRES.to_owned());
    }
    let base = table.rsplit('.').next().unwrap_or(table);
    Ok(DDL_POSTGRES
        .replace("public.tcc_fence_log", table)
        .replace("pk_tcc_fence_log", &format!("pk_{base}"))
        .replace("idx_gmt_modified", &format!("idx_{base}_gmt_modified"))
        .replace("idx_status", &format!("idx_{base}_status")))
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

/// Dialect plumbing, public only to the dialect modules (sealed: only MySQL and PostgreSQL).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) mod sealed {
    /// The statements of one dialect, with the table name filled in.
    #[derive(Debug, Clone)]
    pub struct FenceSql {
        pub insert: String,
        pub select_for_update: String,
        pub select_status: String,
        pub update_status: String,
        pub delete_older: String,
    }

    pub trait Dialect {
        /// `table` has passed `check_table_name`.
        fn fence_sql(table: &str) -> FenceSql;
    }
}

/// The databases the fence runs on: `sqlx::MySql` (feature `mysql`, also MariaDB) and
/// `sqlx::Postgres` (feature `postgres`).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub trait FenceDatabase: sqlx::Database + sealed::Dialect {}

/// The fence over one database pool. Each `fenced_*` call opens one local transaction, does the
/// fence step, hands the open transaction to the business work, and commits both or neither.
///
/// Timestamps come from the database clock (`gmt_create`, `gmt_modified` and the cleanup
/// cut-off), so application hosts with skewed clocks cannot delete each other's fresh rows.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub struct TccFence<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    table: String,
    sql: sealed::FenceSql,
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: sqlx::Database> Clone for TccFence<DB> {
    fn clone(&self) -> Self {
        TccFence {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: self.sql.clone(),
        }
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: sqlx::Database> std::fmt::Debug for TccFence<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TccFence")
            .field("database", &DB::NAME)
            .field("table", &self.table)
            .finish()
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
impl<DB: FenceDatabase> TccFence<DB> {
    /// A fence on `pool` using the default table `tcc_fence_log`.
    pub fn new(pool: sqlx::Pool<DB>) -> Self {
        TccFence {
            pool,
            table: DEFAULT_TABLE.to_owned(),
            sql: DB::fence_sql(DEFAULT_TABLE),
        }
    }

    /// A fence using table `table` (Java's `tcc.fence.logTableName`).
    pub fn with_table(pool: sqlx::Pool<DB>, table: &str) -> Result<Self, FenceError> {
        check_table_name(table)?;
        Ok(TccFence {
            pool,
            table: table.to_owned(),
            sql: DB::fence_sql(table),
        })
    }

    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    pub fn table(&self) -> &str {
        &self.table
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
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// True when the database rolled the transaction back to break a deadlock or a serialization
/// conflict, so that running it again from its start can succeed: MySQL/MariaDB error 1213
/// (SQLSTATE 40001; InnoDB rolls the whole transaction back), PostgreSQL 40P01 (deadlock) and
/// 40001 (serialization failure). A lock wait timeout (MySQL 1205) is not one: it ends only the
/// statement, and waiting again would most likely time out again.
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn is_deadlock(error: &sqlx::Error) -> bool {
    let Some(database) = error.as_database_error() else {
        return false;
    };
    #[cfg(feature = "mysql")]
    if let Some(mysql) = database.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return mysql.number() == MYSQL_DEADLOCK;
    }
    database
        .code()
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// MySQL/MariaDB `ER_LOCK_DEADLOCK`.
#[cfg(feature = "mysql")]
const MYSQL_DEADLOCK: u16 = 1213;

/// How many times the fence runs one local transaction when the database rolls it back to break
/// a deadlock (or when an empty rollback loses the race for the branch's row), before it gives
/// up and returns the error (which phase 2 answers as retryable).
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// The operation name of an empty rollback's insert, which may lose a race to a concurrent try.
#[cfg(any(feature = "mysql", feature = "postgres"))]
const INSERT_SUSPENDED: &str = "insert suspended row";

/// Why a failed local transaction is worth running again from its start, if it is.
#[cfg(any(feature = "mysql", feature = "postgres"))]
fn rerun_reason(error: &FenceError) -> Option<&'static str> {
    let FenceError::Database {
        operation, source, ..
    } = error
    else {
        return None;
    };
    if is_deadlock(source) {
        Some("deadlock or serialization failure")
    } else if *operation == INSERT_SUSPENDED && is_unique_violation(source) {
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
async fn rerun_on_conflict<T, Fut>(
    xid: &str,
    branch_id: i64,
    phase: &'static str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, FenceError>
where
    Fut: std::future::Future<Output = Result<T, FenceError>>,
{
    let mut number = 1;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(reason) = rerun_reason(&error) else {
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

/// How the fence step of a phase-2 transaction ended.
#[cfg(any(feature = "mysql", feature = "postgres"))]
enum PhaseTwoStart<Tx> {
    /// The row went from tried to the phase's status in `Tx`; the business work runs next.
    Run(Tx),
    /// The transaction is over and the business work is not called; the phase's answer.
    Done(bool),
}

/// Generates the fence operations for one database type; the dialect module supplies
/// `sealed::Dialect`, `create_table` and the Rust type of the `status` column.
#[cfg(any(feature = "mysql", feature = "postgres"))]
macro_rules! fence_impl {
    ($db:ty, $status:ty) => {
        impl crate::fence::TccFence<$db> {
            fn db_error(
                &self,
                operation: &'static str,
                source: sqlx::Error,
            ) -> crate::error::FenceError {
                crate::error::FenceError::Database {
                    operation,
                    table: self.table.clone(),
                    source: Box::new(source),
                }
            }

            async fn begin(
                &self,
            ) -> Result<sqlx::Transaction<'static, $db>, crate::error::FenceError> {
                self.pool
                    .begin()
                    .await
                    .map_err(|e| self.db_error("begin transaction", e))
            }

            async fn insert(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                xid: &str,
                branch_id: i64,
                action_name: &str,
                status: crate::error::FenceStatus,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(&self.sql.insert)
                    .bind(xid)
                    .bind(branch_id)
                    .bind(action_name)
                    .bind(status.code() as $status)
                    .execute(&mut **tx)
                    .await
                    .map(drop)
            }

            /// Locks the branch's row (if any) until the transaction ends and returns its status.
            async fn lock_status(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                xid: &str,
                branch_id: i64,
            ) -> Result<Option<crate::error::FenceStatus>, crate::error::FenceError> {
                let status: Option<$status> = sqlx::query_scalar(&self.sql.select_for_update)
                    .bind(xid)
                    .bind(branch_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(|e| self.db_error("select for update", e))?;
                status
                    .map(|code| {
                        crate::error::FenceStatus::from_code(i64::from(code)).ok_or_else(|| {
                            crate::error::FenceError::UnknownStatus {
                                xid: xid.to_owned(),
                                branch_id,
                                status: i64::from(code),
                            }
                        })
                    })
                    .transpose()
            }

            /// Starts a phase-2 transaction with the branch's row (if any) locked; on failure the
            /// transaction is rolled back before the error is returned.
            async fn begin_locked(
                &self,
                xid: &str,
                branch_id: i64,
            ) -> Result<
                (
                    sqlx::Transaction<'static, $db>,
                    Option<crate::error::FenceStatus>,
                ),
                crate::error::FenceError,
            > {
                let mut tx = self.begin().await?;
                match self.lock_status(&mut tx, xid, branch_id).await {
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
                tx: &mut sqlx::Transaction<'static, $db>,
                xid: &str,
                branch_id: i64,
                to: crate::error::FenceStatus,
            ) -> Result<bool, crate::error::FenceError> {
                let done = sqlx::query(&self.sql.update_status)
                    .bind(to.code() as $status)
                    .bind(xid)
                    .bind(branch_id)
                    .bind(crate::error::FenceStatus::Tried.code() as $status)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| self.db_error("update status", e))?;
                Ok(done.rows_affected() == 1)
            }

            /// The branch's fence status, read without locking (for operators and tests).
            pub async fn status(
                &self,
                xid: &str,
                branch_id: i64,
            ) -> Result<Option<crate::error::FenceStatus>, crate::error::FenceError> {
                let status: Option<$status> = sqlx::query_scalar(&self.sql.select_status)
                    .bind(xid)
                    .bind(branch_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.db_error("select status", e))?;
                Ok(status.and_then(|code| crate::error::FenceStatus::from_code(i64::from(code))))
            }

            /// Phase 1: inserts status 1 (tried) and runs `work` in the same transaction.
            /// A duplicate key means a rollback got there first (suspension): the try is refused
            /// and its transaction rolled back. The status-4 row stays (unlike Java, which
            /// deletes it at once) so that a retried late try is refused too; the cleanup
            /// removes it after the clean period. A deadlock before `work` runs the
            /// transaction again (see [`crate::fence::CONFLICT_ATTEMPTS`]).
            pub async fn fenced_try<T, F, Fut>(
                &self,
                xid: &str,
                branch_id: i64,
                action_name: &str,
                work: F,
            ) -> Result<T, crate::error::FenceError>
            where
                F: FnOnce(sqlx::Transaction<'static, $db>) -> Fut,
                Fut: std::future::Future<
                        Output = (
                            sqlx::Transaction<'static, $db>,
                            Result<T, crate::error::BoxError>,
                        ),
                    >,
            {
                let tx = crate::fence::rerun_on_conflict(xid, branch_id, "try", || {
                    self.start_try(xid, branch_id, action_name)
                })
                .await?;
                let (tx, result) = work(tx).await;
                match result {
                    Ok(value) => {
                        tx.commit()
                            .await
                            .map_err(|e| self.db_error("commit try", e))?;
                        Ok(value)
                    }
                    Err(error) => {
                        rollback_quietly(tx).await;
                        Err(crate::error::FenceError::Business(error))
                    }
                }
            }

            /// Begins the try's transaction and inserts the tried row.
            async fn start_try(
                &self,
                xid: &str,
                branch_id: i64,
                action_name: &str,
            ) -> Result<sqlx::Transaction<'static, $db>, crate::error::FenceError> {
                let mut tx = self.begin().await?;
                let inserted = self
                    .insert(
                        &mut tx,
                        xid,
                        branch_id,
                        action_name,
                        crate::error::FenceStatus::Tried,
                    )
                    .await;
                match inserted {
                    Ok(()) => Ok(tx),
                    Err(error) => {
                        rollback_quietly(tx).await;
                        if crate::fence::is_unique_violation(&error) {
                            tracing::error!(
                                xid,
                                branch_id,
                                "branch already rolled back before its try: try refused (suspension)"
                            );
                            return Err(crate::error::FenceError::Suspended {
                                xid: xid.to_owned(),
                                branch_id,
                            });
                        }
                        Err(self.db_error("insert tried row", error))
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
            ) -> Result<bool, crate::error::FenceError>
            where
                F: FnOnce(sqlx::Transaction<'static, $db>) -> Fut,
                Fut: std::future::Future<
                        Output = (
                            sqlx::Transaction<'static, $db>,
                            Result<bool, crate::error::BoxError>,
                        ),
                    >,
            {
                let start = crate::fence::rerun_on_conflict(xid, branch_id, "confirm", || {
                    self.start_commit(xid, branch_id)
                })
                .await?;
                match start {
                    crate::fence::PhaseTwoStart::Done(answer) => Ok(answer),
                    crate::fence::PhaseTwoStart::Run(tx) => {
                        self.run_phase_two(tx, xid, branch_id, "confirm", work).await
                    }
                }
            }

            /// The fence step of a commit: locks the row and moves it from tried to committed.
            async fn start_commit(
                &self,
                xid: &str,
                branch_id: i64,
            ) -> Result<
                crate::fence::PhaseTwoStart<sqlx::Transaction<'static, $db>>,
                crate::error::FenceError,
            > {
                use crate::error::FenceStatus;
                use crate::fence::PhaseTwoStart::Done;
                let (tx, status) = self.begin_locked(xid, branch_id).await?;
                match status {
                    None => {
                        rollback_quietly(tx).await;
                        Err(crate::error::FenceError::NoRecord {
                            xid: xid.to_owned(),
                            branch_id,
                        })
                    }
                    Some(FenceStatus::Committed) => {
                        rollback_quietly(tx).await;
                        tracing::info!(xid, branch_id, "branch already committed: confirm skipped (idempotent)");
                        Ok(Done(true))
                    }
                    Some(status @ (FenceStatus::Rollbacked | FenceStatus::Suspended)) => {
                        rollback_quietly(tx).await;
                        tracing::warn!(xid, branch_id, ?status, "commit of a branch that was rolled back: refused");
                        Ok(Done(false))
                    }
                    Some(FenceStatus::Tried) => {
                        self.mark_tried(tx, xid, branch_id, FenceStatus::Committed)
                            .await
                    }
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
            ) -> Result<bool, crate::error::FenceError>
            where
                F: FnOnce(sqlx::Transaction<'static, $db>) -> Fut,
                Fut: std::future::Future<
                        Output = (
                            sqlx::Transaction<'static, $db>,
                            Result<bool, crate::error::BoxError>,
                        ),
                    >,
            {
                let start = crate::fence::rerun_on_conflict(xid, branch_id, "cancel", || {
                    self.start_rollback(xid, branch_id, action_name)
                })
                .await?;
                match start {
                    crate::fence::PhaseTwoStart::Done(answer) => Ok(answer),
                    crate::fence::PhaseTwoStart::Run(tx) => {
                        self.run_phase_two(tx, xid, branch_id, "cancel", work).await
                    }
                }
            }

            /// The fence step of a rollback: locks the row and moves it from tried to rolled
            /// back, or, when there is no row, records the empty rollback and commits.
            async fn start_rollback(
                &self,
                xid: &str,
                branch_id: i64,
                action_name: &str,
            ) -> Result<
                crate::fence::PhaseTwoStart<sqlx::Transaction<'static, $db>>,
                crate::error::FenceError,
            > {
                use crate::error::FenceStatus;
                use crate::fence::PhaseTwoStart::Done;
                let (mut tx, status) = self.begin_locked(xid, branch_id).await?;
                match status {
                    None => {
                        if let Err(error) = self
                            .insert(&mut tx, xid, branch_id, action_name, FenceStatus::Suspended)
                            .await
                        {
                            rollback_quietly(tx).await;
                            return Err(self.db_error(crate::fence::INSERT_SUSPENDED, error));
                        }
                        tx.commit()
                            .await
                            .map_err(|e| self.db_error("commit empty rollback", e))?;
                        tracing::info!(xid, branch_id, "rollback before any try: recorded as suspended (empty rollback)");
                        Ok(Done(true))
                    }
                    Some(FenceStatus::Rollbacked | FenceStatus::Suspended) => {
                        rollback_quietly(tx).await;
                        tracing::info!(xid, branch_id, "branch already rolled back: cancel skipped (idempotent)");
                        Ok(Done(true))
                    }
                    Some(FenceStatus::Committed) => {
                        rollback_quietly(tx).await;
                        tracing::warn!(xid, branch_id, "rollback of a branch that was committed: refused");
                        Ok(Done(false))
                    }
                    Some(FenceStatus::Tried) => {
                        self.mark_tried(tx, xid, branch_id, FenceStatus::Rollbacked)
                            .await
                    }
                }
            }

            /// Moves the locked tried row to `to`; on failure the transaction is rolled back.
            async fn mark_tried(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                xid: &str,
                branch_id: i64,
                to: crate::error::FenceStatus,
            ) -> Result<
                crate::fence::PhaseTwoStart<sqlx::Transaction<'static, $db>>,
                crate::error::FenceError,
            > {
                match self.mark(&mut tx, xid, branch_id, to).await {
                    Ok(true) => Ok(crate::fence::PhaseTwoStart::Run(tx)),
                    // Cannot happen under the row lock; answer "not done" rather than guess.
                    Ok(false) => {
                        rollback_quietly(tx).await;
                        Ok(crate::fence::PhaseTwoStart::Done(false))
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
                tx: sqlx::Transaction<'static, $db>,
                xid: &str,
                branch_id: i64,
                phase: &'static str,
                work: F,
            ) -> Result<bool, crate::error::FenceError>
            where
                F: FnOnce(sqlx::Transaction<'static, $db>) -> Fut,
                Fut: std::future::Future<
                        Output = (
                            sqlx::Transaction<'static, $db>,
                            Result<bool, crate::error::BoxError>,
                        ),
                    >,
            {
                let (tx, result) = work(tx).await;
                match result {
                    Ok(true) => {
                        tx.commit()
                            .await
                            .map_err(|e| self.db_error("commit phase 2", e))?;
                        Ok(true)
                    }
                    // As Java: a false result makes the local transaction rollback-only.
                    Ok(false) => {
                        rollback_quietly(tx).await;
                        Ok(false)
                    }
                    Err(error) => {
                        rollback_quietly(tx).await;
                        if error
                            .downcast_ref::<sqlx::Error>()
                            .is_some_and(crate::fence::is_deadlock)
                        {
                            tracing::warn!(xid, branch_id, phase, "deadlock in the business work; the TC retries");
                        }
                        Err(crate::error::FenceError::Business(error))
                    }
                }
            }

            /// Runs `work` in a plain local transaction, for phase 2 of a branch registered
            /// without the fence (`useTCCFence` false): commits only on `Ok(true)`.
            pub async fn unfenced<F, Fut>(&self, work: F) -> Result<bool, crate::error::FenceError>
            where
                F: FnOnce(sqlx::Transaction<'static, $db>) -> Fut,
                Fut: std::future::Future<
                        Output = (
                            sqlx::Transaction<'static, $db>,
                            Result<bool, crate::error::BoxError>,
                        ),
                    >,
            {
                let tx = self.begin().await?;
                let (tx, result) = work(tx).await;
                match result {
                    Ok(true) => {
                        tx.commit()
                            .await
                            .map_err(|e| self.db_error("commit phase 2", e))?;
                        Ok(true)
                    }
                    Ok(false) => {
                        rollback_quietly(tx).await;
                        Ok(false)
                    }
                    Err(error) => {
                        rollback_quietly(tx).await;
                        Err(crate::error::FenceError::Business(error))
                    }
                }
            }

            /// Deletes rows in a final status (2, 3, 4) last modified more than `age` ago, in
            /// batches of [`crate::fence::CLEAN_BATCH`]; status-1 rows are never removed.
            /// Returns how many rows went.
            pub async fn delete_older_than(
                &self,
                age: std::time::Duration,
            ) -> Result<u64, crate::error::FenceError> {
                let micros = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
                let mut total = 0;
                loop {
                    let deleted = sqlx::query(&self.sql.delete_older)
                        .bind(micros)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| self.db_error("delete old rows", e))?
                        .rows_affected();
                    total += deleted;
                    if deleted < crate::fence::CLEAN_BATCH {
                        return Ok(total);
                    }
                }
            }

            /// Starts the periodic cleanup (Java's `tcc.fence.cleanPeriod`): after a random
            /// 0-59 s, and then every `period`, deletes final rows older than `period`.
            /// A zero period starts nothing. Abort the returned task to stop it.
            pub fn spawn_cleanup(
                &self,
                period: std::time::Duration,
            ) -> Option<tokio::task::JoinHandle<()>> {
                if period.is_zero() {
                    tracing::info!("TCC fence cleanup disabled (clean period is zero)");
                    return None;
                }
                let fence = self.clone();
                Some(tokio::spawn(async move {
                    tokio::time::sleep(crate::fence::first_clean_delay()).await;
                    let mut ticker = tokio::time::interval(period);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticker.tick().await;
                        match fence.delete_older_than(period).await {
                            Ok(deleted) => tracing::info!(deleted, table = %fence.table, "TCC fence cleanup done"),
                            Err(error) => tracing::warn!(%error, "TCC fence cleanup failed; next try in one period"),
                        }
                    }
                }))
            }
        }

        async fn rollback_quietly(tx: sqlx::Transaction<'static, $db>) {
            // Dropping the transaction would roll back too; an explicit rollback frees the
            // connection's locks now, and its failure only means the connection is gone.
            if let Err(error) = tx.rollback().await {
                tracing::debug!(%error, "local rollback failed; the connection is discarded");
            }
        }

        impl crate::participant::PhaseGuard<sqlx::Transaction<'static, $db>>
            for crate::fence::TccFence<$db>
        {
            fn is_fence(&self) -> bool {
                true
            }

            async fn guard_prepare<'a, T>(
                &self,
                branch: crate::participant::BranchKey<'_>,
                work: crate::participant::PhaseWork<'a, sqlx::Transaction<'static, $db>, T>,
            ) -> Result<T, crate::error::FenceError>
            where
                T: Send,
            {
                self.fenced_try(branch.xid, branch.branch_id, branch.action_name, work)
                    .await
            }

            async fn guard_commit<'a>(
                &self,
                branch: crate::participant::BranchKey<'_>,
                fenced: bool,
                work: crate::participant::PhaseWork<'a, sqlx::Transaction<'static, $db>, bool>,
            ) -> Result<bool, crate::error::FenceError>
            {
                if fenced {
                    self.fenced_commit(branch.xid, branch.branch_id, work).await
                } else {
                    self.unfenced(work).await
                }
            }

            async fn guard_rollback<'a>(
                &self,
                branch: crate::participant::BranchKey<'_>,
                fenced: bool,
                work: crate::participant::PhaseWork<'a, sqlx::Transaction<'static, $db>, bool>,
            ) -> Result<bool, crate::error::FenceError>
            {
                if fenced {
                    self.fenced_rollback(branch.xid, branch.branch_id, branch.action_name, work)
                        .await
                } else {
                    self.unfenced(work).await
                }
            }
        }
    };
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) use fence_impl;

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
