//! SQL recognition: what a statement changes, read from its text once and cached. Only
//! `parser` sees the `sqlparser` crate; everything else works on the types in `types`.

mod build;
mod cache;
mod parser;
mod types;

pub use build::{
    ImageQuery, MAX_IN_ROWS, PkPredicate, ValueQuery, after_image_query,
    check_primary_key_untouched, tracked_columns,
};
pub use cache::StatementCache;
pub use parser::{SqlError, parse};
pub use types::{
    Assignment, Column, ConflictTarget, Delete, Dialect, Fragment, Ident, Insert, InsertValue,
    JoinTarget, MultiDelete, OnConflict, ParamList, PassThroughKind, Piece, Recognized, RowLock,
    SelectForUpdate, Statement, TableName, TableRef, UnsupportedReason, Update, UpdateJoin,
};
