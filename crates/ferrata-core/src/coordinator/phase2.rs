//! Phase 2: passes over the branches of a transaction (one request in flight per lane), the
//! answers of resource managers, and how a transaction ends, in success or failure.

use super::*;
use crate::effect::BranchRequest;

impl Coordinator {
    /// Starts a pass. The first synchronous commit pass skips async-committable branches, which
    /// the asynchronous pass that follows handles; rollback visits branches newest first.
    pub(super) fn start_pass(
        &mut self,
        transaction_id: TransactionId,
        direction: Direction,
        scope: Scope,
        reply: Option<ReplyToken>,
    ) {
        let parallel = self.config.parallel_phase2;
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        debug_assert!(session.pass.is_none(), "a second pass for one transaction");
        if session.is_saga() && !session.saga_engine_done {
            // The Saga engine drives its own branches: one request, addressed to the engine.
            session.pass = Some(Phase2Pass {
                direction,
                lanes: vec![VecDeque::from([SAGA_ENGINE_BRANCH])],
                busy: vec![false],
                in_flight: BTreeMap::new(),
                failure: None,
                reply: reply.map(|token| Waiting { token, direction }),
            });
            return self.advance(transaction_id);
        }
        let check = session.outbox_check();
        let check_id = check.map(|b| b.branch_id);
        let ordered: Vec<&BranchSession> = match (direction, check) {
            // A message's check is never committed: only the producer's database knows the
            // answer, and committing means the answer was "deliver".
            (Direction::Commit, _) => session
                .branches
                .iter()
                .filter(|b| scope == Scope::All || !is_async_committable(b))
                .filter(|b| Some(b.branch_id) != check_id)
                .collect(),
            // Rolling a message back starts by asking its producer, alone: consumers hear
            // nothing until the local transaction is known never to commit.
            (Direction::Rollback, Some(check))
                if check.status != BranchStatus::PhaseTwoRollbacked =>
            {
                vec![check]
            }
            (Direction::Rollback, _) => session
                .branches
                .iter()
                .rev()
                .filter(|b| Some(b.branch_id) != check_id)
                .collect(),
        };
        let lanes = lanes_of(ordered, parallel);
        session.pass = Some(Phase2Pass {
            direction,
            busy: vec![false; lanes.len()],
            lanes,
            in_flight: BTreeMap::new(),
            failure: None,
            reply: reply.map(|token| Waiting { token, direction }),
        });
        self.advance(transaction_id);
    }

    /// Sends the next branch request of every idle lane, or finishes the pass when nothing is
    /// left to send or to wait for.
    pub(super) fn advance(&mut self, transaction_id: TransactionId) {
        let mut skipped = Vec::new();
        let mut requests = Vec::new();
        let finished = {
            let Some(session) = self.sessions.get_mut(&transaction_id) else {
                return;
            };
            let outbox = session.is_outbox();
            let check = session.outbox_check().map(|b| b.branch_id);
            let Some(pass) = session.pass.as_mut() else {
                return;
            };
            if pass.failure.is_some() {
                return;
            }
            for (lane, queue) in pass.lanes.iter_mut().enumerate() {
                if pass.busy[lane] {
                    continue;
                }
                while let Some(branch_id) = queue.pop_front() {
                    if branch_id == SAGA_ENGINE_BRANCH {
                        requests.push(saga_engine_request(transaction_id, &session.global));
                        pass.busy[lane] = true;
                        pass.in_flight.insert(branch_id, lane);
                        break;
                    }
                    let Some(branch) = session.branches.get(branch_id) else {
                        continue;
                    };
                    // A read-only XA branch has nothing to commit; a SAGA_ANNOTATION branch
                    // committed in phase one (its RM only knows how to compensate).
                    let skip = branch.status == BranchStatus::PhaseOneFailed
                        || (pass.direction == Direction::Commit
                            && (branch.status == BranchStatus::PhaseOneRdonly
                                || branch.branch_type == BranchType::SagaAnnotation));
                    if skip {
                        skipped.push(branch_id);
                        continue;
                    }
                    // A message's delivery branch was registered by its producer, but any RM
                    // of the consumer's resource answers it: its request names no client.
                    let client_id = if outbox && Some(branch_id) != check {
                        String::new()
                    } else {
                        branch.client_id.clone()
                    };
                    requests.push(BranchRequest {
                        transaction_id,
                        xid: session.global.xid.clone(),
                        branch_id,
                        branch_type: branch.branch_type,
                        resource_id: branch.resource_id.clone(),
                        application_data: branch.application_data.clone(),
                        client_id,
                    });
                    debug_assert!(
                        !pass.in_flight.contains_key(&branch_id),
                        "a second phase-2 request in flight for one branch"
                    );
                    pass.busy[lane] = true;
                    pass.in_flight.insert(branch_id, lane);
                    break;
                }
            }
            pass.in_flight.is_empty()
        };
        let direction = self
            .sessions
            .get(&transaction_id)
            .and_then(|s| s.pass.as_ref())
            .map(|p| p.direction);
        for branch_id in skipped {
            self.remove_branch(transaction_id, branch_id);
        }
        if let Some(session) = self.sessions.get_mut(&transaction_id) {
            let kind = match direction {
                Some(Direction::Rollback) => Phase2Kind::Rollback,
                _ => Phase2Kind::Commit,
            };
            for request in &requests {
                let branch_id = request.branch_id;
                session
                    .history
                    .push(self.now_ms, Event::Phase2Sent { branch_id, kind });
            }
        }
        for request in requests {
            self.effects.push(match direction {
                Some(Direction::Rollback) => Effect::BranchRollback(request),
                _ => Effect::BranchCommit(request),
            });
        }
        if finished {
            self.finish_pass(transaction_id);
        }
    }

