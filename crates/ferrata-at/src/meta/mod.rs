//! Table metadata the AT executor needs (columns in order, primary and unique keys, JDBC type
//! codes as Java's resource manager records them), read from the database and cached per table.

pub mod jdbc;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[cfg(feature = "mysql")]
pub use mysql::load_mysql;
#[cfg(feature = "postgres")]
pub use postgres::load_postgres;

/// One column of a table, in the table's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMeta {
    /// The column name as the database stores it.
    pub name: String,
    /// The database's type name in lower case, without size or modifiers (`bigint`,
    /// `varchar`, `timestamp with time zone`).
    pub data_type: String,
    /// The full type as declared (`bigint(20) unsigned`, `numeric(10,2)`).
    pub column_type: String,
    /// The JDBC type code Java records for the column in undo logs.
    pub jdbc_type: i32,
    pub nullable: bool,
    /// Filled by the database when an INSERT leaves it out: AUTO_INCREMENT, SERIAL, identity.
    pub generated_key: bool,
    /// MySQL `ON UPDATE CURRENT_TIMESTAMP`: changed by every UPDATE, so tracked in its images.
    pub on_update: bool,
}

/// What AT needs to know about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// The table's name as the database stores it (without schema), used in lock keys.
    pub table_name: String,
    /// The schema (MySQL database) the table was found in.
    pub schema: String,
    pub columns: Vec<ColumnMeta>,
    /// Primary-key column names in key order; never empty (tables without one are refused).
    pub primary_key: Vec<String>,
    /// Other unique keys, each in key order (INSERT … ON DUPLICATE KEY / ON CONFLICT).
    pub unique_keys: Vec<Vec<String>>,
}

impl TableMeta {
    pub fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn is_primary_key(&self, column: &str) -> bool {
        self.primary_key
            .iter()
            .any(|key| key.eq_ignore_ascii_case(column))
    }
}

/// Why a table's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("table {0} not found")]
    NotFound(String),
    #[error(
        "table {0} has no primary key; AT needs one to record and restore rows (add a primary key or leave the table out of global transactions)"
    )]
    NoPrimaryKey(String),
    #[cfg(any(feature = "mysql", feature = "postgres"))]
    #[error("reading the metadata of table {table}: {source}")]
    Database {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Table metadata by the table name as written in SQL; entries live until [`MetaCache::forget`]
/// (a schema change) since tables are few and their shape rarely changes.
#[derive(Debug, Default, Clone)]
pub struct MetaCache {
    tables: Arc<RwLock<HashMap<String, Arc<TableMeta>>>>,
}

impl MetaCache {
    pub fn get(&self, table: &str) -> Option<Arc<TableMeta>> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .cloned()
    }

    pub fn insert(&self, table: &str, meta: TableMeta) -> Arc<TableMeta> {
        let meta = Arc::new(meta);
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.to_owned(), meta.clone());
        meta
    }

    /// Drops what is known about `table`, so that the next statement reads it again.
    pub fn forget(&self, table: &str) {
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(table);
    }
}

/// Splits a table name as written in SQL (`t`, `s.t`, `` `s`.`t` ``, `"S"."t"`) into its
/// unquoted schema and name. `fold_lower` folds unquoted parts to lower case (PostgreSQL).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn split_table_name(
    written: &str,
    quote: char,
    fold_lower: bool,
) -> (Option<String>, String) {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = written.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            if quoted && chars.peek() == Some(&quote) {
                current.push(quote);
                chars.next();
            } else {
                quoted = !quoted;
                was_quoted = true;
            }
        } else if c == '.' && !quoted {
            parts.push(finish_part(&mut current, was_quoted, fold_lower));
            was_quoted = false;
        } else {
            current.push(c);
        }
    }
    parts.push(finish_part(&mut current, was_quoted, fold_lower));
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

fn finish_part(current: &mut String, was_quoted: bool, fold_lower: bool) -> String {
    let part = std::mem::take(current);
    if fold_lower && !was_quoted {
        part.to_lowercase()
    } else {
        part
    }
}

/// Groups (index, column) rows ordered by index and position into the primary key and the
/// other unique keys.
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub(crate) fn group_keys(
    rows: Vec<(String, String)>,
    is_primary: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<Vec<String>>) {
    let mut primary = Vec::new();
    let mut unique: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        if is_primary(&index) {
            primary.push(column);
        } else {
            match unique.last_mut() {
                Some((name, columns)) if *name == index => columns.push(column),
                _ => unique.push((index, vec![column])),
            }
        }
    }
    (
        primary,
        unique.into_iter().map(|(_, columns)| columns).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_split_on_unquoted_dots_only() {
        assert_eq!(
            split_table_name("account", '`', false),
            (None, "account".into())
        );
        assert_eq!(
            split_table_name("`bank`.`acc.ount`", '`', false),
            (Some("bank".into()), "acc.ount".into())
        );
        assert_eq!(
            split_table_name("Public.\"Mixed\"\"Case\"", '"', true),
            (Some("public".into()), "Mixed\"Case".into())
        );
        assert_eq!(
            split_table_name("ACCOUNT", '"', true),
            (None, "account".into())
        );
    }
}
