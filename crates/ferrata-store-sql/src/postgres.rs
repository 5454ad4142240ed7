//! The store's SQL on PostgreSQL: `$n` placeholders, `ON CONFLICT`, and errors told apart by
//! SQLSTATE. The tables are Seata's db-mode tables (`script/server/db/postgresql.sql`), created
//! in the connection's schema (its `search_path`), indexes with `IF NOT EXISTS` so a second
//! node's start is harmless.

use sqlx::Postgres;
use sqlx::error::DatabaseError;

use crate::dialect::sealed::Dialect;
use crate::dialect::{SqlDatabase, numbered, seata_limits};

/// `deadlock_detected`, `serialization_failure` and `unique_violation` (two nodes inserting
/// the same id-reservation or lease row at once).
const RETRYABLE: [&str; 3] = ["40P01", "40001", "23505"];

impl SqlDatabase for Postgres {}

impl Dialect for Postgres {
    const DISPLAY_NAME: &'static str = "PostgreSQL";
    const BIGINT: &'static str = "BIGINT";
    const TIMESTAMP_PARAM: &'static str = "CAST(? AS TIMESTAMP(6))";

    const KEYS_COMPARE_EXACTLY: bool = true;
    const COUNTS_ONLY_INSERTED_ROWS: bool = true;
    const COMMIT_AND_BEGIN: Option<&'static str> = Some("COMMIT; BEGIN");

    fn text(column: &str) -> String {
        column.to_owned()
    }

    fn xid_prefix(column: &str) -> String {
        format!(
            "CASE WHEN position(':' in {column}) = 0 THEN '' \
             ELSE regexp_replace({column}, ':[^:]*$', '') END"
        )
    }

    fn on_conflict_update(key: &str) -> String {
        format!("ON CONFLICT ({key}) DO UPDATE SET")
    }

    fn inserted(column: &str) -> String {
        format!("EXCLUDED.{column}")
    }

    fn on_conflict_skip(key: &str) -> String {
        format!("ON CONFLICT ({key}) DO NOTHING")
    }

    fn schema() -> Vec<String> {
        [
            "CREATE TABLE IF NOT EXISTS global_table (
                xid VARCHAR(128) NOT NULL,
                transaction_id BIGINT,
                status SMALLINT NOT NULL,
                application_id VARCHAR(32),
                transaction_service_group VARCHAR(32),
                transaction_name VARCHAR(128),
                timeout INT,
                begin_time BIGINT,
                application_data VARCHAR(2000),
                gmt_create TIMESTAMP(0),
                gmt_modified TIMESTAMP(0),
                CONSTRAINT pk_global_table PRIMARY KEY (xid))",
            "CREATE INDEX IF NOT EXISTS idx_global_table_status_gmt_modified
                ON global_table (status, gmt_modified)",
            "CREATE INDEX IF NOT EXISTS idx_global_table_transaction_id
                ON global_table (transaction_id)",
            "CREATE TABLE IF NOT EXISTS branch_table (
                branch_id BIGINT NOT NULL,
                xid VARCHAR(128) NOT NULL,
                transaction_id BIGINT,
                resource_group_id VARCHAR(32),
                resource_id VARCHAR(256),
                branch_type VARCHAR(8),
                status SMALLINT,
                client_id VARCHAR(64),
                application_data VARCHAR(2000),
                gmt_create TIMESTAMP(6),
                gmt_modified TIMESTAMP(6),
                CONSTRAINT pk_branch_table PRIMARY KEY (branch_id))",
            "CREATE INDEX IF NOT EXISTS idx_branch_table_xid ON branch_table (xid)",
            "CREATE TABLE IF NOT EXISTS lock_table (
                row_key VARCHAR(128) NOT NULL,
                xid VARCHAR(128),
                transaction_id BIGINT,
                branch_id BIGINT NOT NULL,
                resource_id VARCHAR(256),
                table_name VARCHAR(32),
                pk VARCHAR(36),
                status SMALLINT NOT NULL DEFAULT 0,
                gmt_create TIMESTAMP(0),
                gmt_modified TIMESTAMP(0),
                CONSTRAINT pk_lock_table PRIMARY KEY (row_key))",
            "CREATE INDEX IF NOT EXISTS idx_lock_table_branch_id ON lock_table (branch_id)",
            "CREATE INDEX IF NOT EXISTS idx_lock_table_xid ON lock_table (xid)",
            "CREATE INDEX IF NOT EXISTS idx_lock_table_status ON lock_table (status)",
            "CREATE TABLE IF NOT EXISTS distributed_lock (
                lock_key VARCHAR(20) NOT NULL,
                lock_value VARCHAR(20) NOT NULL,
                expire BIGINT NOT NULL,
                CONSTRAINT pk_distributed_lock_table PRIMARY KEY (lock_key))",
            "CREATE TABLE IF NOT EXISTS ferrata_node (
                xid_prefix VARCHAR(128) NOT NULL,
                CONSTRAINT pk_ferrata_node PRIMARY KEY (xid_prefix))",
            "INSERT INTO distributed_lock (lock_key, lock_value, expire) VALUES
                ('AsyncCommitting', ' ', 0), ('RetryCommitting', ' ', 0),
                ('RetryRollbacking', ' ', 0), ('TxTimeoutCheck', ' ', 0)
                ON CONFLICT (lock_key) DO NOTHING",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    fn schema_lock() -> Option<&'static str> {
        // CREATE TABLE IF NOT EXISTS races on the catalog when two nodes start at once.
        Some("SELECT pg_advisory_xact_lock(7307199742515490049)")
    }

    fn snapshot_read() -> Option<&'static str> {
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    }

    fn abandoned_transaction_timeout(timeout: std::time::Duration) -> String {
        format!(
            "SET idle_in_transaction_session_timeout = {}",
            timeout.as_millis().max(1)
        )
    }

    fn before_snapshot_read() -> Option<&'static str> {
        None
    }

    fn session_setup() -> &'static [&'static str] {
        // READ COMMITTED is PostgreSQL's default. Rows of these tables live for milliseconds,
        // so the planner's statistics always describe tables of a few live rows among many
        // dead ones: it chose sequential scans over those pages for the batch's IN lists, and
        // a node slowed down as the dead rows piled up between autovacuums (1,400 at-commit
        // tx/s in the first 10 s, 890 in the next). Every query of the store has its index.
        // And a custom plan for a batch with empty arrays looks cheaper than the generic one,
        // so PostgreSQL kept planning the batch statements again at every execution (0.37 ms a
        // batch, a third of a one-connection begin-commit batch): the generic plans are right.
        &[
            "SET enable_seqscan = off",
            "SET plan_cache_mode = force_generic_plan",
        ]
    }

    fn use_schema(schema: &str) -> String {
        format!("SET search_path TO \"{schema}\"")
    }

    fn create_schema(schema: &str) -> String {
        format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")
    }

    fn placeholders(sql: &str) -> String {
        numbered(sql)
    }

    fn is_retryable(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .is_some_and(|code| RETRYABLE.contains(&code.as_ref()))
    }

    fn limits() -> ferrata_store::StoreLimits {
        // PostgreSQL text cannot hold U+0000.
        seata_limits(false)
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}
