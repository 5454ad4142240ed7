//! AT's SQL on PostgreSQL: `$n` placeholders, `now()` for Seata's `TIMESTAMP(0)` columns, the
//! `id` filled by its SERIAL default, errors told apart by SQLSTATE.

use sqlx::Postgres;
use sqlx::error::DatabaseError;

use super::sealed::{Dialect, UndoSql};
use super::{AtDatabase, CLEANUP_BATCH_ROWS, jdbc_url, placeholders};

/// `unique_violation`.
const DUPLICATE_KEY: &str = "23505";

impl AtDatabase for Postgres {}

impl Dialect for Postgres {
    const SQL: crate::sql::Dialect = crate::sql::Dialect::Postgres;

    fn resource_id(options: &sqlx::postgres::PgConnectOptions) -> String {
        jdbc_url(
            "postgresql",
            options.get_host(),
            options.get_port(),
            options.get_database(),
        )
    }

    async fn load_meta(
        conn: &mut sqlx::PgConnection,
        table: &str,
    ) -> Result<crate::meta::TableMeta, crate::meta::MetaError> {
        crate::meta::load_postgres(conn, table).await
    }

    super::same_on_every_database!();

    fn undo_sql(table: &str) -> UndoSql {
        // Index names are per schema in PostgreSQL: derive them from the table's own name.
        let bare = table.rsplit('.').next().unwrap_or(table);
        // Seata's own index name for its default table, so that running this DDL over Seata's
        // adds no second index.
        let index = if bare == super::DEFAULT_UNDO_TABLE {
            "ix_log_created".to_owned()
        } else {
            format!("ix_{bare}_log_created")
        };
        UndoSql {
            insert: format!(
                "INSERT INTO {table} (branch_id, xid, context, rollback_info, log_status, \
                 log_created, log_modified) VALUES ($1, $2, $3, $4, $5, now(), now())"
            ),
            select_for_update: format!(
                "SELECT context, rollback_info, log_status FROM {table} \
                 WHERE branch_id = $1 AND xid = $2 FOR UPDATE"
            ),
            delete: format!("DELETE FROM {table} WHERE branch_id = $1 AND xid = $2"),
            delete_older: format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE log_created <= now() - make_interval(days => $1) \
                 LIMIT {CLEANUP_BATCH_ROWS})"
            ),
            // Seata's script/client/at/db/postgresql.sql, made idempotent.
            create_table: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (
                        id SERIAL NOT NULL,
                        branch_id BIGINT NOT NULL,
                        xid VARCHAR(128) NOT NULL,
                        context VARCHAR(128) NOT NULL,
                        rollback_info BYTEA NOT NULL,
                        log_status INT NOT NULL,
                        log_created TIMESTAMP(0) NOT NULL,
                        log_modified TIMESTAMP(0) NOT NULL,
                        CONSTRAINT pk_{bare} PRIMARY KEY (id),
                        CONSTRAINT ux_{bare} UNIQUE (xid, branch_id)
                    )"
                ),
                format!("CREATE INDEX IF NOT EXISTS {index} ON {table} (log_created)"),
            ],
        }
    }

    fn delete_many_sql(table: &str, count: usize) -> String {
        format!(
            "DELETE FROM {table} WHERE branch_id IN ({}) AND xid IN ({})",
            placeholders(count, Some(1)),
            placeholders(count, Some(count + 1))
        )
    }

    fn is_duplicate_key(error: &dyn DatabaseError) -> bool {
        error.code().as_deref() == Some(DUPLICATE_KEY)
    }

    fn decode_value(
        row: &sqlx::postgres::PgRow,
        index: usize,
        column: &crate::meta::ColumnMeta,
        zone: super::TimeZone,
    ) -> Result<crate::undo::Value, super::ValueError> {
        super::postgres_values::decode_value(row, index, column, zone)
    }

    fn bind_value<'q>(
        args: &mut sqlx::postgres::PgArguments,
        value: &crate::undo::Value,
        column: Option<&crate::meta::ColumnMeta>,
        zone: super::TimeZone,
    ) -> Result<(), super::ValueError> {
        super::postgres_values::bind_value(args, value, column, zone)
    }
}
