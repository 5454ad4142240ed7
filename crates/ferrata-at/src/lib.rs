//! Ferrata AT mode: a resource manager that makes ordinary SQL over sqlx undoable across
//! services. Each statement inside a global transaction records before and after images in
//! Seata's `undo_log` table, in the layout Java's resource manager reads and writes.

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod async_commit;
pub mod database;
pub mod lock_key;
pub mod lock_retry;
pub mod meta;
pub mod sql;
pub mod undo;
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod undo_table;
