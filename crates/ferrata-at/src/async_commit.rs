//! Phase-2 commit of AT branches: the TC is answered at once and the branches' undo rows are
//! deleted later in batches, one local transaction per batch (semantics 4.6). The queue is
//! bounded; when it is full the caller deletes its row itself, so nothing is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::database::AtDatabase;
use crate::undo_table::{DELETE_BATCH_BRANCHES, UndoTable, UndoTableError};

/// Branches waiting for their undo rows to be deleted (Java's `asyncCommitBufferLimit`).
pub const QUEUE_CAPACITY: usize = 10_000;
/// How often the worker deletes what is queued (Java's 1000 ms).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(1000);

/// A committed branch whose undo row is to be deleted.
pub type CommittedBranch = (i64, String);

/// Hands committed branches to the deleting worker of one database.
#[derive(Debug, Clone)]
pub struct AsyncCommitter {
    queue: mpsc::Sender<CommittedBranch>,
    /// Wakes the worker before its interval when a full batch is waiting.
    wake: Arc<Notify>,
}

/// The worker's side; run it with [`AsyncCommitWorker::run`] on a task of its own.
#[derive(Debug)]
pub struct AsyncCommitWorker<DB: AtDatabase> {
    queue: mpsc::Receiver<CommittedBranch>,
    wake: Arc<Notify>,
    pool: sqlx::Pool<DB>,
    table: UndoTable<DB>,
    interval: Duration,
}

/// The branch could not be queued: the queue is full (delete its row now) or the worker
/// has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the undo-log deletion queue is full or stopped; delete the row directly")]
pub struct Rejected(pub CommittedBranch);

impl AsyncCommitter {
    /// A committer and its worker for one database's undo table.
    pub fn new<DB: AtDatabase>(
        pool: sqlx::Pool<DB>,
        table: UndoTable<DB>,
        interval: Duration,
    ) -> (AsyncCommitter, AsyncCommitWorker<DB>) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let wake = Arc::new(Notify::new());
        (
            AsyncCommitter {
                queue: sender,
                wake: wake.clone(),
            },
            AsyncCommitWorker {
                queue: receiver,
                wake,
                pool,
                table,
                interval,
            },
        )
    }

    /// Queues a committed branch's undo row for deletion.
    pub fn submit(&self, branch_id: i64, xid: String) -> Result<(), Rejected> {
        match self.queue.try_send((branch_id, xid)) {
            Ok(()) => {
                if self.queue.capacity() <= QUEUE_CAPACITY - DELETE_BATCH_BRANCHES {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(branch))
            | Err(mpsc::error::TrySendError::Closed(branch)) => Err(Rejected(branch)),
        }
    }
}

impl<DB: AtDatabase> AsyncCommitWorker<DB> {
    /// Deletes queued rows every interval (sooner when a full batch waits) until every
    /// committer is dropped and the queue is empty. A failed batch is kept and tried again on
    /// the next round; rows the worker never reaches are removed by the age-based cleanup.
    pub async fn run(mut self) {
        let mut pending: Vec<CommittedBranch> = Vec::new();
        let mut closed = false;
        while !(closed && pending.is_empty()) {
            if !closed && pending.len() < DELETE_BATCH_BRANCHES {
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = self.wake.notified() => {}
                }
            }
            while pending.len() < QUEUE_CAPACITY {
                match self.queue.try_recv() {
                    Ok(branch) => pending.push(branch),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if pending.is_empty() {
                continue;
            }
            let take = pending.len().min(DELETE_BATCH_BRANCHES);
            match self.delete(&pending[..take]).await {
                Ok(deleted) => {
                    tracing::debug!(
                        branches = take,
                        deleted,
                        table = self.table.name(),
                        "undo logs of committed branches deleted"
                    );
                    pending.drain(..take);
                }
                Err(error) => {
                    tracing::warn!(%error, branches = take, "deleting undo logs of committed branches failed; trying again next round");
                    if closed {
                        // Nobody will submit again: stop rather than retry for ever; the
                        // age-based cleanup removes what is left.
                        return;
                    }
                    tokio::time::sleep(self.interval).await;
                }
            }
        }
    }

    async fn delete(&self, branches: &[CommittedBranch]) -> Result<u64, UndoTableError> {
        let database = |source| UndoTableError::Database {
            operation: "deleting committed branches from",
            table: self.table.name().to_owned(),
            source,
        };
        let mut tx = self.pool.begin().await.map_err(database)?;
        let deleted = self.table.delete_many(&mut tx, branches).await?;
        tx.commit().await.map_err(database)?;
        Ok(deleted)
    }
}
