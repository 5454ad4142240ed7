//! Errors of the outbox: talking to the TC, the database, and the one the local transaction
//! must act on (the message was resolved as never sent before it could be recorded).

/// Why an outbox call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// A TC call failed (begin, branch registration, commit or rollback report, resource
    /// registration).
    #[error("transaction coordinator: {0}")]
    Coordinator(#[source] Box<ferrata::Error>),
    /// A database statement failed.
    #[error("{operation} on {table}: {source}")]
    Database {
        operation: &'static str,
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// The TC already asked the producer's check, which found no record and settled the
    /// message as not sent: roll the local transaction back (the message is dropped).
    #[error(
        "message {xid} was already resolved as not sent (the TC's check ran first, e.g. after \
         its timeout): roll the local transaction back"
    )]
    AlreadyResolved { xid: String },
    /// The producer row of a message holds a state this crate never writes.
    #[error("the row of message {xid} in {table} has no state this crate wrote")]
    UnreadableRow { table: String, xid: String },
    /// A table name must be a plain identifier, optionally schema-qualified.
    #[error("{0:?} is not a plain table name (letters, digits, `_`, optionally `schema.`)")]
    BadTableName(String),
    /// A call's payload could not be serialised to JSON.
    #[error("payload of a call to {resource_id}: {source}")]
    Payload {
        resource_id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<ferrata::Error> for OutboxError {
    fn from(error: ferrata::Error) -> Self {
        // Boxed: the SDK's error is large, and most outbox errors are not about the TC.
        OutboxError::Coordinator(Box::new(error))
    }
}

/// Why [`crate::MessageBuilder::send`] failed: the caller's work, or the outbox. The local
/// transaction was rolled back and the message is dropped, except after a commit that failed
/// with its outcome unknown, where the message follows what the database did.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E> {
    /// The work inside the local transaction returned this error.
    #[error("the local transaction's work failed: {0}")]
    Business(E),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}
