//! Ferrata AT mode: a resource manager that makes ordinary SQL over sqlx undoable across
//! services. Each statement inside a global transaction records before and after images in
//! Seata's `undo_log` table, in the layout Java's resource manager reads and writes.

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod async_commit;
pub mod database;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod error;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod handler;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod image;
pub mod lock_key;
pub mod lock_retry;
pub mod meta;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod multi_row;
mod query;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod rollback;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod source;
pub mod sql;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod transaction;
pub mod undo;
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod undo_table;

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use error::AtError;
pub use query::{AtQuery, query};
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use rollback::{DirtyRow, RollbackError};
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use source::{AtDataSource, AtDataSourceBuilder, AtSettings};
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use transaction::AtTransaction;

/// The guide's snippets (docs/guide/at.md), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide/at.md")]
pub struct Guide;
