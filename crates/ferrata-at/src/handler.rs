//! Answers the TC's phase-2 requests for an AT resource: commit hands the branch's undo row to
//! the deleting worker and answers at once; rollback restores the rows; the daily UndoLogDelete
//! removes old rows.

use std::sync::{Arc, Weak};

use ferrata::BranchStatus;
use ferrata::rm::{BranchHandler, BranchRequest, UndoLogDelete};

use crate::database::AtDatabase;
use crate::source::{AtDataSource, Shared};

/// Java's default when the TC asks for a non-positive age.
const DEFAULT_SAVE_DAYS: i32 = 7;

/// The phase-2 handler of one AT data source. It holds the data source weakly: once the
/// application drops every clone of it, phase-2 requests are answered as retryable failures
/// until a new one registers the resource.
#[derive(Debug)]
pub(crate) struct AtBranchHandler<DB: AtDatabase> {
    shared: Weak<Shared<DB>>,
}

impl<DB: AtDatabase> AtBranchHandler<DB> {
    pub fn new(source: &AtDataSource<DB>) -> AtBranchHandler<DB> {
        AtBranchHandler {
            shared: Arc::downgrade(&source.inner),
        }
    }
}

impl<DB: AtDatabase> BranchHandler for AtBranchHandler<DB> {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        let Some(shared) = self.shared.upgrade() else {
            return BranchStatus::PhaseTwoCommitFailedRetryable;
        };
        if let Err(rejected) = shared.committer.submit(request.branch_id, request.xid) {
            // The queue is full: delete the row now rather than drop it.
            let (branch_id, xid) = rejected.0;
            let deleted = async {
                let mut conn = shared.pool.acquire().await.map_err(crate::AtError::from)?;
                shared
                    .undo_table
                    .delete(&mut conn, branch_id, &xid)
                    .await
                    .map_err(crate::AtError::from)
            }
            .await;
            if let Err(error) = deleted {
                tracing::warn!(%xid, branch_id, %error, "cannot delete a committed branch's undo log; the age-based cleanup will");
            }
        }
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        let Some(shared) = self.shared.upgrade() else {
            return BranchStatus::PhaseTwoRollbackFailedRetryable;
        };
        crate::rollback::rollback_branch(&shared, &request.xid, request.branch_id).await
    }

    async fn undo_log_delete(&self, request: UndoLogDelete) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let days = match i32::from(request.save_days) {
            days if days > 0 => days,
            _ => DEFAULT_SAVE_DAYS,
        };
        let deleted = async {
            let mut conn = shared.pool.acquire().await.map_err(crate::AtError::from)?;
            shared
                .undo_table
                .delete_older_than(&mut conn, days)
                .await
                .map_err(crate::AtError::from)
        }
        .await;
        match deleted {
            Ok(rows) => {
                tracing::info!(rows, days, resource = %shared.resource_id, "old undo logs deleted")
            }
            Err(error) => tracing::warn!(%error, "deleting old undo logs failed"),
        }
    }
}
