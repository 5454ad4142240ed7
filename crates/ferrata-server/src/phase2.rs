//! Requests the TC originates: BranchCommit/BranchRollback to the RM that owns a branch and
//! one-way UndoLogDelete cleanups. A phase-2 request is put straight into the RM connection's
//! outbox by the thread that decided it (no task, no timer per request); its answer is matched
//! by that connection's reader, which hands the outcome to the core. One sweeper task per server
//! times out the unanswered. Only the connection a request went to can answer it, and only with
//! the xid and branch id it was asked about; anything else is logged and dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ferrata_core::{BranchId, BranchOutcome, BranchRequest, TransactionId};
use ferrata_proto::{
    BranchCommitRequest, BranchRollbackRequest, BranchType, CodecContext, Message, MsgType,
    UndoLogDeleteRequest,
};
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::mpsc::error::TrySendError;

use crate::engine::{CoreCommand, EngineHandle};
use crate::peers::Peers;
use crate::registry::{ConnHandle, Outbound, Registry};

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
    transaction_id: TransactionId,
    xid: String,
    branch_id: BranchId,
    phase2: Phase2,
    sent_at: Instant,
}

/// The end of one phase-2 request, for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub transaction_id: TransactionId,
    pub branch_id: BranchId,
    pub outcome: BranchOutcome,
}

impl Finished {
    pub fn into_command(self) -> CoreCommand {
        CoreCommand::BranchResult {
            transaction_id: self.transaction_id,
            branch_id: self.branch_id,
            outcome: self.outcome,
        }
    }

    fn unreachable(awaited: &Awaited) -> Finished {
        Finished {
            transaction_id: awaited.transaction_id,
            branch_id: awaited.branch_id,
            outcome: BranchOutcome::Unreachable,
        }
    }
}

#[derive(Debug, Default)]
struct Waiting {
    by_id: HashMap<i32, Awaited>,
    /// (deadline, id) in sending order; the timeout is one setting, so deadlines only grow.
    /// Answered ids are skipped and pruned from the front.
    deadlines: VecDeque<(Instant, i32)>,
    /// Phase-2 requests relayed for another node, by request id: the answer goes back there.
    relays: HashMap<i32, tokio::sync::oneshot::Sender<Message>>,
    /// Set when the connection closed: nothing more is accepted.
    closed: bool,
}

