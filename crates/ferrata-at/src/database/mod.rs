//! The per-database part of AT: SQL text for the `undo_log` table, the sqlx calls, value
//! decoding and binding, error classification. Sealed: `sqlx::MySql` (MariaDB too), `sqlx::Postgres`.

/// The sealed trait's methods that read the same for every sqlx database (written once,
/// expanded in each implementation, since generic code cannot name sqlx's executor bounds).
#[cfg(any(feature = "mysql", feature = "postgres"))]
macro_rules! same_on_every_database {
    () => {
        fn fetch_all<'a>(
            conn: &'a mut Self::Connection,
            sql: &'a str,
            args: Self::Arguments<'a>,
        ) -> impl std::future::Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a {
            sqlx::query_with(sql, args).fetch_all(conn)
        }

        async fn execute<'a>(
            conn: &'a mut Self::Connection,
            sql: &'a str,
            args: Self::Arguments<'a>,
        ) -> Result<u64, sqlx::Error> {
            Ok(sqlx::query_with(sql, args)
                .execute(conn)
                .await?
                .rows_affected())
        }

        fn decode_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error> {
            use sqlx::Row;
            row.try_get(index)
        }

        fn decode_undo_row(row: &Self::Row) -> Result<(String, Vec<u8>, i32), sqlx::Error> {
            use sqlx::Row;
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        }
    };
}
#[cfg(any(feature = "mysql", feature = "postgres"))]
use same_on_every_database;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "mysql")]
mod mysql_values;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_values;
mod values;

pub use values::{TimeZone, ValueError, same_value};

/// Seata's default undo table (`client.undo.logTable`).
pub const DEFAULT_UNDO_TABLE: &str = "undo_log";
/// Rows deleted per statement by the age-based cleanup (Java's batch size).
pub const CLEANUP_BATCH_ROWS: u32 = 3000;

/// Why a table name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "undo table name {0:?} is not a plain identifier (letters, digits and '_', optionally schema-qualified)"
)]
pub struct BadTableName(pub String);

/// Accepts `name` or `schema.name` of plain identifiers only: the name is put into SQL text.
pub fn check_undo_table_name(table: &str) -> Result<(), BadTableName> {
    let plain = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|part| plain(part)) {
        Ok(())
    } else {
        Err(BadTableName(table.to_owned()))
    }
}

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) mod sealed {
    /// The undo-table statements of one dialect, with the table name filled in. Parameters:
    /// `insert` (branch_id, xid, context, rollback_info, log_status); `select_for_update` and
    /// `delete` (branch_id, xid); `delete_older` (age in days).
    #[derive(Debug, Clone)]
    pub struct UndoSql {
        pub insert: String,
        pub select_for_update: String,
        pub delete: String,
        pub delete_older: String,
        /// Seata's DDL for the table, one statement per entry.
        pub create_table: Vec<String>,
    }

    pub trait Dialect: sqlx::Database {
        /// How the SQL layer parses and writes this database's statements.
        const SQL: crate::sql::Dialect;

        /// The resource id a Java DataSourceProxy reports for the same database (its JDBC
        /// URL without the query string), so that Java and Rust resource managers of one
        /// database share branches and locks.
        fn resource_id(options: &<Self::Connection as sqlx::Connection>::Options) -> String;

        /// Reads a table's metadata (`table` as written in SQL).
        fn load_meta(
            conn: &mut Self::Connection,
            table: &str,
        ) -> impl std::future::Future<
            Output = Result<crate::meta::TableMeta, crate::meta::MetaError>,
        > + Send;

        /// Runs a query and returns its rows.
        fn fetch_all<'a>(
            conn: &'a mut Self::Connection,
            sql: &'a str,
            args: Self::Arguments<'a>,
        ) -> impl std::future::Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

        /// Runs a statement and returns the number of rows it changed.
        fn execute<'a>(
            conn: &'a mut Self::Connection,
            sql: &'a str,
            args: Self::Arguments<'a>,
        ) -> impl std::future::Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

        /// Reads an integer column (a count, an id).
        fn decode_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error>;

        /// Reads an undo row selected as (context, rollback_info, log_status).
        fn decode_undo_row(row: &Self::Row) -> Result<(String, Vec<u8>, i32), sqlx::Error>;

        /// `table` has passed `check_undo_table_name`.
        fn undo_sql(table: &str) -> UndoSql;

        /// `DELETE` of `count` (branch_id, xid) pairs: parameters are the branch ids, then the
        /// xids (Java's `branch_id IN (…) AND xid IN (…)`).
        fn delete_many_sql(table: &str, count: usize) -> String;

        /// A unique-key violation (an undo row for this xid and branch exists already).
        fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool;

        /// Reads column `index` of `row` as the `Value` a Java resource manager (Connector/J /
        /// PgJDBC + Seata) would have recorded for a column described by `column`.
        fn decode_value(
            row: &Self::Row,
            index: usize,
            column: &crate::meta::ColumnMeta,
            zone: crate::database::TimeZone,
        ) -> Result<crate::undo::Value, crate::database::ValueError>;

        /// Appends `value` to `args` as a parameter; typed for `column` when it is known (image
        /// queries, compensating SQL in a rollback), by the value's own type when not (values
        /// the application bound to its statement).
        fn bind_value<'q>(
            args: &mut Self::Arguments<'q>,
            value: &crate::undo::Value,
            column: Option<&crate::meta::ColumnMeta>,
            zone: crate::database::TimeZone,
        ) -> Result<(), crate::database::ValueError>;
    }
}

