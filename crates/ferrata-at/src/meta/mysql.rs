//! Table metadata from a MySQL/MariaDB server's information_schema.

use sqlx::MySqlConnection;

use super::{ColumnMeta, MetaError, TableMeta, group_keys, split_table_name};

// CAST(… AS CHAR): MariaDB reports some information_schema columns as binary strings.
const COLUMNS_SQL: &str = "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
     CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
     CAST(IS_NULLABLE AS CHAR), CAST(EXTRA AS CHAR) \
     FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
     ORDER BY ORDINAL_POSITION";

const KEYS_SQL: &str = "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
     FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
     ORDER BY INDEX_NAME, SEQ_IN_INDEX";

/// Reads the metadata of `table` (as written in SQL: `t`, `db.t`, `` `t` ``).
pub async fn load_mysql(conn: &mut MySqlConnection, table: &str) -> Result<TableMeta, MetaError> {
    let (schema, name) = split_table_name(table, '`', false);
    let database = |source| MetaError::Database {
        table: table.to_owned(),
        source,
    };
    type ColumnRow = (String, String, String, String, String, String, String);
    let rows: Vec<ColumnRow> = sqlx::query_as(COLUMNS_SQL)
        .bind(schema.as_deref())
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(database)?;
    let Some((found_schema, found_name, ..)) = rows.first().cloned() else {
        return Err(MetaError::NotFound(table.to_owned()));
    };
    let columns = rows
        .into_iter()
        .map(|(_, _, name, data_type, column_type, nullable, extra)| {
            let extra = extra.to_ascii_lowercase();
            ColumnMeta {
                jdbc_type: super::jdbc::of_mysql(&data_type, &column_type),
                data_type: data_type.to_ascii_lowercase(),
                column_type,
                nullable: nullable.eq_ignore_ascii_case("YES"),
                generated_key: extra.contains("auto_increment"),
                on_update: extra.contains("on update"),
                name,
            }
        })
        .collect();
    let keys: Vec<(String, String)> = sqlx::query_as(KEYS_SQL)
        .bind(&found_schema)
        .bind(&found_name)
        .fetch_all(&mut *conn)
        .await
        .map_err(database)?;
    let (primary_key, unique_keys) = group_keys(keys, |index| index == "PRIMARY");
    if primary_key.is_empty() {
        return Err(MetaError::NoPrimaryKey(table.to_owned()));
    }
    Ok(TableMeta {
        table_name: found_name,
        schema: found_schema,
        columns,
        primary_key,
        unique_keys,
    })
}