impl Waiting {
    fn prune_answered(&mut self) {
        while let Some((_, id)) = self.deadlines.front() {
            if self.by_id.contains_key(id) {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}

/// The phase-2 requests sent on one connection and not yet answered, by request id.
#[derive(Debug, Default)]
pub struct ConnPending {
    waiting: Mutex<Waiting>,
}

/// What became of an answer that arrived on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerMatch {
    /// It answered a request of this connection: the outcome goes to the core.
    Accepted(Finished),
    /// It answered a request relayed for another node: it went back there.
    Relayed,
    /// No request with this id is waiting on this connection (late, or never sent here).
    NoRequest,
    /// A request with this id waits here, but the answer is not about it; it keeps waiting.
    Mismatch(String),
}

impl ConnPending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request about to be sent; false once the connection has closed.
    fn insert(&self, id: i32, request: &BranchRequest, phase2: Phase2, deadline: Instant) -> bool {
        let mut waiting = self.lock();
        if waiting.closed {
            return false;
        }
        let awaited = Awaited {
            transaction_id: request.transaction_id,
            xid: request.xid.clone(),
            branch_id: request.branch_id,
            phase2,
            sent_at: Instant::now(),
        };
        let previous = waiting.by_id.insert(id, awaited);
        debug_assert!(previous.is_none(), "request id {id} reused while in flight");
        waiting.deadlines.push_back((deadline, id));
        waiting.prune_answered();
        true
    }

    /// Records a relayed request about to be sent; false once the connection has closed.
    fn insert_relay(&self, id: i32, answer: tokio::sync::oneshot::Sender<Message>) -> bool {
        let mut waiting = self.lock();
        if waiting.closed {
            return false;
        }
        waiting.relays.insert(id, answer);
        true
    }

    /// Stops waiting for the answer to a relayed request (it timed out).
    fn forget_relay(&self, id: i32) {
        self.lock().relays.remove(&id);
    }

    /// The connection closed: every request still waiting ends as unreachable now instead of
    /// at its timeout, and nothing more is accepted.
    pub fn close(&self) -> Vec<Finished> {
        let mut waiting = self.lock();
        waiting.closed = true;
        // Their waiters learn at once that no answer comes.
        waiting.relays.clear();
        waiting.deadlines.clear();
        let mut finished: Vec<Finished> = waiting
            .by_id
            .drain()
            .map(|(_, awaited)| Finished::unreachable(&awaited))
            .collect();
        // Deterministic order for the core (HashMap drains in any order).
        finished.sort_by_key(|f| (f.transaction_id, f.branch_id));
        finished
    }

    /// Takes the requests whose deadline is at or before `now`.
    fn expire(&self, now: Instant) -> Vec<(Finished, String)> {
        let mut waiting = self.lock();
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = waiting.deadlines.front() {
            if deadline > now {
                break;
            }
            waiting.deadlines.pop_front();
            if let Some(awaited) = waiting.by_id.remove(&id) {
                expired.push((Finished::unreachable(&awaited), awaited.xid));
            }
        }
        expired
    }

    /// Requests waiting for an answer (tests and invariants).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Matches an answer that arrived on this connection with request id `id`.
    pub fn complete(&self, id: i32, message: Message) -> AnswerMatch {
        let mut waiting = self.lock();
        if let Some(relay) = waiting.relays.remove(&id) {
            // The node that asked checks the answer against its request.
            let _ = relay.send(message);
            return AnswerMatch::Relayed;
        }
        let Some(awaited) = waiting.by_id.get(&id) else {
            return AnswerMatch::NoRequest;
        };
        let outcome = match outcome_of(message, &awaited.xid, awaited.branch_id, awaited.phase2) {
            Ok(outcome) => outcome,
            Err(why) => return AnswerMatch::Mismatch(why),
        };
        let awaited = waiting.by_id.remove(&id);
        debug_assert!(awaited.is_some());
        waiting.prune_answered();
        match awaited {
            Some(awaited) => {
                crate::meters::meters().phase2(awaited.phase2, awaited.sent_at.elapsed());
                AnswerMatch::Accepted(Finished {
                    transaction_id: awaited.transaction_id,
                    branch_id: awaited.branch_id,
                    outcome,
                })
            }
            None => AnswerMatch::NoRequest,
        }
    }
}

/// The BranchCommit or BranchRollback request of `request`.
pub fn request_message(phase2: Phase2, request: &BranchRequest) -> Message {
    if phase2 == Phase2::Commit {
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
    }
}

/// The outcome of a phase-2 answer to the request `phase2` about `xid` branch `branch_id`;
/// `Err` says why the message does not answer that request.
pub fn outcome_of(
    message: Message,
    expected_xid: &str,
    expected_branch: BranchId,
    expected: Phase2,
) -> Result<BranchOutcome, String> {
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
            return Err(format!(
                "a message of type {} cannot answer a phase-2 request",
                other.type_code()
            ));
        }
    };
    if phase2 != expected {
        return Err(format!(
            "a {} answer to a {} request",
            phase2.name(),
            expected.name()
        ));
    }
    let about_the_request = xid == expected_xid && branch_id == expected_branch.0;
    // Java's RM leaves xid and branch id unset when its handler fails; such an answer can
    // only make the TC retry, never end a branch, so it is accepted without them.
    let anonymous_failure = !result.is_success() && xid.is_empty() && branch_id == 0;
    if !about_the_request && !anonymous_failure {
        return Err(format!(
            "the answer is about xid {xid:?} branch {branch_id}, the request was about xid \
             {expected_xid:?} branch {expected_branch}"
        ));
    }
    Ok(if result.is_success() {
        BranchOutcome::Status(status)
    } else {
        tracing::warn!(
            xid = %expected_xid,
            branch_id = expected_branch.0,
            code = ?result.exception_code,
            message = %result.msg,
            "the RM failed to handle a phase-2 request; it will be retried"
        );
        BranchOutcome::Unreachable
    })
}

/// Sends phase-2 requests and reports the outcomes that do not come from an answer (no
/// connection, no room, timeout) to the core.
#[derive(Debug)]
pub struct Phase2Sender {
    pub registry: Arc<Registry>,
    pub engine: EngineHandle,
    pub runtime: tokio::runtime::Handle,
    /// How long to wait for room in the RM's outbox, then for its answer.
    pub timeout: Duration,
    next_id: AtomicI32,
    /// The other nodes, on a shared store: they deliver what no RM here can take.
    peers: std::sync::OnceLock<std::sync::Weak<Peers>>,
}

