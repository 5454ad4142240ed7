//! The branch undo log as Seata's Java resource manager models it: a branch holds SQL undo
//! items, each with before and after images of the rows it changed.

use super::value::Value;

/// JDBC type codes (`java.sql.Types`) that undo images carry in `Field.type`.
pub mod jdbc_type {
    pub const BIT: i32 = -7;
    pub const TINYINT: i32 = -6;
    pub const SMALLINT: i32 = 5;
    pub const INTEGER: i32 = 4;
    pub const BIGINT: i32 = -5;
    pub const FLOAT: i32 = 6;
    pub const REAL: i32 = 7;
    pub const DOUBLE: i32 = 8;
    pub const NUMERIC: i32 = 2;
    pub const DECIMAL: i32 = 3;
    pub const CHAR: i32 = 1;
    pub const VARCHAR: i32 = 12;
    pub const LONGVARCHAR: i32 = -1;
    pub const DATE: i32 = 91;
    pub const TIME: i32 = 92;
    pub const TIMESTAMP: i32 = 93;
    pub const BINARY: i32 = -2;
    pub const VARBINARY: i32 = -3;
    pub const LONGVARBINARY: i32 = -4;
    pub const BOOLEAN: i32 = 16;
    pub const BLOB: i32 = 2004;
    pub const CLOB: i32 = 2005;
    pub const OTHER: i32 = 1111;
    pub const ARRAY: i32 = 2003;
    pub const TIMESTAMP_WITH_TIMEZONE: i32 = 2014;
}

/// One branch's undo log (`BranchUndoLog`). The global-finished marker's content `{}` decodes
/// to the default value: empty xid, branch 0, no items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BranchUndoLog {
    pub xid: String,
    pub branch_id: i64,
    pub sql_undo_logs: Vec<SqlUndoLog>,
}

/// The statement kind of an undo item, by Java's `SQLType` enum names (the DML ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    Insert,
    Update,
    Delete,
    UpdateJoin,
    MultiUpdate,
    MultiDelete,
    InsertOnDuplicateUpdate,
    InsertIgnore,
    Replace,
}

impl SqlType {
    const ALL: [(SqlType, &'static str); 9] = [
        (SqlType::Insert, "INSERT"),
        (SqlType::Update, "UPDATE"),
        (SqlType::Delete, "DELETE"),
        (SqlType::UpdateJoin, "UPDATE_JOIN"),
        (SqlType::MultiUpdate, "MULTI_UPDATE"),
        (SqlType::MultiDelete, "MULTI_DELETE"),
        (
            SqlType::InsertOnDuplicateUpdate,
            "INSERT_ON_DUPLICATE_UPDATE",
        ),
        (SqlType::InsertIgnore, "INSERT_IGNORE"),
        (SqlType::Replace, "REPLACE"),
    ];

    /// The Java enum constant's name.
    pub fn java_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("UPDATE", |(_, n)| n)
    }

    pub fn from_java_name(name: &str) -> Option<SqlType> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
    }
}

/// One statement's undo item (`SQLUndoLog`). Java writes `null` for a missing image, hence
/// the options; INSERT items have an empty before image, DELETE items an empty after image.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlUndoLog {
    pub sql_type: SqlType,
    pub table_name: String,
    pub before_image: Option<TableRecords>,
    pub after_image: Option<TableRecords>,
}

/// A table image (`TableRecords`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableRecords {
    /// `None` is Java's `null` (what an empty image carries).
    pub table_name: Option<String>,
    pub rows: Vec<Row>,
    /// Written as Java's `TableRecords$EmptyTableRecords` (the image of "no rows" that INSERT
    /// before images and DELETE after images use) rather than `TableRecords`.
    pub empty: bool,
}

impl TableRecords {
    /// An image of rows of `table`.
    pub fn new(table: impl Into<String>, rows: Vec<Row>) -> TableRecords {
        TableRecords {
            table_name: Some(table.into()),
            rows,
            empty: false,
        }
    }

    /// Java's `TableRecords.empty(meta)`: no table name, no rows.
    pub fn empty() -> TableRecords {
        TableRecords {
            table_name: None,
            rows: Vec::new(),
            empty: true,
        }
    }
}

/// One row of an image (`Row`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub fields: Vec<Field>,
}

impl Row {
    pub fn new(fields: Vec<Field>) -> Row {
        Row { fields }
    }

    /// The primary-key fields, in column order.
    pub fn primary_keys(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|f| f.key_type == KeyType::PrimaryKey)
    }
}

/// Whether a column is part of the primary key (`KeyType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// Java's `KeyType.NULL`: not a key column.
    #[default]
    Null,
    PrimaryKey,
}

impl KeyType {
    pub fn java_name(self) -> &'static str {
        match self {
            KeyType::Null => "NULL",
            KeyType::PrimaryKey => "PRIMARY_KEY",
        }
    }

    pub fn from_java_name(name: &str) -> Option<KeyType> {
        match name {
            "NULL" => Some(KeyType::Null),
            "PRIMARY_KEY" => Some(KeyType::PrimaryKey),
            _ => None,
        }
    }
}

/// One column value (`Field`).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub key_type: KeyType,
    /// The column's JDBC type code from table metadata (`java.sql.Types`, see [`jdbc_type`]).
    pub jdbc_type: i32,
    pub value: Value,
}

impl Field {
    pub fn new(name: impl Into<String>, jdbc_type: i32, value: Value) -> Field {
        Field {
            name: name.into(),
            key_type: KeyType::Null,
            jdbc_type,
            value,
        }
    }

    /// A primary-key column.
    pub fn key(name: impl Into<String>, jdbc_type: i32, value: Value) -> Field {
        Field {
            key_type: KeyType::PrimaryKey,
            ..Field::new(name, jdbc_type, value)
        }
    }
}