    pub(super) fn remove_branch(&mut self, transaction_id: TransactionId, branch_id: BranchId) {
        if let Some(session) = self.sessions.get_mut(&transaction_id)
            && let Some(branch) = session.branches.remove(branch_id)
        {
            release_locks(&mut self.locks, &branch);
        }
        self.persist(Record::BranchRemove {
            transaction_id,
            branch_id,
        });
    }

    /// Applies the outcome of a phase-2 request (see [`Coordinator::branch_result`]).
    pub(super) fn apply_branch_result(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        branch_id: BranchId,
        outcome: BranchOutcome,
    ) {
        let timeout_flavour = self
            .status_of(transaction_id)
            .is_some_and(is_timeout_rollbacking);
        let xaer_nota_retry_timeout_ms = self.config.xaer_nota_retry_timeout_ms;
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let answered_check = session
            .outbox_check()
            .is_some_and(|check| check.branch_id == branch_id);
        let Some(pass) = session.pass.as_mut() else {
            return;
        };
        let Some(lane) = pass.in_flight.remove(&branch_id) else {
            return;
        };
        session
            .history
            .push(now_ms, Event::Phase2Answered { branch_id, outcome });
        pass.busy[lane] = false;
        let direction = pass.direction;
        if branch_id == SAGA_ENGINE_BRANCH {
            return self.saga_engine_answered(now_ms, transaction_id, direction, outcome);
        }
        if answered_check && direction == Direction::Rollback {
            return self.outbox_check_answered(now_ms, transaction_id, branch_id, outcome);
        }
        // Seata's XAER_NOTA rule (semantics §1.5): the database forgot the XA id, which after
        // long enough means the branch was finished by someone else (or never prepared).
        let timeout_ms = i64::from(session.global.timeout_ms);
        let xaer_nota_given_up = now_ms
            > session
                .global
                .begin_time_ms
                .saturating_add(timeout_ms)
                .saturating_add(xaer_nota_retry_timeout_ms.max(timeout_ms));
        let outcome = match outcome {
            BranchOutcome::Status(
                BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable
                | BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable,
            ) if xaer_nota_given_up => BranchOutcome::Status(match direction {
                Direction::Commit => BranchStatus::PhaseTwoCommitted,
                Direction::Rollback => BranchStatus::PhaseTwoRollbacked,
            }),
            other => other,
        };
        let failure = match (pass.direction, outcome) {
            (Direction::Commit, BranchOutcome::Status(BranchStatus::PhaseTwoCommitted))
            | (Direction::Rollback, BranchOutcome::Status(BranchStatus::PhaseTwoRollbacked)) => {
                None
            }
            (
                Direction::Commit,
                BranchOutcome::Status(BranchStatus::PhaseTwoCommitFailedUnretryable),
            ) => Some(PassFailure::Final(GlobalStatus::CommitFailed)),
            (
                Direction::Rollback,
                BranchOutcome::Status(BranchStatus::PhaseTwoRollbackFailedUnretryable),
            ) => Some(PassFailure::Final(if timeout_flavour {
                GlobalStatus::TimeoutRollbackFailed
            } else {
                GlobalStatus::RollbackFailed
            })),
            _ => Some(PassFailure::Retry),
        };
        if let Some(failure) = failure {
            // A final failure outranks a retry; the first final failure wins.
            match pass.failure {
                None | Some(PassFailure::Retry) => pass.failure = Some(failure),
                Some(PassFailure::Final(_)) => {}
            }
        }
        let settled = pass.failure.is_some() && pass.in_flight.is_empty();
        let pass_failure = pass.failure;
        if failure.is_none() {
            self.remove_branch(transaction_id, branch_id);
        }
        match pass_failure {
            None => self.advance(transaction_id),
            Some(_) if !settled => {}
            Some(PassFailure::Retry) => self.pass_failed(now_ms, transaction_id),
            Some(PassFailure::Final(status)) => self.end_failure(transaction_id, status),
        }
    }

