//! Each database's part of the outbox: the two tables' DDL, the few statements the producer,
//! its check and the consumer run, and how a duplicate key shows in an error.

use std::future::Future;

use crate::error::OutboxError;

/// The producer's table on MySQL/MariaDB, default name: one row per message whose fate is
/// known, written by the local transaction (`committed`) or by the check (`rolledback`).
pub const PRODUCER_DDL_MYSQL: &str = "CREATE TABLE IF NOT EXISTS ferrata_outbox (
    xid        VARCHAR(128) NOT NULL,
    state      VARCHAR(16)  NOT NULL,
    gmt_create DATETIME(3)  NOT NULL,
    PRIMARY KEY (xid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

/// The producer's table on PostgreSQL, default name.
pub const PRODUCER_DDL_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS ferrata_outbox (
    xid        VARCHAR(128) NOT NULL,
    state      VARCHAR(16)  NOT NULL,
    gmt_create TIMESTAMP(3) NOT NULL,
    PRIMARY KEY (xid)
)";

/// The consumer's deduplication table on MySQL/MariaDB, default name: one row per delivery
/// done, written in the same local transaction as the consumer's work.
pub const CONSUMER_DDL_MYSQL: &str = "CREATE TABLE IF NOT EXISTS ferrata_outbox_received (
    xid        VARCHAR(128) NOT NULL,
    branch_id  BIGINT       NOT NULL,
    gmt_create DATETIME(3)  NOT NULL,
    PRIMARY KEY (xid, branch_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

/// The consumer's deduplication table on PostgreSQL, default name.
pub const CONSUMER_DDL_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS ferrata_outbox_received (
    xid        VARCHAR(128) NOT NULL,
    branch_id  BIGINT       NOT NULL,
    gmt_create TIMESTAMP(3) NOT NULL,
    PRIMARY KEY (xid, branch_id)
)";

/// The producer's default table name.
pub const DEFAULT_PRODUCER_TABLE: &str = "ferrata_outbox";
/// The consumer's default table name.
pub const DEFAULT_CONSUMER_TABLE: &str = "ferrata_outbox_received";

/// What the producer's row says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The local transaction that recorded the message committed: deliver it.
    Committed,
    /// The check ran before any local transaction recorded it: it never will.
    RolledBack,
}

pub(crate) const COMMITTED: &str = "committed";
pub(crate) const ROLLED_BACK: &str = "rolledback";

impl State {
    fn parse(text: &str) -> Option<State> {
        match text {
            COMMITTED => Some(State::Committed),
            ROLLED_BACK => Some(State::RolledBack),
            _ => None,
        }
    }
}

/// Table names are spliced into SQL text, so only plain identifiers (optionally
/// schema-qualified) are accepted.
pub(crate) fn check_table_name(table: &str) -> Result<(), OutboxError> {
    let plain = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 63
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| plain(p)) {
        Ok(())
    } else {
        Err(OutboxError::BadTableName(table.to_owned()))
    }
}

pub(crate) mod sealed {
    use super::*;

    /// One database's statements. Sealed: implemented for `sqlx::MySql` (also MariaDB) and
    /// `sqlx::Postgres` only. `table` has always passed `check_table_name`.
    pub trait Dialect: sqlx::Database {
        fn producer_ddl(table: &str) -> String;

        fn consumer_ddl(table: &str) -> String;

        /// Inserts `(xid, 'committed')`; a duplicate key is an error the caller recognises.
        fn insert_committed<'a>(
            conn: &'a mut Self::Connection,
            table: &'a str,
            xid: &'a str,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

        /// Inserts `(xid, 'rolledback')` unless a row exists (waiting for an uncommitted one to
        /// commit or roll back), then reads the row, locked.
        fn insert_rolled_back_or_read<'a>(
            conn: &'a mut Self::Connection,
            table: &'a str,
            xid: &'a str,
        ) -> impl Future<Output = Result<Option<String>, sqlx::Error>> + Send + 'a;