/// The databases AT runs on: `sqlx::MySql` (feature `mysql`, also MariaDB) and
/// `sqlx::Postgres` (feature `postgres`).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub trait AtDatabase: sealed::Dialect {}

/// `Dialect::decode_value` (sealed) for callers outside the crate (and its tests).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub fn decode_value<DB: AtDatabase>(
    row: &DB::Row,
    index: usize,
    column: &crate::meta::ColumnMeta,
    zone: TimeZone,
) -> Result<crate::undo::Value, ValueError> {
    DB::decode_value(row, index, column, zone)
}

/// `Dialect::bind_value` (sealed) for callers outside the crate (and its tests).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub fn bind_value<'q, DB: AtDatabase>(
    args: &mut DB::Arguments<'q>,
    value: &crate::undo::Value,
    column: Option<&crate::meta::ColumnMeta>,
    zone: TimeZone,
) -> Result<(), ValueError> {
    DB::bind_value(args, value, column, zone)
}

/// `jdbc:<scheme>://host:port/database`, the resource id of a JDBC data source. A `,` would
/// split the id in the RM registration's list, so it becomes `|` as Java does.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) fn jdbc_url(scheme: &str, host: &str, port: u16, database: Option<&str>) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!(
        "jdbc:{scheme}://{host}:{port}/{}",
        database.unwrap_or_default()
    )
    .replace(',', "|")
}

/// Arguments for `values` bound by their own types (no column metadata).
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) fn arguments<'a, DB: AtDatabase>(
    values: &[crate::undo::Value],
    zone: TimeZone,
) -> Result<DB::Arguments<'a>, ValueError> {
    let mut args = DB::Arguments::default();
    for value in values {
        DB::bind_value(&mut args, value, None, zone)?;
    }
    Ok(args)
}

/// `?, ?, …` or `$first, $first+1, …`.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) fn placeholders(count: usize, dollar_from: Option<usize>) -> String {
    (0..count)
        .map(|i| match dollar_from {
            Some(first) => format!("${}", first + i),
            None => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "mysql", feature = "postgres"))]
    #[test]
    fn resource_ids_are_jdbc_urls_without_parameters() {
        assert_eq!(
            jdbc_url("mysql", "127.0.0.1", 3306, Some("bank")),
            "jdbc:mysql://127.0.0.1:3306/bank"
        );
        assert_eq!(
            jdbc_url("postgresql", "::1", 5432, Some("a,b")),
            "jdbc:postgresql://[::1]:5432/a|b"
        );
    }

    #[test]
    fn only_plain_table_names_reach_sql_text() {
        assert!(check_undo_table_name("undo_log").is_ok());
        assert!(check_undo_table_name("app.undo_log").is_ok());
        for bad in ["", "undo log", "a.b.c", "1x", "undo_log;drop", "`undo`"] {
            assert!(check_undo_table_name(bad).is_err(), "{bad}");
        }
    }
}
