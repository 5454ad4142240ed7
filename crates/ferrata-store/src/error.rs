//! Errors of the session stores. Each message says what went wrong and what the operator can do.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system call failed. `context` names the operation and the file.
    #[error(
        "{context}: {source} (check that the store directory exists, is writable and the disk is not full)"
    )]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Acknowledged data failed its checksum or does not decode. Never repaired silently.
    #[error(
        "store file {} is corrupt at byte offset {offset}: {reason}; the server refuses to start \
         rather than lose committed transactions: restore the store directory from a backup, or \
         run `ferrata-server --repair`, which keeps every intact record, moves the damaged files \
         aside and reports exactly what was dropped",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The file was written by a format version this build does not read.
    #[error(
        "store file {} has format version {found}, this build reads versions 1 to {supported}; run \
         the Ferrata version that wrote it, or drain it (let every transaction finish) first",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },

    /// Another process (or another store in this one) holds the store directory.
    #[error(
        "store directory {} is in use by another ferrata-server{}; stop that server first, or \
         give this one its own data directory",
        dir.display(),
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<u32> },

    /// `begin_compaction` was called while an earlier job had not been finished.
    #[error(
        "a compaction (checkpoint segment {checkpoint}) is still running; pass its outcome to \
         finish_compaction before starting another"
    )]
    CompactionRunning { checkpoint: u64 },

    /// A record cannot be represented in the storage format (e.g. a field over 4 GiB).
    #[error("cannot encode record for storage: {0}")]
    Encode(String),

    /// A database backend failed (connection lost, statement refused). The operation's
    /// outcome is unknown, as for an I/O error.
    #[error(
        "{context}: {source} (check that the database is reachable and its schema is Seata's db-mode schema)"
    )]
    Database {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A caller passed something the store cannot take (e.g. a lease name over the column's
    /// width); nothing was changed.
    #[error("{0}")]
    Invalid(String),

    /// An earlier write or sync failed, so the log's tail is in an unknown state. Continuing
    /// could place acknowledged records after garbage, so the store refuses all further work.
    #[error(
        "session store is unusable after an earlier failure ({reason}); restart the server so \
         recovery rebuilds a consistent log"
    )]
    Poisoned { reason: String },
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}
