//! The TCC fence on a real PostgreSQL server (FERRATA_POSTGRES_URL, from scripts/services).
// The suite's helpers are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "support/fence_suite.rs"]
mod fence_suite;
mod support;

fence_suite!(
    db = sqlx::Postgres,
    url_var = "FERRATA_POSTGRES_URL",
    ledger_ddl = "CREATE TABLE IF NOT EXISTS tcc_test_ledger \
                  (xid VARCHAR(128) NOT NULL, branch_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL)",
    insert_ledger = "INSERT INTO tcc_test_ledger (xid, branch_id, phase) VALUES ($1, $2, $3)",
    count_ledger = "SELECT COUNT(*) FROM tcc_test_ledger WHERE xid = $1 AND phase = $2",
    backdate = "UPDATE tcc_fence_log SET gmt_modified = LOCALTIMESTAMP(3) - INTERVAL '2 hours' \
                WHERE xid = $1",
    columns_sql = "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                   WHERE attrelid = 'public.tcc_fence_log'::regclass AND attnum > 0 \
                   AND NOT attisdropped ORDER BY attnum",
    columns = [
        ("xid", "character varying(128)"),
        ("branch_id", "bigint"),
        ("action_name", "character varying(64)"),
        ("status", "smallint"),
        ("gmt_create", "timestamp(3) without time zone"),
        ("gmt_modified", "timestamp(3) without time zone"),
    ],
    lock_wait = waits_for_a_lock,
);

/// True while a session waits for a lock in a statement that names `table`.
async fn waits_for_a_lock(pool: &sqlx::PgPool, table: &str) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
    )
    .bind(format!("%{table}%"))
    .fetch_one(pool)
    .await
    .unwrap();
    waiting > 0
}