impl Phase2Sender {
    /// A sender, and the task that times out unanswered requests (it stops when the sender
    /// is dropped).
    pub fn start(
        registry: Arc<Registry>,
        engine: EngineHandle,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Arc<Phase2Sender> {
        let sender = Arc::new(Phase2Sender {
            registry,
            engine,
            runtime: runtime.clone(),
            timeout,
            next_id: AtomicI32::new(0),
            peers: std::sync::OnceLock::new(),
        });
        runtime.spawn(sweep(Arc::downgrade(&sender), sweep_period(timeout)));
        sender
    }

    /// Lets the other nodes of a shared store deliver what no RM connected here can take.
    pub fn set_peers(&self, peers: &Arc<Peers>) {
        let _ = self.peers.set(Arc::downgrade(peers));
    }

    /// A fresh non-negative request id (Java masks its counter the same way).
    fn next_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & i32::MAX
    }

    /// Sends a phase-2 request now when the RM's outbox has room (the common case, on the
    /// calling thread); otherwise a task waits for room up to the timeout.
    pub fn deliver(self: &Arc<Self>, phase2: Phase2, request: BranchRequest) {
        let Some((conn, ctx)) = self.registry.pick(
            &request.resource_id,
            &request.client_id,
            request.branch_type,
        ) else {
            if let Some(peers) = self.peers.get().and_then(std::sync::Weak::upgrade) {
                // Another node may have an RM of the resource (Go registers its RM on one).
                let engine = self.engine.clone();
                let message = request_message(phase2, &request);
                self.runtime.spawn(async move {
                    let outcome = peers.deliver_elsewhere(message, &request, phase2).await;
                    let command = CoreCommand::BranchResult {
                        transaction_id: request.transaction_id,
                        branch_id: request.branch_id,
                        outcome,
                    };
                    engine.submit(command).await;
                });
                return;
            }
            tracing::warn!(
                xid = %request.xid,
                branch_id = request.branch_id.0,
                resource_id = %request.resource_id,
                "no live connection serves this resource; phase 2 will be retried"
            );
            self.report_unreachable(&request);
            return;
        };
        match conn.try_reserve() {
            Ok(permit) => self.send(permit, &conn, ctx, phase2, &request),
            Err(TrySendError::Full(())) => {
                let this = self.clone();
                self.runtime.spawn(async move {
                    match conn.reserve_within(this.timeout).await {
                        Some(permit) => this.send(permit, &conn, ctx, phase2, &request),
                        None => {
                            tracing::warn!(
                                xid = %request.xid,
                                branch_id = request.branch_id.0,
                                peer = %conn.peer,
                                "the RM's connection is gone or does not read its socket; phase 2 will be retried"
                            );
                            this.report_unreachable(&request);
                        }
                    }
                });
            }
            Err(TrySendError::Closed(())) => self.report_unreachable(&request),
        }
    }

    fn send(
        self: &Arc<Self>,
        permit: OwnedPermit<Outbound>,
        conn: &ConnHandle,
        ctx: CodecContext,
        phase2: Phase2,
        request: &BranchRequest,
    ) {
        let id = self.next_id();
        // Recorded before it is sent, so the answer always finds it.
        if !conn
            .pending
            .insert(id, request, phase2, Instant::now() + self.timeout)
        {
            self.report_unreachable(request);
            return;
        }
        let message = request_message(phase2, request);
        permit.send(Outbound::Message {
            msg_type: MsgType::Request,
            request_id: id,
            codec: 1,
            compressor: 0,
            message,
            ctx,
        });
    }

    /// Tells the core, from a task (the caller may be the core thread itself, which must not
    /// wait for room in its own queue), that a request could not be sent.
    fn report_unreachable(&self, request: &BranchRequest) {
        let engine = self.engine.clone();
        let command = CoreCommand::BranchResult {
            transaction_id: request.transaction_id,
            branch_id: request.branch_id,
            outcome: BranchOutcome::Unreachable,
        };
        self.runtime.spawn(async move {
            engine.submit(command).await;
        });
    }

