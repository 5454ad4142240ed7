//! The fence on MySQL/MariaDB: its statements (with `NOW(3)` as the clock, Seata's
//! `DATETIME(3)` columns) and table creation with Seata's DDL.

use sqlx::MySql;

use super::sealed::{Dialect, FenceSql};
use super::{FenceDatabase, TccFence, ddl_mysql};
use crate::error::FenceError;

impl FenceDatabase for MySql {}

impl Dialect for MySql {
    fn fence_sql(table: &str) -> FenceSql {
        FenceSql {
            insert: format!(
                "INSERT INTO {table} (xid, branch_id, action_name, status, gmt_create, gmt_modified) \
             VALUES (?, ?, ?, ?, NOW(3), NOW(3))"
            ),
            select_for_update: format!(
                "SELECT status FROM {table} WHERE xid = ? AND branch_id = ? FOR UPDATE"
            ),
            select_status: format!("SELECT status FROM {table} WHERE xid = ? AND branch_id = ?"),
            update_status: format!(
                "UPDATE {table} SET status = ?, gmt_modified = NOW(3) \
             WHERE xid = ? AND branch_id = ? AND status = ?"
            ),
            delete_older: format!(
                "DELETE FROM {table} WHERE status IN (2, 3, 4) \
             AND gmt_modified < NOW(3) - INTERVAL ? MICROSECOND LIMIT {}",
                super::CLEAN_BATCH
            ),
        }
    }
}

super::fence_impl!(MySql, i8);

impl TccFence<MySql> {
    /// Creates the fence table with Seata's DDL if it does not exist.
    pub async fn create_table(&self) -> Result<(), FenceError> {
        let ddl = ddl_mysql(&self.table)?;
        sqlx::raw_sql(&ddl)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_error("create table", e))?;
        Ok(())
    }
}
