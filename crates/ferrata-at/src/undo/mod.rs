//! Undo logs: the branch undo log model and its encodings in `undo_log.rollback_info`
//! (Seata's Jackson layout, compression, the `context` column, MySQL chunk rows).

mod compress;
mod context;
mod decimal;
mod error;
pub mod jackson;
mod json;
mod model;
mod rollback_info;
mod value;
mod value_from;

pub use compress::{CompressorType, compress, decompress};
pub use context::UndoContext;
pub use decimal::Decimal;
pub use error::UndoError;
pub use jackson::JavaPackage;
pub use model::{BranchUndoLog, Field, KeyType, Row, SqlType, SqlUndoLog, TableRecords, jdbc_type};
pub use rollback_info::{
    DEFAULT_COMPRESS_THRESHOLD_BYTES, DEFAULT_MAX_ALLOWED_PACKET_BYTES, DEFAULT_MAX_UNDO_LOG_BYTES,
    EncodedUndoLog, MysqlChunks, UndoSettings, decode_rollback_info, encode_rollback_info,
    global_finished, split_mysql_chunks,
};
pub use value::{EpochTime, Value};