    /// Sends a phase-2 request another node asked this one to deliver (`message`, a
    /// BranchCommit or BranchRollback) to an RM here, and returns its answer; `None` when no
    /// RM here serves the resource or none answered within the timeout.
    pub async fn relay(
        &self,
        message: Message,
        resource_id: &str,
        client_id: &str,
        branch_type: BranchType,
    ) -> Option<Message> {
        let (conn, ctx) = self.registry.pick(resource_id, client_id, branch_type)?;
        let permit = conn.reserve_within(self.timeout).await?;
        let id = self.next_id();
        let (answer, answered) = tokio::sync::oneshot::channel();
        if !conn.pending.insert_relay(id, answer) {
            return None;
        }
        permit.send(Outbound::Message {
            msg_type: MsgType::Request,
            request_id: id,
            codec: 1,
            compressor: 0,
            message,
            ctx,
        });
        match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(message)) => Some(message),
            Ok(Err(_)) => None,
            Err(_) => {
                conn.pending.forget_relay(id);
                None
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

/// How often the sweeper looks for unanswered requests: a quarter of the timeout, between
/// 10 ms and 1 s, so a request times out at most that late.
fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Times out unanswered phase-2 requests on every connection until the sender is dropped.
async fn sweep(sender: Weak<Phase2Sender>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let now = Instant::now();
        for pending in sender.registry.pending_lists() {
            for (finished, xid) in pending.expire(now) {
                tracing::warn!(%xid, branch_id = finished.branch_id.0, "phase-2 request timed out; will retry");
                if !sender.engine.submit(finished.into_command()).await {
                    return;
                }
            }
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

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    fn finished(outcome: BranchOutcome) -> Finished {
        Finished {
            transaction_id: ferrata_core::TransactionId(7),
            branch_id: BranchId(8),
            outcome,
        }
    }

    #[test]
    fn only_an_answer_about_the_request_completes_it() {
        let pending = ConnPending::default();
        assert!(pending.insert(3, &request(), Phase2::Commit, later(60_000)));
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
        assert_eq!(pending.len(), 1, "still waiting");
        assert_eq!(
            pending.complete(
                3,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::Accepted(finished(BranchOutcome::Status(
                BranchStatus::PhaseTwoCommitted
            )))
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
        assert!(pending.insert(3, &request(), Phase2::Commit, later(60_000)));
        let failed = ResultInfo::failure(TransactionExceptionCode::Unknown, "boom");
        assert_eq!(
            pending.complete(3, commit_answer(failed, "", 0)),
            AnswerMatch::Accepted(finished(BranchOutcome::Unreachable))
        );
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn unanswered_requests_expire_in_sending_order_and_answered_ones_do_not() {
        let pending = ConnPending::default();
        let sent = Instant::now();
        for (id, ms) in [(1, 10), (2, 20), (3, 30)] {
            assert!(pending.insert(
                id,
                &request(),
                Phase2::Commit,
                sent + Duration::from_millis(ms)
            ));
        }
        // 2 is answered; only 1 and 3 can time out, each once.
        assert!(matches!(
            pending.complete(
                2,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::Accepted(_)
        ));
        assert!(pending.expire(sent).is_empty(), "nothing is due yet");
        assert_eq!(pending.expire(sent + Duration::from_millis(25)).len(), 1);
        assert_eq!(pending.expire(sent + Duration::from_millis(25)).len(), 0);
        let last = pending.expire(sent + Duration::from_millis(30));
        assert_eq!(
            last,
            vec![(
                finished(BranchOutcome::Unreachable),
                "127.0.0.1:8091:7".to_owned()
            )]
        );
        assert_eq!(pending.len(), 0);
        assert_eq!(
            pending.complete(
                3,
                commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
            ),
            AnswerMatch::NoRequest,
            "a late answer after the timeout changes nothing"
        );
    }

    #[test]
    fn closing_ends_every_waiting_request_and_refuses_new_ones() {
        let pending = ConnPending::default();
        assert!(pending.insert(1, &request(), Phase2::Commit, later(60_000)));
        assert_eq!(pending.close(), vec![finished(BranchOutcome::Unreachable)]);
        assert!(
            !pending.insert(2, &request(), Phase2::Commit, later(60_000)),
            "a request decided after the close is reported unreachable by its sender"
        );
        assert!(pending.close().is_empty());
    }

    #[test]
    fn answered_requests_do_not_pile_up_in_the_deadline_queue() {
        let pending = ConnPending::default();
        for id in 0..1000 {
            assert!(pending.insert(id, &request(), Phase2::Commit, later(60_000)));
            assert!(matches!(
                pending.complete(
                    id,
                    commit_answer(ResultInfo::success(), "127.0.0.1:8091:7", 8)
                ),
                AnswerMatch::Accepted(_)
            ));
        }
        assert!(pending.lock().deadlines.is_empty());
    }

    #[test]
    fn the_sweep_period_follows_the_timeout_within_bounds() {
        assert_eq!(
            sweep_period(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
        assert_eq!(
            sweep_period(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
    }
}
