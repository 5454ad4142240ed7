//! What can go wrong in an AT transaction, in words for the caller; the detail for operators
//! is in the source chain and the logs.

use crate::database::{BadTableName, ValueError};
use crate::lock_key::LockKeyError;
use crate::lock_retry::LockWaitTimeout;
use crate::meta::MetaError;
use crate::sql::{SqlError, UnsupportedReason};
use crate::undo::UndoError;
use crate::undo_table::UndoTableError;

#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error("cannot parse the statement: {0}")]
    Parse(#[from] SqlError),
    /// Refused before it touched any data.
    #[error("AT cannot run this statement in a global transaction: {0}")]
    Unsupported(UnsupportedReason),
    /// Refused before it touched any data.
    #[error(
        "AT does not support {0} yet; run it outside the global transaction or as a plain UPDATE/DELETE/INSERT"
    )]
    NotYetSupported(&'static str),
    #[error("the statement has {expected} placeholders but {given} values were bound")]
    ParamCount { expected: usize, given: usize },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    UndoTable(#[from] UndoTableError),
    #[error(transparent)]
    BadTableName(#[from] BadTableName),
    #[error("undo log: {0}")]
    Undo(#[from] UndoError),
    #[error(transparent)]
    LockKey(#[from] LockKeyError),
    /// Another global transaction held a row this one changed, for longer than the lock retry
    /// policy waits; the local transaction was rolled back.
    #[error(transparent)]
    LockWaitTimeout(#[from] LockWaitTimeout),
    #[error("transaction coordinator: {0}")]
    Coordinator(Box<ferrata::Error>),
    /// The global transaction was rolled back while this branch was still in phase one; its
    /// local transaction was rolled back too.
    #[error(
        "global transaction {xid} has already finished (rolled back); this local transaction was rolled back"
    )]
    GlobalFinished { xid: String },
    #[error("the transaction was already committed or rolled back")]
    Finished,
}

impl From<ferrata::Error> for AtError {
    fn from(error: ferrata::Error) -> Self {
        AtError::Coordinator(Box::new(error))
    }
}
