//! The fence's SQL on PostgreSQL: `$n` placeholders, `LOCALTIMESTAMP(3)` as the clock (Seata's
//! `TIMESTAMP(3)` columns), and errors told apart by SQLSTATE.

use sqlx::Postgres;
use sqlx::error::DatabaseError;

use super::sealed::{Dialect, FenceSql};
use super::{CLEAN_BATCH, DEFAULT_TABLE, FenceDatabase, ddl_postgres_unchecked};

/// `unique_violation`.
const DUPLICATE_KEY: &str = "23505";
/// `deadlock_detected` and `serialization_failure`: the transaction was rolled back.
const DEADLOCK: [&str; 2] = ["40P01", "40001"];

/// Serialises concurrent table creation across processes (Seata's PostgreSQL DDL has plain
/// CREATE INDEX statements, which fail when run twice).
const DDL_LOCK_KEY: i64 = 0x6665_7272_7463_6301;

impl FenceDatabase for Postgres {}

impl Dialect for Postgres {
    fn fence_sql(table: &str) -> FenceSql {
        // Seata's DDL creates the default table in `public`.
        let qualified = if table == DEFAULT_TABLE {
            format!("public.{table}")
        } else {
            table.to_owned()
        };
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
                 LIMIT {CLEAN_BATCH})"
            ),
            create_table: ddl_postgres_unchecked(table),
            create_lock: Some(format!("SELECT pg_advisory_xact_lock({DDL_LOCK_KEY})")),
            // The name is a checked plain identifier, so it can sit in a string literal.
            table_exists: Some(format!("SELECT to_regclass('{qualified}')::text")),
        }
    }

    fn is_duplicate_key(error: &dyn DatabaseError) -> bool {
        error.code().as_deref() == Some(DUPLICATE_KEY)
    }

    fn is_deadlock(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .is_some_and(|code| DEADLOCK.contains(&code.as_ref()))
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}
