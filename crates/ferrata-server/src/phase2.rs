//! Requests the TC originates: BranchCommit/BranchRollback to the RM that owns a branch (with a
//! timeout, the outcome going back to the core) and one-way UndoLogDelete cleanups. Answers are
//! matched per connection: only the connection a request went to can answer it, and only with
//! the xid and branch id it was asked about; anything else is logged and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_core::{BranchId, BranchOutcome, BranchRequest};
use ferrata_proto::{
    BranchCommitRequest, BranchRollbackRequest, BranchType, Message, MsgType, UndoLogDeleteRequest,
};
use tokio::sync::oneshot;

use crate::engine::{CoreCommand, EngineHandle};
use crate::registry::{Outbound, Registry};

/// Which phase-2 request a branch gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase2 {
    Commit,
    Rollback,
}

impl Phase2 {
    fn name(self) -> &'static str {
        match self {
            Phase2::Commit => "commit",
            Phase2::Rollback => "rollback",
        }
    }
}

/// A phase-2 request waiting for its answer on one connection.
#[derive(Debug)]
struct Awaited {
    xid: String,
    branch_id: BranchId,
    phase2: Phase2,
    outcome: oneshot::Sender<BranchOutcome>,
}

/// The phase-2 requests sent on one connection and not yet answered, by request id.
#[derive(Debug, Default)]
pub struct ConnPending {
    waiting: Mutex<HashMap<i32, Awaited>>,
}

/// What became of an answer that arrived on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerMatch {
    /// It answered a request of this connection; the waiter has the outcome.
    Accepted,
    /// No request with this id is waiting on this connection (late, or never sent here).
    NoRequest,
    /// A request with this id waits here, but the answer is not about it; it keeps waiting.
    Mismatch(String),
}

impl ConnPending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Awaited>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(
        &self,
        id: i32,
        request: &BranchRequest,
        phase2: Phase2,
    ) -> oneshot::Receiver<BranchOutcome> {
        let (outcome, receiver) = oneshot::channel();
        let awaited = Awaited {
            xid: request.xid.clone(),
            branch_id: request.branch_id,
            phase2,
            outcome,
        };
        let previous = self.lock().insert(id, awaited);
        debug_assert!(previous.is_none(), "request id {id} reused while in flight");
        receiver
    }

    fn forget(&self, id: i32) {
        self.lock().remove(&id);
    }

    /// Fails every request waiting on this connection at once (it closed), instead of at their
    /// timeouts.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Matches an answer that arrived on this connection with request id `id`.
    pub fn complete(&self, id: i32, message: Message) -> AnswerMatch {
        let mut waiting = self.lock();
        let Some(awaited) = waiting.get(&id) else {
            return AnswerMatch::NoRequest;
        };
        let (result, xid, branch_id, status, phase2) = match message {
            Message::BranchCommitResponse(r) => (
                r.result,
                r.xid,
                r.branch_id,
                r.branch_status,
                Phase2::Commit,
            ),
            Message::BranchRollbackResponse(r) => (
                r.result,
                r.xid,
                r.branch_id,
                r.branch_status,
                Phase2::Rollback,
            ),
            other => {
                return AnswerMatch::Mismatch(format!(
                    "a message of type {} cannot answer a phase-2 request",
                    other.type_code()
                ));
            }
        };
        if phase2 != awaited.phase2 {
            return AnswerMatch::Mismatch(format!(
                "a {} answer to a {} request",
                phase2.name(),
                awaited.phase2.name()
            ));
        }
        let about_the_request = xid == awaited.xid && branch_id == awaited.branch_id.0;
        // Java's RM leaves xid and branch id unset when its handler fails; such an answer can
        // only make the TC retry, never end a branch, so it is accepted without them.
        let anonymous_failure = !result.is_success() && xid.is_empty() && branch_id == 0;
        if !about_the_request && !anonymous_failure {
            return AnswerMatch::Mismatch(format!(
                "the answer is about xid {xid:?} branch {branch_id}, the request was about xid \
                 {:?} branch {}",
                awaited.xid, awaited.branch_id
            ));
        }
        let outcome = if result.is_success() {
            BranchOutcome::Status(status)
        } else {
            tracing::warn!(
                xid = %awaited.xid,
                branch_id = awaited.branch_id.0,
                code = ?result.exception_code,
                message = %result.msg,
                "the RM failed to handle a phase-2 request; it will be retried"
            );
            BranchOutcome::Unreachable
        };
        if let Some(awaited) = waiting.remove(&id) {
            let _ = awaited.outcome.send(outcome);
        }
        AnswerMatch::Accepted
    }
}

/// Sends phase-2 requests on the tokio runtime and reports outcomes to the core.
#[derive(Debug)]
pub struct Phase2Sender {
    pub registry: Arc<Registry>,
    pub engine: EngineHandle,
    pub runtime: tokio::runtime::Handle,
    /// How long to wait for room in the RM's outbox, then for its answer.
    pub timeout: Duration,
    next_id: AtomicI32,
}

impl Phase2Sender {
    pub fn new(
        registry: Arc<Registry>,
        engine: EngineHandle,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Phase2Sender {
        Phase2Sender {
            registry,
            engine,
            runtime,
            timeout,
            next_id: AtomicI32::new(0),
        }
    }

    /// A fresh non-negative request id (Java masks its counter the same way).
    fn next_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & i32::MAX
    }

