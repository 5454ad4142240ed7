//! Errors of undo-log encoding and decoding; decoding reads hostile bytes, so every failure
//! is a value, never a panic.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UndoError {
    #[error("rollback_info is not valid JSON at byte {offset}: {reason}")]
    Json { offset: usize, reason: &'static str },
    #[error("rollback_info nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("rollback_info is larger than the {limit_bytes}-byte limit")]
    TooLarge { limit_bytes: usize },
    #[error("undo log: {path}: expected {expected}")]
    Shape {
        path: String,
        expected: &'static str,
    },
    #[error("undo log: {path}: unexpected Java class {class:?}")]
    UnexpectedClass { path: String, class: String },
    #[error("undo log: unknown SQL type {0:?}")]
    UnknownSqlType(String),
    #[error("undo log: unknown key type {0:?}")]
    UnknownKeyType(String),
    #[error("undo log: invalid number {0:?}")]
    InvalidNumber(String),
    #[error("undo log: {class} value out of range: {text}")]
    OutOfRange { class: &'static str, text: String },
    #[error("undo log: invalid base64 in a {class} value")]
    Base64 { class: &'static str },
    #[error("undo log: invalid {class} value {text:?}")]
    InvalidValue { class: &'static str, text: String },
    #[error("undo log serializer {0:?} is not supported (only jackson)")]
    UnsupportedSerializer(String),
    #[error("undo log compressor {0:?} is not supported")]
    UnsupportedCompressor(String),
    #[error("undo log decompression ({compressor}): {reason}")]
    Decompress {
        compressor: &'static str,
        reason: String,
    },
    #[error("undo log context: invalid subId list {0:?}")]
    InvalidSubIds(String),
    #[error("undo log: {expected} chunk rows are named in subId, {found} were given")]
    ChunkCount { expected: usize, found: usize },
}
