//! The XA statements of each database: MySQL/MariaDB's `XA START … XA PREPARE`, PostgreSQL's
//! `BEGIN … PREPARE TRANSACTION`. They run unprepared (MySQL refuses XA statements in the
//! prepared-statement protocol).

use std::future::Future;

use crate::xid::XaId;

/// A database that can run XA branches.
pub trait XaDatabase: sqlx::Database {
    /// Whether a prepared branch stays tied to the session that prepared it: MariaDB (and
    /// MySQL before 8.0.29) finish it only there while that session lives, so the connection
    /// is held until phase 2.
    const HOLDS_PREPARED: bool;

    /// Starts the branch's transaction on `conn`.
    fn start<'a>(
        conn: &'a mut Self::Connection,
        id: &'a XaId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Ends phase one: the branch's changes are prepared (durable, invisible, locks held).
    fn prepare<'a>(
        conn: &'a mut Self::Connection,
        id: &'a XaId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Abandons a branch that was started and not prepared.
    fn rollback_active<'a>(
        conn: &'a mut Self::Connection,
        id: &'a XaId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Commits a prepared branch.
    fn commit_prepared<'a>(
        conn: &'a mut Self::Connection,
        id: &'a XaId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Rolls back a prepared branch.
    fn rollback_prepared<'a>(
        conn: &'a mut Self::Connection,
        id: &'a XaId,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Every prepared branch with a Seata XA id in this database.
    fn recover(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<XaId>, sqlx::Error>> + Send + '_;

    /// Whether `error` says the database does not know the XA id (XAER_NOTA).
    fn is_unknown_xa_id(error: &sqlx::Error) -> bool;
}

#[cfg(feature = "mysql")]
mod mysql {
    use sqlx::mysql::{MySql, MySqlConnection, MySqlDatabaseError};
    use sqlx::{Executor as _, Row as _};

    use super::*;

    /// MySQL's ER_XAER_NOTA.
    const XAER_NOTA: u16 = 1397;

    async fn run(conn: &mut MySqlConnection, sql: String) -> Result<(), sqlx::Error> {
        conn.execute(sqlx::raw_sql(&sql)).await.map(|_| ())
    }

    impl XaDatabase for MySql {
        const HOLDS_PREPARED: bool = true;

        fn start<'a>(
            conn: &'a mut MySqlConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("XA START {}", id.mysql_literal()))
        }

        async fn prepare(conn: &mut MySqlConnection, id: &XaId) -> Result<(), sqlx::Error> {
            run(conn, format!("XA END {}", id.mysql_literal())).await?;
            run(conn, format!("XA PREPARE {}", id.mysql_literal())).await
        }

        async fn rollback_active(conn: &mut MySqlConnection, id: &XaId) -> Result<(), sqlx::Error> {
            // XA END fails when the statement that failed already ended the branch: go on.
            let _ = run(conn, format!("XA END {}", id.mysql_literal())).await;
            run(conn, format!("XA ROLLBACK {}", id.mysql_literal())).await
        }

        fn commit_prepared<'a>(
            conn: &'a mut MySqlConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("XA COMMIT {}", id.mysql_literal()))
        }

        fn rollback_prepared<'a>(
            conn: &'a mut MySqlConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("XA ROLLBACK {}", id.mysql_literal()))
        }

        async fn recover(conn: &mut MySqlConnection) -> Result<Vec<XaId>, sqlx::Error> {
            let rows = conn.fetch_all(sqlx::raw_sql("XA RECOVER")).await?;
            let mut ids = Vec::new();
            for row in rows {
                let format: i64 = row.try_get_unchecked(0)?;
                let gtrid_length: i64 = row.try_get_unchecked(1)?;
                let bqual_length: i64 = row.try_get_unchecked(2)?;
                let data: Vec<u8> = row.try_get_unchecked(3)?;
                let gtrid_end = usize::try_from(gtrid_length).unwrap_or(usize::MAX);
                let bqual_end =
                    gtrid_end.saturating_add(usize::try_from(bqual_length).unwrap_or(usize::MAX));
                let (Some(gtrid), Some(bqual)) =
                    (data.get(..gtrid_end), data.get(gtrid_end..bqual_end))
                else {
                    continue;
                };
                let format = i32::try_from(format).unwrap_or(-1);
                ids.extend(XaId::from_parts(format, gtrid, bqual));
            }
            Ok(ids)
        }

        fn is_unknown_xa_id(error: &sqlx::Error) -> bool {
            error
                .as_database_error()
                .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
                .is_some_and(|e| e.number() == XAER_NOTA)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::postgres::{PgConnection, Postgres};
    use sqlx::{Executor as _, Row as _};

    use super::*;

    /// PostgreSQL's undefined_object: "prepared transaction with identifier … does not exist".
    const UNDEFINED_OBJECT: &str = "42704";

    async fn run(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
        conn.execute(sqlx::raw_sql(&sql)).await.map(|_| ())
    }

    /// A gid as a string literal (base64 and digits only, but quoted the safe way anyway).
    fn literal(id: &XaId) -> String {
        format!("'{}'", id.postgres_gid().replace('\'', "''"))
    }

    impl XaDatabase for Postgres {
        const HOLDS_PREPARED: bool = false;

        fn start<'a>(
            conn: &'a mut PgConnection,
            _id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, "BEGIN".to_owned())
        }

        fn prepare<'a>(
            conn: &'a mut PgConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("PREPARE TRANSACTION {}", literal(id)))
        }

        fn rollback_active<'a>(
            conn: &'a mut PgConnection,
            _id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, "ROLLBACK".to_owned())
        }

        fn commit_prepared<'a>(
            conn: &'a mut PgConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("COMMIT PREPARED {}", literal(id)))
        }

        fn rollback_prepared<'a>(
            conn: &'a mut PgConnection,
            id: &'a XaId,
        ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a {
            run(conn, format!("ROLLBACK PREPARED {}", literal(id)))
        }

        async fn recover(conn: &mut PgConnection) -> Result<Vec<XaId>, sqlx::Error> {
            let rows = conn
                .fetch_all(sqlx::raw_sql(
                    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                ))
                .await?;
            let mut ids = Vec::new();
            for row in rows {
                let gid: String = row.try_get(0)?;
                ids.extend(XaId::from_postgres_gid(&gid));
            }
            Ok(ids)
        }

        fn is_unknown_xa_id(error: &sqlx::Error) -> bool {
            error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == UNDEFINED_OBJECT)
        }
    }
}
