//! The store's SQL on MySQL and MariaDB: `?` placeholders, `ON DUPLICATE KEY UPDATE`, and
//! errors told apart by server error number. The tables are Seata's db-mode tables
//! (`script/server/db/mysql.sql`); created here, they use the binary collation so that row keys
//! and xids compare exactly as the coordinator compares them (a case-insensitive collation
//! would make `k` and `K` one locked row).

use sqlx::MySql;
use sqlx::error::DatabaseError;

use crate::dialect::sealed::Dialect;
use crate::dialect::{SqlDatabase, seata_limits};

/// ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT and ER_DUP_ENTRY (two nodes inserting the same
/// id-reservation or lease row at once).
const RETRYABLE: [&str; 3] = ["1213", "1205", "1062"];

impl SqlDatabase for MySql {}

impl Dialect for MySql {
    const DISPLAY_NAME: &'static str = "MySQL";
    const BIGINT: &'static str = "SIGNED";
    const TIMESTAMP_PARAM: &'static str = "CAST(? AS DATETIME(6))";

    const KEYS_COMPARE_EXACTLY: bool = false;
    const COUNTS_ONLY_INSERTED_ROWS: bool = false;
    const COMMIT_AND_BEGIN: Option<&'static str> = None;

    fn text(column: &str) -> String {
        format!("CAST({column} AS CHAR)")
    }

    fn xid_prefix(column: &str) -> String {
        // Binary collation: cast so that the result decodes as text.
        format!(
            "CAST(SUBSTRING({column}, 1, GREATEST(CHAR_LENGTH({column}) - \
             CHAR_LENGTH(SUBSTRING_INDEX({column}, ':', -1)) - 1, 0)) AS CHAR)"
        )
    }

    fn on_conflict_update(_key: &str) -> String {
        "ON DUPLICATE KEY UPDATE".to_owned()
    }

    fn inserted(column: &str) -> String {
        format!("VALUES({column})")
    }

    fn on_conflict_skip(key: &str) -> String {
        format!("ON DUPLICATE KEY UPDATE {key} = {key}")
    }

    fn schema() -> Vec<String> {
        const TABLE_OPTIONS: &str =
            "ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";
        [
            "CREATE TABLE IF NOT EXISTS global_table (
                xid VARCHAR(128) NOT NULL,
                transaction_id BIGINT,
                status TINYINT NOT NULL,
                application_id VARCHAR(32),
                transaction_service_group VARCHAR(32),
                transaction_name VARCHAR(128),
                timeout INT,
                begin_time BIGINT,
                application_data VARCHAR(2000),
                gmt_create DATETIME,
                gmt_modified DATETIME,
                PRIMARY KEY (xid),
                KEY idx_status_gmt_modified (status, gmt_modified),
                KEY idx_transaction_id (transaction_id))",
            "CREATE TABLE IF NOT EXISTS branch_table (
                branch_id BIGINT NOT NULL,
                xid VARCHAR(128) NOT NULL,
                transaction_id BIGINT,
                resource_group_id VARCHAR(32),
                resource_id VARCHAR(256),
                branch_type VARCHAR(8),
                status TINYINT,
                client_id VARCHAR(64),
                application_data VARCHAR(2000),
                gmt_create DATETIME(6),
                gmt_modified DATETIME(6),
                PRIMARY KEY (branch_id),
                KEY idx_xid (xid))",
            "CREATE TABLE IF NOT EXISTS lock_table (
                row_key VARCHAR(128) NOT NULL,
                xid VARCHAR(128),
                transaction_id BIGINT,
                branch_id BIGINT NOT NULL,
                resource_id VARCHAR(256),
                table_name VARCHAR(32),
                pk VARCHAR(36),
                status TINYINT NOT NULL DEFAULT '0' COMMENT '0:locked ,1:rollbacking',
                gmt_create DATETIME,
                gmt_modified DATETIME,
                PRIMARY KEY (row_key),
                KEY idx_status (status),
                KEY idx_branch_id (branch_id),
                KEY idx_xid (xid))",
            "CREATE TABLE IF NOT EXISTS distributed_lock (
                lock_key CHAR(20) NOT NULL,
                lock_value VARCHAR(20) NOT NULL,
                expire BIGINT,
                PRIMARY KEY (lock_key))",
            "CREATE TABLE IF NOT EXISTS ferrata_node (
                xid_prefix VARCHAR(128) NOT NULL,
                PRIMARY KEY (xid_prefix))",
        ]
        .into_iter()
        .map(|ddl| format!("{ddl} {TABLE_OPTIONS}"))
        .chain(std::iter::once(
            "INSERT IGNORE INTO distributed_lock (lock_key, lock_value, expire) VALUES
                ('AsyncCommitting', ' ', 0), ('RetryCommitting', ' ', 0),
                ('RetryRollbacking', ' ', 0), ('TxTimeoutCheck', ' ', 0)"
                .to_owned(),
        ))
        .collect()
    }

    fn schema_lock() -> Option<&'static str> {
        // CREATE TABLE IF NOT EXISTS is atomic in InnoDB; nothing to serialise.
        None
    }

    fn snapshot_read() -> Option<&'static str> {
        // REPEATABLE READ (set before the transaction began) takes one snapshot at the first
        // read.
        None
    }

    fn before_snapshot_read() -> Option<&'static str> {
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    }

    fn session_setup() -> &'static [&'static str] {
        // Writes lock the rows they read FOR UPDATE; REPEATABLE READ would also lock the gaps
        // next to rows not there yet (a new transaction's), and nodes inserting side by side
        // would deadlock on them.
        &["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"]
    }

    fn abandoned_transaction_timeout(timeout: std::time::Duration) -> String {
        // MySQL has no timeout for idling inside a transaction only: this one ends any idle
        // session, and the pool closes its idle connections first.
        format!(
            "SET SESSION wait_timeout = {}",
            timeout.as_millis().div_ceil(1_000).max(1)
        )
    }

    fn use_schema(schema: &str) -> String {
        format!("USE `{schema}`")
    }

    fn create_schema(schema: &str) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
    }

    fn placeholders(sql: &str) -> String {
        sql.to_owned()
    }

    fn is_retryable(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .is_some_and(|code| RETRYABLE.contains(&code.as_ref()))
    }

    fn limits() -> ferrata_store::StoreLimits {
        seata_limits(true)
    }

    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
}
