//! AT's SQL on MySQL/MariaDB: `?` placeholders, `now(6)` for Seata's `DATETIME(6)` columns,
//! errors told apart by MySQL error number.

use sqlx::MySql;
use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlDatabaseError;

use super::sealed::{Dialect, UndoSql};
use super::{AtDatabase, CLEANUP_BATCH_ROWS, jdbc_url, placeholders};

/// `ER_DUP_ENTRY`.
const DUPLICATE_KEY: u16 = 1062;

impl AtDatabase for MySql {}

impl Dialect for MySql {
    const SQL: crate::sql::Dialect = crate::sql::Dialect::MySql;

    fn resource_id(options: &sqlx::mysql::MySqlConnectOptions) -> String {
        jdbc_url(
            "mysql",
            options.get_host(),
            options.get_port(),
            options.get_database(),
        )
    }

    async fn load_meta(
        conn: &mut sqlx::MySqlConnection,
        table: &str,
    ) -> Result<crate::meta::TableMeta, crate::meta::MetaError> {
        crate::meta::load_mysql(conn, table).await
    }

    super::same_on_every_database!();

    fn undo_sql(table: &str) -> UndoSql {
        UndoSql {
            insert: format!(
                "INSERT INTO {table} (branch_id, xid, context, rollback_info, log_status, \
                 log_created, log_modified) VALUES (?, ?, ?, ?, ?, now(6), now(6))"
            ),
            select_for_update: format!(
                "SELECT context, rollback_info, log_status FROM {table} \
                 WHERE branch_id = ? AND xid = ? FOR UPDATE"
            ),
            delete: format!("DELETE FROM {table} WHERE branch_id = ? AND xid = ?"),
            delete_older: format!(
                "DELETE FROM {table} WHERE log_created <= now(6) - INTERVAL ? DAY \
                 LIMIT {CLEANUP_BATCH_ROWS}"
            ),
            // Seata's script/client/at/db/mysql.sql.
            create_table: vec![format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    branch_id BIGINT NOT NULL COMMENT 'branch transaction id',
                    xid VARCHAR(128) NOT NULL COMMENT 'global transaction id',
                    context VARCHAR(128) NOT NULL COMMENT 'undo_log context,such as serialization',
                    rollback_info LONGBLOB NOT NULL COMMENT 'rollback info',
                    log_status INT(11) NOT NULL COMMENT '0:normal status,1:defense status',
                    log_created DATETIME(6) NOT NULL COMMENT 'create datetime',
                    log_modified DATETIME(6) NOT NULL COMMENT 'modify datetime',
                    UNIQUE KEY ux_undo_log (xid, branch_id),
                    KEY ix_log_created (log_created)
                ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COMMENT ='AT transaction mode undo table'"
            )],
        }
    }

    fn delete_many_sql(table: &str, count: usize) -> String {
        let list = placeholders(count, None);
        format!("DELETE FROM {table} WHERE branch_id IN ({list}) AND xid IN ({list})")
    }

    fn is_duplicate_key(error: &dyn DatabaseError) -> bool {
        error
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number)
            == Some(DUPLICATE_KEY)
    }

    fn decode_value(
        row: &sqlx::mysql::MySqlRow,
        index: usize,
        column: &crate::meta::ColumnMeta,
        zone: super::TimeZone,
    ) -> Result<crate::undo::Value, super::ValueError> {
        super::mysql_values::decode_value(row, index, column, zone)
    }

    fn bind_value<'q>(
        args: &mut sqlx::mysql::MySqlArguments,
        value: &crate::undo::Value,
        column: Option<&crate::meta::ColumnMeta>,
        zone: super::TimeZone,
    ) -> Result<(), super::ValueError> {
        super::mysql_values::bind_value(args, value, column, zone)
    }
}
