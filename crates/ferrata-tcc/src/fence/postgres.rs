//! The fence on PostgreSQL: its statements (with `LOCALTIMESTAMP(3)` as the clock, matching
//! Seata's `TIMESTAMP(3)` columns) and table creation with Seata's DDL.

use sqlx::Postgres;

use super::sealed::{Dialect, FenceSql};
use super::{FenceDatabase, TccFence, ddl_postgres};
use crate::error::FenceError;

impl FenceDatabase for Postgres {}

impl Dialect for Postgres {
    fn fence_sql(table: &str) -> FenceSql {
        FenceSql {
            insert: format!(
                "INSERT INTO {table} (xid, branch_id, action_name, status, gmt_create, gmt_modified) \
             VALUES ($1, $2, $3, $4, LOCALTIMESTAMP(3), LOCALTIMESTAMP(3))"
            ),
            select_for_update: format!(
                "SELECT status FROM {table} WHERE xid = $1 AND branch_id = $2 FOR UPDATE"
            ),
            select_status: format!("SELECT status FROM {table} WHERE xid = $1 AND branch_id = $2"),
            update_status: format!(
                "UPDATE {table} SET status = $1, gmt_modified = LOCALTIMESTAMP(3) \
             WHERE xid = $2 AND branch_id = $3 AND status = $4"
            ),
            // PostgreSQL's DELETE has no LIMIT: batch through the physical row ids.
            delete_older: format!(
                "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} \
             WHERE status IN (2, 3, 4) \
             AND gmt_modified < LOCALTIMESTAMP(3) - make_interval(secs => $1::float8 / 1000000.0) \
             LIMIT {})",
                super::CLEAN_BATCH
            ),
        }
    }
}

super::fence_impl!(Postgres, i16);

/// Serialises concurrent `create_table` calls across processes (Seata's PostgreSQL DDL has
/// plain CREATE INDEX statements, which fail when run twice).
const DDL_LOCK_KEY: i64 = 0x6665_7272_7463_6301;

impl TccFence<Postgres> {
    /// Creates the fence table with Seata's DDL if it does not exist.
    pub async fn create_table(&self) -> Result<(), FenceError> {
        let ddl = ddl_postgres(&self.table)?;
        let qualified = if self.table == super::DEFAULT_TABLE {
            format!("public.{}", self.table)
        } else {
            self.table.clone()
        };
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error("lock for create table", e))?;
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&qualified)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db_error("look up table", e))?;
        if exists.is_none() {
            sqlx::raw_sql(&ddl)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error("create table", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.db_error("commit create table", e))?;
        Ok(())
    }
}