        /// Inserts `(xid, branch_id)`; a duplicate key is an error the caller recognises.
        fn insert_received<'a>(
            conn: &'a mut Self::Connection,
            table: &'a str,
            xid: &'a str,
            branch_id: i64,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

        fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool;

        /// Runs statements without parameters (DDL).
        fn execute_raw<'a>(
            conn: &'a mut Self::Connection,
            sql: &'a str,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    }
}

/// The databases the outbox runs on: `sqlx::MySql` (feature `mysql`, also MariaDB) and
/// `sqlx::Postgres` (feature `postgres`).
pub trait OutboxDatabase: sealed::Dialect {}

pub(crate) fn is_duplicate_key<DB: OutboxDatabase>(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(DB::is_duplicate_key)
}

pub(crate) fn parse_state(text: Option<String>) -> Option<State> {
    text.as_deref().and_then(State::parse)
}

/// The producer table's DDL for `table` on `DB` (the `PRODUCER_DDL_*` text when it is the
/// default name).
pub fn producer_ddl<DB: OutboxDatabase>(table: &str) -> Result<String, OutboxError> {
    check_table_name(table)?;
    Ok(DB::producer_ddl(table))
}

/// The consumer table's DDL for `table` on `DB`.
pub fn consumer_ddl<DB: OutboxDatabase>(table: &str) -> Result<String, OutboxError> {
    check_table_name(table)?;
    Ok(DB::consumer_ddl(table))
}