    /// The Saga engine's answer to the one request of a Saga transaction's pass (semantics
    /// §6.4): the engine may finish the saga either way, or ask for the other direction
    /// (compensation after a failed forward recovery, forward recovery after a timeout).
    fn saga_engine_answered(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        direction: Direction,
        outcome: BranchOutcome,
    ) {
        let timeout_flavour = self
            .status_of(transaction_id)
            .is_some_and(is_timeout_rollbacking);
        let rolled_back = if timeout_flavour {
            GlobalStatus::TimeoutRollbacked
        } else {
            GlobalStatus::Rollbacked
        };
        let status = match outcome {
            BranchOutcome::Status(status) => status,
            BranchOutcome::Unreachable => BranchStatus::Unknown,
        };
        match (direction, status) {
            (Direction::Commit, BranchStatus::PhaseTwoCommitted) => {
                self.saga_engine_finished(transaction_id, GlobalStatus::Committed)
            }
            (_, BranchStatus::PhaseTwoRollbacked) => {
                self.saga_engine_finished(transaction_id, rolled_back)
            }
            // The engine ended the saga as failed with nothing to compensate.
            (Direction::Commit, BranchStatus::PhaseOneFailed) => {
                self.saga_engine_finished(transaction_id, GlobalStatus::Finished)
            }
            (Direction::Commit, BranchStatus::PhaseTwoCommitFailedUnretryable) => {
                self.end_failure(transaction_id, GlobalStatus::CommitFailed)
            }
            (Direction::Rollback, BranchStatus::PhaseTwoRollbackFailedUnretryable) => {
                let failed = if timeout_flavour {
                    GlobalStatus::TimeoutRollbackFailed
                } else {
                    GlobalStatus::RollbackFailed
                };
                self.end_failure(transaction_id, failed)
            }
            (Direction::Commit, BranchStatus::PhaseTwoRollbackFailedRetryable) => {
                self.retry_later(now_ms, transaction_id, Some(GlobalStatus::RollbackRetrying))
            }
            (Direction::Rollback, BranchStatus::PhaseTwoCommitFailedRetryable) => {
                self.retry_later(now_ms, transaction_id, Some(GlobalStatus::CommitRetrying))
            }
            _ => self.retry_later(now_ms, transaction_id, None),
        }
    }

