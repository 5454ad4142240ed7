//! Reading row images: a query's rows decoded column by column into undo `Row`s (as Java's
//! resource manager records them), and the primary keys of images for after-image queries and
//! lock keys.

use crate::database::{AtDatabase, TimeZone};
use crate::error::AtError;
use crate::lock_key::LockKeys;
use crate::meta::{ColumnMeta, TableMeta};
use crate::sql::{MAX_IN_ROWS, PkPredicate, TableRef, after_image_query};
use crate::undo::{Field, Row, TableRecords, Value};

/// The metadata of each named column, in the order given.
pub(crate) fn columns_of<'m>(
    meta: &'m TableMeta,
    names: &[&str],
) -> Result<Vec<&'m ColumnMeta>, AtError> {
    names
        .iter()
        .map(|name| {
            meta.column(name).ok_or_else(|| {
                AtError::Meta(crate::meta::MetaError::NotFound(format!(
                    "{}.{name}",
                    meta.table_name
                )))
            })
        })
        .collect()
}

/// Runs `sql` with `args` and reads every row as an image row whose columns are `columns`
/// (the query's select list, in order).
pub(crate) async fn read_rows<'a, DB: AtDatabase>(
    conn: &'a mut DB::Connection,
    sql: &'a str,
    args: DB::Arguments<'a>,
    meta: &TableMeta,
    columns: &[&ColumnMeta],
    zone: TimeZone,
) -> Result<Vec<Row>, AtError> {
    let rows = DB::fetch_all(conn, sql, args).await?;
    let mut image = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut fields = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let value = DB::decode_value(row, index, column, zone)?;
            fields.push(if meta.is_primary_key(&column.name) {
                Field::key(column.name.clone(), column.jdbc_type, value)
            } else {
                Field::new(column.name.clone(), column.jdbc_type, value)
            });
        }
        image.push(Row::new(fields));
    }
    Ok(image)
}

/// The primary-key values of `row` in key order.
pub(crate) fn key_values<'r>(meta: &TableMeta, row: &'r Row) -> Vec<&'r Field> {
    meta.primary_key
        .iter()
        .filter_map(|key| row.fields.iter().find(|f| f.name.eq_ignore_ascii_case(key)))
        .collect()
}

/// Re-reads rows by primary key (`keys`: one entry per row, values in key order), in chunks of
/// at most [`MAX_IN_ROWS`], selecting `columns`.
pub(crate) async fn rows_by_key<DB: AtDatabase>(
    conn: &mut DB::Connection,
    table: &TableRef,
    meta: &TableMeta,
    columns: &[&ColumnMeta],
    keys: &[Vec<Value>],
    zone: TimeZone,
) -> Result<Vec<Row>, AtError> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let key_names: Vec<&str> = meta.primary_key.iter().map(String::as_str).collect();
    let key_columns = columns_of(meta, &key_names)?;
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_IN_ROWS) {
        let sql = after_image_query(
            DB::SQL,
            table,
            &names,
            &key_names,
            chunk.len(),
            PkPredicate::for_dialect(DB::SQL, key_names.len()),
        );
        let mut args = DB::Arguments::default();
        for key in chunk {
            for (value, column) in key.iter().zip(&key_columns) {
                DB::bind_value(&mut args, value, Some(column), zone)?;
            }
        }
        rows.extend(read_rows::<DB>(conn, &sql, args, meta, columns, zone).await?);
    }
    Ok(rows)
}

/// The key values of each row of an image, for [`rows_by_key`].
pub(crate) fn keys_of(meta: &TableMeta, rows: &[Row]) -> Vec<Vec<Value>> {
    rows.iter()
        .map(|row| {
            key_values(meta, row)
                .into_iter()
                .map(|f| f.value.clone())
                .collect()
        })
        .collect()
}

/// Adds the rows of an image to a branch's lock keys.
pub(crate) fn lock_rows(
    locks: &mut LockKeys,
    table: &str,
    meta: &TableMeta,
    rows: &[Row],
) -> Result<(), AtError> {
    for row in rows {
        let key: Vec<String> = key_values(meta, row)
            .into_iter()
            .map(|f| key_token(&f.value))
            .collect();
        locks.add_row(table, &key)?;
    }
    Ok(())
}

/// A key value as Java's `String.valueOf` renders it in lock keys.
pub(crate) fn key_token(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::BigInteger(n) => n.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        Value::String(s) | Value::Time(s) | Value::Clob(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// An image of `rows` of `table`, or Java's empty image when there are none.
pub(crate) fn image(table: &str, rows: Vec<Row>) -> TableRecords {
    if rows.is_empty() {
        TableRecords::empty()
    } else {
        TableRecords::new(table, rows)
    }
}
