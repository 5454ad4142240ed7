//! The TCC fence on a real MariaDB/MySQL server (FERRATA_MYSQL_URL, from scripts/services).
// The suite's helpers are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "support/fence_suite.rs"]
mod fence_suite;
mod support;

fence_suite!(
    db = sqlx::MySql,
    url_var = "FERRATA_MYSQL_URL",
    ledger_ddl = "CREATE TABLE IF NOT EXISTS tcc_test_ledger \
                  (xid VARCHAR(128) NOT NULL, branch_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL)",
    insert_ledger = "INSERT INTO tcc_test_ledger (xid, branch_id, phase) VALUES (?, ?, ?)",
    count_ledger = "SELECT COUNT(*) FROM tcc_test_ledger WHERE xid = ? AND phase = ?",
    backdate = "UPDATE tcc_fence_log SET gmt_modified = NOW(3) - INTERVAL 2 HOUR WHERE xid = ?",
    columns_sql = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
                   FROM information_schema.COLUMNS \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tcc_fence_log' \
                   ORDER BY ORDINAL_POSITION",
    columns = [
        ("xid", "varchar(128)"),
        ("branch_id", "bigint(20)"),
        ("action_name", "varchar(64)"),
        ("status", "tinyint(4)"),
        ("gmt_create", "datetime(3)"),
        ("gmt_modified", "datetime(3)"),
    ],
);