    pub fn deliver(self: &Arc<Self>, phase2: Phase2, request: BranchRequest) {
        let this = self.clone();
        self.runtime.spawn(async move {
            let outcome = this.round_trip(phase2, &request).await;
            this.engine
                .submit(CoreCommand::BranchResult {
                    transaction_id: request.transaction_id,
                    branch_id: request.branch_id,
                    outcome,
                })
                .await;
        });
    }

    async fn round_trip(&self, phase2: Phase2, request: &BranchRequest) -> BranchOutcome {
        let Some((conn, ctx)) = self.registry.pick(
            &request.resource_id,
            &request.client_id,
            request.branch_type,
        ) else {
            tracing::warn!(
                xid = %request.xid,
                branch_id = request.branch_id.0,
                resource_id = %request.resource_id,
                "no live connection serves this resource; phase 2 will be retried"
            );
            return BranchOutcome::Unreachable;
        };
        let Some(permit) = conn.reserve_within(self.timeout).await else {
            tracing::warn!(
                xid = %request.xid,
                branch_id = request.branch_id.0,
                peer = %conn.peer,
                "the RM's connection is gone or does not read its socket; phase 2 will be retried"
            );
            return BranchOutcome::Unreachable;
        };
        let id = self.next_id();
        let answer = conn.pending.insert(id, request, phase2);
        let message = if phase2 == Phase2::Commit {
            Message::BranchCommit(BranchCommitRequest {
                xid: request.xid.clone(),
                branch_id: request.branch_id.0,
                branch_type: request.branch_type,
                resource_id: request.resource_id.clone(),
                application_data: request.application_data.clone(),
            })
        } else {
            Message::BranchRollback(BranchRollbackRequest {
                xid: request.xid.clone(),
                branch_id: request.branch_id.0,
                branch_type: request.branch_type,
                resource_id: request.resource_id.clone(),
                application_data: request.application_data.clone(),
            })
        };
        permit.send(Outbound::Message {
            msg_type: MsgType::Request,
            request_id: id,
            codec: 1,
            compressor: 0,
            message,
            ctx,
        });
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            // The connection closed and dropped the waiter.
            Ok(Err(_)) => BranchOutcome::Unreachable,
            Err(_) => {
                conn.pending.forget(id);
                tracing::warn!(xid = %request.xid, branch_id = request.branch_id.0, "phase-2 request timed out; will retry");
                BranchOutcome::Unreachable
            }
        }
    }

    /// Asks one connection per AT resource to clean up old undo logs; skipped where the
    /// outbox is full (the next period asks again).
    pub fn undo_log_delete(&self, save_days: i16) {
        for (resource_id, conn, ctx) in self.registry.undo_log_targets() {
            conn.try_send(Outbound::Message {
                msg_type: MsgType::Oneway,
                request_id: self.next_id(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::{BranchCommitResponse, BranchStatus, ResultInfo, TransactionExceptionCode};

    fn request() -> BranchRequest {
        BranchRequest {
            transaction_id: ferrata_core::TransactionId(7),
            xid: "127.0.0.1:8091:7".into(),
            branch_id: BranchId(8),
            branch_type: BranchType::Tcc,
            resource_id: "r".into(),
            application_data: String::new(),
            client_id: "a:127.0.0.1:1".into(),
        }
    }

    fn commit_answer(result: ResultInfo, xid: &str, branch_id: i64) -> Message {
        Message::BranchCommitResponse(BranchCommitResponse {
            result,
            xid: xid.into(),
            branch_id,
            branch_status: BranchStatus::PhaseTwoCommitted,
        })
    }

    #[test]
    fn only_an_answer_about_the_request_completes_it() {
        let pending = ConnPending::default();
        let mut answer = pending.insert(3, &request(), Phase2::Commit);
        assert_eq!(
            pending.complete(
                4,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::NoRequest
        );
        for (xid, branch) in [("127.0.0.1:8091:7", 9), ("127.0.0.1:8091:6", 8), ("", 0)] {
            assert!(matches!(
                pending.complete(3, commit_answer(ResultInfo::success(), xid, branch)),
                AnswerMatch::Mismatch(_)
            ));
        }
        let rollback = Message::BranchRollbackResponse(ferrata_proto::BranchRollbackResponse {
            result: ResultInfo::success(),
            xid: "127.0.0.1:8091:7".into(),
            branch_id: 8,
            branch_status: BranchStatus::PhaseTwoRollbacked,
        });
        assert!(matches!(
            pending.complete(3, rollback),
            AnswerMatch::Mismatch(_)
        ));
        assert!(answer.try_recv().is_err(), "still waiting");
        assert_eq!(
            pending.complete(
                3,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::Accepted
        );
        assert_eq!(
            answer.try_recv().ok(),
            Some(BranchOutcome::Status(BranchStatus::PhaseTwoCommitted))
        );
        assert_eq!(
            pending.complete(
                3,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::NoRequest,
            "answered once"
        );
    }

    #[test]
    fn a_failed_answer_without_ids_means_retry() {
        let pending = ConnPending::default();
        let mut answer = pending.insert(3, &request(), Phase2::Commit);
        let failed = ResultInfo::failure(TransactionExceptionCode::Unknown, "boom");
        assert_eq!(
            pending.complete(3, commit_answer(failed, "", 0)),
            AnswerMatch::Accepted
        );
        assert_eq!(answer.try_recv().ok(), Some(BranchOutcome::Unreachable));
    }
}