    /// The Saga engine has finished the saga as `final_status` (its answer, or its report).
    /// Without participants that ends it. Participants' branches (a TCC service a step called,
    /// say) then follow the outcome: committed when the saga committed, else rolled back —
    /// a Ferrata extension; Seata's TC drops them.
    pub(super) fn saga_engine_finished(
        &mut self,
        transaction_id: TransactionId,
        final_status: GlobalStatus,
    ) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        if !session.has_saga_participants() {
            return self.end_success(transaction_id, final_status);
        }
        session.saga_engine_done = true;
        let reply = session.pass.take().and_then(|p| p.reply);
        let engine_branches: Vec<BranchId> = session
            .branches
            .iter()
            .filter(|b| b.branch_type == BranchType::Saga)
            .map(|b| b.branch_id)
            .collect();
        let current = session.global.status;
        for branch_id in engine_branches {
            self.remove_branch(transaction_id, branch_id);
        }
        // A retry status already says the direction; otherwise the pass starts it afresh.
        let (direction, status) = match final_status {
            GlobalStatus::Committed if current == GlobalStatus::CommitRetrying => {
                (Direction::Commit, current)
            }
            GlobalStatus::Committed => (Direction::Commit, GlobalStatus::Committing),
            _ if matches!(
                current,
                GlobalStatus::RollbackRetrying
                    | GlobalStatus::TimeoutRollbacking
                    | GlobalStatus::TimeoutRollbackRetrying
            ) =>
            {
                (Direction::Rollback, current)
            }
            GlobalStatus::TimeoutRollbacked => {
                (Direction::Rollback, GlobalStatus::TimeoutRollbacking)
            }
            _ => (Direction::Rollback, GlobalStatus::Rollbacking),
        };
        self.set_status(transaction_id, status);
        // A TM waiting on the engine's pass hears where the saga stands; participants are
        // finished by the TC like any branch.
        self.answer(reply, status);
        self.start_pass(transaction_id, direction, Scope::All, None);
    }

    /// The producer's answer to the check of a two-phase message (its rollback pass asks
    /// nothing else first): whether the local transaction that recorded the message committed.
    fn outbox_check_answered(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        check: BranchId,
        outcome: BranchOutcome,
    ) {
        match outcome {
            BranchOutcome::Status(BranchStatus::PhaseTwoRollbacked) => {
                // The producer's row now says "rolled back", so its local transaction can no
                // longer commit. Recorded, so that retries and a restart skip the question.
                let parallel = self.config.parallel_phase2;
                let Some(session) = self.sessions.get_mut(&transaction_id) else {
                    return;
                };
                if let Some(branch) = session.branches.get_mut(check) {
                    branch.status = BranchStatus::PhaseTwoRollbacked;
                }
                let lanes = lanes_of(
                    session
                        .branches
                        .iter()
                        .rev()
                        .filter(|b| b.branch_id != check)
                        .collect(),
                    parallel,
                );
                if let Some(pass) = session.pass.as_mut() {
                    pass.busy = vec![false; lanes.len()];
                    pass.lanes = lanes;
                }
                self.persist(Record::BranchUpdate {
                    transaction_id,
                    branch_id: check,
                    status: BranchStatus::PhaseTwoRollbacked,
                    application_data: None,
                });
                self.advance(transaction_id);
            }
            // "Committed: deliver." The switch is logged before the first BranchCommit.
            BranchOutcome::Status(BranchStatus::PhaseTwoCommitFailedRetryable) => {
                let Some(session) = self.sessions.get_mut(&transaction_id) else {
                    return;
                };
                let reply = session.pass.take().and_then(|p| p.reply);
                // Delivery starts its own retry sequence, not the check's longer backoff.
                session.failed_passes = 0;
                self.set_status(transaction_id, GlobalStatus::CommitRetrying);
                self.answer(reply, GlobalStatus::CommitRetrying);
                self.start_pass(transaction_id, Direction::Commit, Scope::All, None);
            }
            // Unknown yet (producer offline, database error): ask again later; consumers wait.
            _ => self.retry_later(now_ms, transaction_id, None),
        }
    }

    /// A branch could not finish: move to the retrying status, answer a waiting TM with it,
    /// and try the whole pass again after a backoff.
    pub(super) fn pass_failed(&mut self, now_ms: i64, transaction_id: TransactionId) {
        self.retry_later(now_ms, transaction_id, None);
    }

    /// Ends the current pass and schedules another after a backoff, in `switch_to` (a retrying
    /// status of the other direction) or in the retrying status of the current one.
    fn retry_later(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        switch_to: Option<GlobalStatus>,
    ) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let reply = session.pass.take().and_then(|p| p.reply);
        session.failed_passes = session.failed_passes.saturating_add(1);
        self.counts.phase2_retries += 1;
        let next = switch_to.unwrap_or(match session.global.status {
            GlobalStatus::Committing => GlobalStatus::CommitRetrying,
            GlobalStatus::Rollbacking => GlobalStatus::RollbackRetrying,
            GlobalStatus::TimeoutRollbacking => GlobalStatus::TimeoutRollbackRetrying,
            other => other,
        });
        self.set_status(transaction_id, next);
        self.answer(reply, next);
        self.schedule_retry(transaction_id, now_ms);
    }

    pub(super) fn finish_pass(&mut self, transaction_id: TransactionId) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let Some(pass) = session.pass.take() else {
            return;
        };
        let status = session.global.status;
        let no_branches = !session.has_branches_to_finish();
        let all_async = session.can_be_committed_async();
        match pass.direction {
            Direction::Commit if no_branches => {
                self.end_success_replying(transaction_id, GlobalStatus::Committed, pass.reply)
            }
            Direction::Commit if all_async => {
                // The synchronous part is done; AT branches only need their undo logs removed.
                self.set_status(transaction_id, GlobalStatus::AsyncCommitting);
                self.answer(pass.reply, GlobalStatus::Committed);
                self.start_pass(transaction_id, Direction::Commit, Scope::All, None);
            }
            Direction::Rollback if no_branches => {
                let final_status = if is_timeout_rollbacking(status) {
                    GlobalStatus::TimeoutRollbacked
                } else {
                    GlobalStatus::Rollbacked
                };
                self.end_success_replying(transaction_id, final_status, pass.reply)
            }
            _ => {
                // Branches joined during the pass (Saga forward recovery): go round again.
                self.answer(pass.reply, status);
                self.schedule_retry(transaction_id, 0);
            }
        }
    }

    pub(super) fn end_success(
        &mut self,
        transaction_id: TransactionId,
        final_status: GlobalStatus,
    ) {
        let reply = self
            .sessions
            .get_mut(&transaction_id)
            .and_then(|s| s.pass.take())
            .and_then(|p| p.reply);
        self.end_success_replying(transaction_id, final_status, reply);
    }

    /// A successful end: release every lock, forget the session, answer a waiting TM.
    pub(super) fn end_success_replying(
        &mut self,
        transaction_id: TransactionId,
        final_status: GlobalStatus,
        reply: Option<Waiting>,
    ) {
        self.unschedule(transaction_id);
        if let Some(session) = self.sessions.remove(&transaction_id) {
            for branch in session.branches.iter() {
                release_locks(&mut self.locks, branch);
            }
            // An asynchronous commit was counted as decided when the TM got its answer.
            if session.global.status != GlobalStatus::AsyncCommitting {
                self.counts
                    .decided(&session.global, final_status, self.now_ms);
            }
            self.counts.ended(&session.global, final_status);
            // Conditioned on the status it ends from (a commit with no branch ends straight
            // from Begin: that is its decision).
            self.persist_expecting(
                Record::GlobalRemove { transaction_id },
                session.global.status,
            );
        } else {
            self.persist(Record::GlobalRemove { transaction_id });
        }
        self.answer(reply, final_status);
    }

    /// A failed end: the session stays, with its locks, for an operator to resolve.
    pub(super) fn end_failure(&mut self, transaction_id: TransactionId, status: GlobalStatus) {
        self.unschedule(transaction_id);
        let reply = self
            .sessions
            .get_mut(&transaction_id)
            .and_then(|s| s.pass.take())
            .and_then(|p| p.reply);
        self.set_status(transaction_id, status);
        if status == GlobalStatus::RollbackRetryTimeout
            && self.config.rollback_retry_timeout_unlock
            && let Some(session) = self.sessions.get(&transaction_id)
        {
            for branch in session.branches.iter() {
                release_locks(&mut self.locks, branch);
            }
        }
        tracing::error!(
            transaction_id = transaction_id.0,
            ?status,
            "global transaction ended in failure and needs manual handling"
        );
        self.answer(reply, status);
    }
}