#[cfg(feature = "mysql")]
mod mysql {
    use sqlx::MySql;
    use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};

    use super::*;

    /// `ER_DUP_ENTRY`.
    const DUPLICATE_KEY: u16 = 1062;

    impl OutboxDatabase for MySql {}

    impl sealed::Dialect for MySql {
        fn producer_ddl(table: &str) -> String {
            PRODUCER_DDL_MYSQL.replacen(DEFAULT_PRODUCER_TABLE, table, 1)
        }

        fn consumer_ddl(table: &str) -> String {
            CONSUMER_DDL_MYSQL.replacen(DEFAULT_CONSUMER_TABLE, table, 1)
        }

        async fn insert_committed<'a>(
            conn: &'a mut MySqlConnection,
            table: &'a str,
            xid: &'a str,
        ) -> Result<(), sqlx::Error> {
            let sql = format!("INSERT INTO {table} (xid, state, gmt_create) VALUES (?, ?, NOW(3))");
            sqlx::query(&sql)
                .bind(xid)
                .bind(COMMITTED)
                .execute(conn)
                .await
                .map(|_| ())
        }

        async fn insert_rolled_back_or_read<'a>(
            conn: &'a mut MySqlConnection,
            table: &'a str,
            xid: &'a str,
        ) -> Result<Option<String>, sqlx::Error> {
            // Not INSERT IGNORE, which would also hide a value that does not fit.
            let insert = format!(
                "INSERT INTO {table} (xid, state, gmt_create) VALUES (?, ?, NOW(3)) \
                 ON DUPLICATE KEY UPDATE xid = xid"
            );
            sqlx::query(&insert)
                .bind(xid)
                .bind(ROLLED_BACK)
                .execute(&mut *conn)
                .await?;
            // A locking read sees the latest committed row whatever the isolation level.
            let select = format!("SELECT state FROM {table} WHERE xid = ? FOR UPDATE");
            sqlx::query_scalar(&select)
                .bind(xid)
                .fetch_optional(conn)
                .await
        }

        async fn insert_received<'a>(
            conn: &'a mut MySqlConnection,
            table: &'a str,
            xid: &'a str,
            branch_id: i64,
        ) -> Result<(), sqlx::Error> {
            let sql =
                format!("INSERT INTO {table} (xid, branch_id, gmt_create) VALUES (?, ?, NOW(3))");
            sqlx::query(&sql)
                .bind(xid)
                .bind(branch_id)
                .execute(conn)
                .await
                .map(|_| ())
        }

        async fn execute_raw<'a>(
            conn: &'a mut MySqlConnection,
            sql: &'a str,
        ) -> Result<(), sqlx::Error> {
            sqlx::Executor::execute(conn, sql).await.map(|_| ())
        }

        fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool {
            error
                .try_downcast_ref::<MySqlDatabaseError>()
                .is_some_and(|e| e.number() == DUPLICATE_KEY)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::Postgres;
    use sqlx::postgres::PgConnection;

    use super::*;

    /// `unique_violation`.
    const DUPLICATE_KEY: &str = "23505";

    impl OutboxDatabase for Postgres {}

    impl sealed::Dialect for Postgres {
        fn producer_ddl(table: &str) -> String {
            PRODUCER_DDL_POSTGRES.replacen(DEFAULT_PRODUCER_TABLE, table, 1)
        }

        fn consumer_ddl(table: &str) -> String {
            CONSUMER_DDL_POSTGRES.replacen(DEFAULT_CONSUMER_TABLE, table, 1)
        }

        async fn insert_committed<'a>(
            conn: &'a mut PgConnection,
            table: &'a str,
            xid: &'a str,
        ) -> Result<(), sqlx::Error> {
            let sql = format!(
                "INSERT INTO {table} (xid, state, gmt_create) VALUES ($1, $2, CURRENT_TIMESTAMP)"
            );
            sqlx::query(&sql)
                .bind(xid)
                .bind(COMMITTED)
                .execute(conn)
                .await
                .map(|_| ())
        }

        async fn insert_rolled_back_or_read<'a>(
            conn: &'a mut PgConnection,
            table: &'a str,
            xid: &'a str,
        ) -> Result<Option<String>, sqlx::Error> {
            // ON CONFLICT waits for an uncommitted insert of the same key to end, and does
            // not abort the transaction as a failed plain INSERT would.
            let insert = format!(
                "INSERT INTO {table} (xid, state, gmt_create) VALUES ($1, $2, CURRENT_TIMESTAMP) \
                 ON CONFLICT (xid) DO NOTHING"
            );
            sqlx::query(&insert)
                .bind(xid)
                .bind(ROLLED_BACK)
                .execute(&mut *conn)
                .await?;
            let select = format!("SELECT state FROM {table} WHERE xid = $1 FOR UPDATE");
            sqlx::query_scalar(&select)
                .bind(xid)
                .fetch_optional(conn)
                .await
        }

        async fn insert_received<'a>(
            conn: &'a mut PgConnection,
            table: &'a str,
            xid: &'a str,
            branch_id: i64,
        ) -> Result<(), sqlx::Error> {
            let sql = format!(
                "INSERT INTO {table} (xid, branch_id, gmt_create) \
                 VALUES ($1, $2, CURRENT_TIMESTAMP)"
            );
            sqlx::query(&sql)
                .bind(xid)
                .bind(branch_id)
                .execute(conn)
                .await
                .map(|_| ())
        }

        async fn execute_raw<'a>(
            conn: &'a mut PgConnection,
            sql: &'a str,
        ) -> Result<(), sqlx::Error> {
            sqlx::Executor::execute(conn, sql).await.map(|_| ())
        }

        fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool {
            error.code().as_deref() == Some(DUPLICATE_KEY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_must_be_plain_identifiers() {
        assert!(check_table_name("ferrata_outbox").is_ok());
        assert!(check_table_name("app.ferrata_outbox").is_ok());
        for bad in ["", "a;drop", "a.b.c", "1abc", "a b"] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn states_are_read_back_by_their_text() {
        assert_eq!(
            parse_state(Some("committed".into())),
            Some(State::Committed)
        );
        assert_eq!(
            parse_state(Some("rolledback".into())),
            Some(State::RolledBack)
        );
        assert_eq!(parse_state(Some("other".into())), None);
        assert_eq!(parse_state(None), None);
    }
}
