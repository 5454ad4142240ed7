//! Errors of XA branches: the TC's or the database's.

/// Why an XA branch operation failed.
#[derive(Debug, thiserror::Error)]
pub enum XaError {
    /// Registering the resource or the branch, reporting, or asking for a global status.
    #[error("transaction coordinator: {0}")]
    Coordinator(#[from] ferrata::Error),
    /// An XA statement or acquiring a connection.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