/// Branch ids in visiting order, in one lane, or in one lane per resource (in the order
/// resources first appear) with parallel phase 2.
fn lanes_of(ordered: Vec<&BranchSession>, parallel: bool) -> Vec<VecDeque<BranchId>> {
    if !parallel {
        return vec![ordered.iter().map(|b| b.branch_id).collect()];
    }
    let mut lanes: Vec<VecDeque<BranchId>> = Vec::new();
    let mut lane_of: HashMap<&str, usize> = HashMap::new();
    for branch in ordered {
        let lane = *lane_of
            .entry(branch.resource_id.as_str())
            .or_insert_with(|| {
                lanes.push(VecDeque::new());
                lanes.len() - 1
            });
        lanes[lane].push_back(branch.branch_id);
    }
    lanes
}

/// The branch id of the one phase-2 request a Saga transaction's pass sends: Seata addresses
/// the Saga engine itself, not a branch (semantics §6.4).
pub(super) const SAGA_ENGINE_BRANCH: BranchId = BranchId(-1);

/// The request to the Saga engine that began `global`: its resource is
/// `<applicationId>#<txServiceGroup>`, any connection that registered it may answer, and the
/// application data names the transaction's status (the engine forwards or compensates by it).
fn saga_engine_request(transaction_id: TransactionId, global: &GlobalSession) -> BranchRequest {
    BranchRequest {
        transaction_id,
        xid: global.xid.clone(),
        branch_id: SAGA_ENGINE_BRANCH,
        branch_type: BranchType::Saga,
        resource_id: format!(
            "{}#{}",
            global.application_id, global.transaction_service_group
        ),
        application_data: global.status.java_name().to_owned(),
        client_id: String::new(),
    }
}
