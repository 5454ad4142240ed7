//! Table metadata from a PostgreSQL server's catalog, resolved like the statement's own name
//! (`to_regclass`: the search path, quoting and case folding all apply).

use sqlx::PgConnection;

use super::{ColumnMeta, MetaError, TableMeta};

const TABLE_SQL: &str = "SELECT n.nspname::text, c.relname::text, c.oid::int8 \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid = to_regclass($1)";

const COLUMNS_SQL: &str = "SELECT a.attname::text, t.typname::text, \
     format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
     (a.attidentity <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%') \
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

// Unique indexes (constraints or not), primary first; columns in key order.
const KEYS_SQL: &str = "SELECT CASE WHEN i.indisprimary THEN '' ELSE ic.relname::text END, \
     a.attname::text \
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indpred IS NULL \
     ORDER BY NOT i.indisprimary, ic.relname, k.position";

/// Reads the metadata of `table` (as written in SQL: `t`, `s.t`, `"T"`).
pub async fn load_postgres(conn: &mut PgConnection, table: &str) -> Result<TableMeta, MetaError> {
    let database = |source| MetaError::Database {
        table: table.to_owned(),
        source,
    };
    let found: Option<(String, String, i64)> = sqlx::query_as(TABLE_SQL)
        .bind(table)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database)?;
    let Some((schema, table_name, oid)) = found else {
        return Err(MetaError::NotFound(table.to_owned()));
    };
    let rows: Vec<(String, String, String, bool, bool)> = sqlx::query_as(COLUMNS_SQL)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(database)?;
    let columns = rows
        .into_iter()
        .map(
            |(name, type_name, column_type, nullable, generated_key)| ColumnMeta {
                jdbc_type: super::jdbc::of_postgres(&type_name),
                data_type: type_name,
                column_type,
                nullable,
                generated_key,
                on_update: false,
                name,
            },
        )
        .collect();
    let keys: Vec<(String, String)> = sqlx::query_as(KEYS_SQL)
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(database)?;
    let (primary_key, unique_keys) = super::group_keys(keys, str::is_empty);
    if primary_key.is_empty() {
        return Err(MetaError::NoPrimaryKey(table.to_owned()));
    }
    Ok(TableMeta {
        table_name,
        schema,
        columns,
        primary_key,
        unique_keys,
    })
}
