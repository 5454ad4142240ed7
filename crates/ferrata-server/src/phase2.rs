//! Requests the TC originates: BranchCommit/BranchRollback to the RM that owns a branch (with a
//! timeout, the outcome going back to the core) and one-way UndoLogDelete cleanups.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use ferrata_core::{BranchOutcome, BranchRequest};
use ferrata_proto::{
    BranchCommitRequest, BranchRollbackRequest, BranchType, Message, MsgType, UndoLogDeleteRequest,
};
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::engine::{CoreCommand, EngineHandle};
use crate::registry::{ConnId, Outbound, Registry};

/// Outstanding TC-originated requests, keyed by the TC's own request id.
#[derive(Debug, Default)]
pub struct PendingRequests {
    next_id: AtomicI32,
    waiting: Mutex<HashMap<i32, (ConnId, oneshot::Sender<Message>)>>,
}

impl PendingRequests {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (ConnId, oneshot::Sender<Message>)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh non-negative request id (Java masks its counter the same way).
    pub fn next_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & i32::MAX
    }

    fn register(&self, id: i32, conn: ConnId) -> oneshot::Receiver<Message> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, (conn, tx));
        rx
    }

    /// Hands a response to its waiter; false when nobody waits for this id.
    pub fn complete(&self, id: i32, message: Message) -> bool {
        match self.lock().remove(&id) {
            Some((_, tx)) => tx.send(message).is_ok(),
            None => false,
        }
    }

    fn forget(&self, id: i32) {
        self.lock().remove(&id);
    }

    /// Fails every request waiting on a closed connection at once instead of at its timeout.
    pub fn fail_connection(&self, conn: ConnId) {
        self.lock().retain(|_, (owner, _)| *owner != conn);
    }
}

/// Sends phase-2 requests on the tokio runtime and reports outcomes to the core.
#[derive(Debug)]
pub struct Phase2Sender {
    pub registry: Arc<Registry>,
    pub pending: Arc<PendingRequests>,
    pub engine: EngineHandle,
    pub runtime: tokio::runtime::Handle,
    pub timeout: Duration,
}

impl Phase2Sender {
    pub fn deliver(self: &Arc<Self>, commit: bool, request: BranchRequest) {
        let this = self.clone();
        self.runtime.spawn(async move {
            let outcome = this.round_trip(commit, &request).await;
            this.engine.submit(CoreCommand::BranchResult {
                transaction_id: request.transaction_id,
                branch_id: request.branch_id,
                outcome,
            });
        });
    }

    async fn round_trip(&self, commit: bool, request: &BranchRequest) -> BranchOutcome {
        let Some((conn, ctx)) = self.registry.pick(
            &request.resource_id,
            &request.client_id,
            request.branch_type,
        ) else {
            tracing::warn!(
                xid = %request.xid,
                branch_id = request.branch_id,
                resource_id = %request.resource_id,
                "no live connection serves this resource; phase 2 will be retried"
            );
            return BranchOutcome::Unreachable;
        };
        let id = self.pending.next_id();
        let answer = self.pending.register(id, conn.id);
        let message = if commit {
            Message::BranchCommit(BranchCommitRequest {
                xid: request.xid.clone(),
                branch_id: request.branch_id,
                branch_type: request.branch_type,
                resource_id: request.resource_id.clone(),
                application_data: request.application_data.clone(),
            })
        } else {
            Message::BranchRollback(BranchRollbackRequest {
                xid: request.xid.clone(),
                branch_id: request.branch_id,
                branch_type: request.branch_type,
                resource_id: request.resource_id.clone(),
                application_data: request.application_data.clone(),
            })
        };
        let sent = conn.send(Outbound::Message {
            msg_type: MsgType::Request,
            request_id: id,
            codec: 1,
            compressor: 0,
            message,
            ctx,
        });
        if !sent {
            self.pending.forget(id);
            return BranchOutcome::Unreachable;
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(Message::BranchCommitResponse(r))) if commit => {
                BranchOutcome::Status(r.branch_status)
            }
            Ok(Ok(Message::BranchRollbackResponse(r))) if !commit => {
                BranchOutcome::Status(r.branch_status)
            }
            Ok(Ok(other)) => {
                tracing::warn!(xid = %request.xid, type_code = other.type_code(), "unexpected answer to a phase-2 request");
                BranchOutcome::Unreachable
            }
            Ok(Err(_)) => BranchOutcome::Unreachable,
            Err(_) => {
                self.pending.forget(id);
                tracing::warn!(xid = %request.xid, branch_id = request.branch_id, "phase-2 request timed out; will retry");
                BranchOutcome::Unreachable
            }
        }
    }

    pub fn undo_log_delete(&self, save_days: i16) {
        for (resource_id, conn, ctx) in self.registry.undo_log_targets() {
            conn.send(Outbound::Message {
                msg_type: MsgType::Oneway,
                request_id: self.pending.next_id(),
                codec: 1,
                compressor: 0,
                message: Message::UndoLogDelete(UndoLogDeleteRequest {
                    branch_type: BranchType::At,
                    resource_id,
                    save_days,
                }),
                ctx,
            });
        }
    }
}
