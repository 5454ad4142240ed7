//! What differs between the databases: Seata's DDL, upsert and insert-if-absent syntax,
//! placeholders, integer casts, timestamp parameters and error codes. Every statement is
//! written once, with `?` placeholders, and finished here per dialect.

use ferrata_store::StoreLimits;

pub(crate) mod sealed {
    /// One database's SQL and error classification; implemented for `sqlx::Postgres` and
    /// `sqlx::MySql` only.
    pub trait Dialect: sqlx::Database {
        const DISPLAY_NAME: &'static str;
        /// The type an integer column is cast to so that it decodes as `i64`.
        const BIGINT: &'static str;
        /// A timestamp parameter (bound as `YYYY-MM-DD HH:MM:SS.ffffff`, UTC).
        const TIMESTAMP_PARAM: &'static str;
        /// Whether equal keys are equal strings (no case folding or trailing-space padding)
        /// and insert-if-absent does not lock an existing row (PostgreSQL): then a key can
        /// vanish between the insert and the read back, and is inserted again.
        const KEYS_COMPARE_EXACTLY: bool;
        /// Whether an insert-if-absent counts only the rows it inserted (PostgreSQL's
        /// `ON CONFLICT DO NOTHING`); MySQL's stand-in may count a skipped row.
        const COUNTS_ONLY_INSERTED_ROWS: bool;
        /// Commits and begins the next transaction in one request, where the database runs
        /// both (PostgreSQL's simple query); `None`: a commit alone.
        const COMMIT_AND_BEGIN: Option<&'static str>;
        /// A text column as a SELECT returns it so that it decodes as `String` (MySQL reports
        /// binary-collated columns as VARBINARY).
        fn text(column: &str) -> String;
        /// The TC node part of an XID column (before its last `:`, empty without one), as
        /// text.
        fn xid_prefix(column: &str) -> String;
        /// Starts an upsert's update list after `INSERT … VALUES (…)`, for a conflict on `key`.
        fn on_conflict_update(key: &str) -> String;
        /// The value an upsert's insert tried for `column`, in its update list.
        fn inserted(column: &str) -> String;
        /// Ends an insert that skips rows whose `key` exists already.
        fn on_conflict_skip(key: &str) -> String;
        /// Seata's db-mode DDL, one statement per entry, each safe to run again.
        fn schema() -> Vec<String>;
        /// Serialises concurrent schema creation across nodes, in the creating transaction.
        fn schema_lock() -> Option<&'static str>;
        /// Run first in a read-only transaction so that its statements see one snapshot.
        fn snapshot_read() -> Option<&'static str>;
        /// Run just before such a transaction begins, where the isolation level must be set
        /// outside it (MySQL).
        fn before_snapshot_read() -> Option<&'static str>;
        /// Run once on every new connection of the store.
        fn session_setup() -> &'static [&'static str];
        /// Makes the database end this session once it idles inside a transaction for
        /// `timeout`, rolling it back.
        fn abandoned_transaction_timeout(timeout: std::time::Duration) -> String;
        /// Makes `schema` (a PostgreSQL schema, a MySQL database) the connection's default.
        fn use_schema(schema: &str) -> String;
        /// Creates `schema` if it does not exist.
        fn create_schema(schema: &str) -> String;
        /// Turns `?` placeholders into this database's.
        fn placeholders(sql: &str) -> String;
        /// A deadlock, a serialization failure or a lost insert race: running the whole
        /// transaction again from its start can succeed.
        fn is_retryable(error: &dyn sqlx::error::DatabaseError) -> bool;
        /// Column widths of Seata's schema on this database.
        fn limits() -> ferrata_store::StoreLimits;
        /// Rows a DELETE removed.
        fn rows_affected(result: &<Self as sqlx::Database>::QueryResult) -> u64;
    }
}

/// The databases the store runs on: `sqlx::Postgres` (feature `postgres`) and `sqlx::MySql`
/// (feature `mysql`, also MariaDB).
pub trait SqlDatabase: sealed::Dialect {}

/// Column widths of Seata's db-mode schema, the same on every database.
pub(crate) fn seata_limits(nul_allowed: bool) -> StoreLimits {
    StoreLimits {
        xid_chars: Some(128),
        application_id_chars: Some(32),
        transaction_service_group_chars: Some(32),
        transaction_name_chars: Some(128),
        application_data_chars: Some(2000),
        resource_id_chars: Some(256),
        client_id_chars: Some(64),
        branch_type_chars: Some(8),
        lock_table_chars: Some(32),
        lock_pk_chars: Some(36),
        lock_row_key_chars: Some(128),
        lease_chars: Some(20),
        nul_allowed,
    }
}

/// `?` → `$1`, `$2`, … (no statement here has a `?` inside a literal).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
    }
}
