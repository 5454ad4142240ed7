//! The fence's SQL on MySQL/MariaDB: `?` placeholders, `NOW(3)` as the clock (Seata's
//! `DATETIME(3)` columns), and errors told apart by MySQL error number.

use sqlx::MySql;
use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlDatabaseError;

use super::sealed::{Dialect, FenceSql};
use super::{CLEAN_BATCH, FenceDatabase, ddl_mysql_unchecked};

/// `ER_DUP_ENTRY`.
const DUPLICATE_KEY: u16 = 1062;
/// `ER_LOCK_DEADLOCK` (SQLSTATE 40001): InnoDB rolled the whole transaction back. A lock wait
/// timeout (1205) is not one: it ends only the statement, and waiting again would most likely
/// time out again.
const DEADLOCK: u16 = 1213;

impl FenceDatabase for MySql {}

fn number(error: &dyn DatabaseError) -> Option<u16> {
    error
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

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
                 AND gmt_modified < NOW(3) - INTERVAL ? MICROSECOND LIMIT {CLEAN_BATCH}"
            ),
            // `CREATE TABLE IF NOT EXISTS` is enough: the DDL has no separate index statements.
            create_table: ddl_mysql_unchecked(table),
            create_lock: None,
            table_exists: None,
        }
    }

    fn is_duplicate_key(error: &dyn DatabaseError) -> bool {
        number(error) == Some(DUPLICATE_KEY)
    }

    fn is_deadlock(error: &dyn DatabaseError) -> bool {
        number(error) == Some(DEADLOCK)
    }

    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
}
