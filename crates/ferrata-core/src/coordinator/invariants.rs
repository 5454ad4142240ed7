//! What must never happen, checked in debug builds at the end of every entry point: a reply
//! token left without an answer or answered twice, the lock table and the branches out of
//! mirror, more than one phase-2 request in flight per lane of a pass, a message's consumer
//! told to roll back before its producer's check said so. Full checks cost time
//! proportional to the state, so on a large state they run on a sample of calls only.

use std::collections::BTreeSet;

use super::*;

/// Above this much state (sessions plus locked rows) full checks run on one call in
/// [`SAMPLE_EVERY`].
const FULL_CHECK_STATE: usize = 4_096;
const SAMPLE_EVERY: u64 = 1_024;

/// The reply tokens the coordinator owes an answer, tracked in debug builds only.
#[derive(Debug, Default)]
pub(super) struct OpenTokens {
    open: BTreeSet<ReplyToken>,
    calls: u64,
}

impl Coordinator {
    /// A request with `token` arrived.
    pub(super) fn token_opened(&mut self, token: ReplyToken) {
        let fresh = self.open_tokens.open.insert(token);
        debug_assert!(
            fresh,
            "reply token {token} reused while its request is unanswered"
        );
    }

    /// `token` is being answered.
    pub(super) fn token_answered(&mut self, token: ReplyToken) {
        let was_open = self.open_tokens.open.remove(&token);
        debug_assert!(
            was_open,
            "reply token {token} answered twice or never opened"
        );
    }

    /// Checks the invariants after an entry point (`handle`, `branch_result`, `tick`).
    pub(super) fn check_invariants(&mut self) {
        self.open_tokens.calls += 1;
        let state = self.sessions.len() + self.locks.len();
        if state > FULL_CHECK_STATE && !self.open_tokens.calls.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        self.check_tokens_are_waiting();
        self.check_passes();
        self.check_outbox_passes();
        self.check_locks_mirror_branches();
    }

    /// A two-phase message's check branch is never sent a commit, and while its answer is not
    /// "rolled back" a rollback pass holds nothing but the check: no consumer hears of a
    /// rollback that the producer's local transaction could still overtake.
    fn check_outbox_passes(&self) {
        for (transaction_id, session) in &self.sessions {
            let (Some(pass), Some(check)) = (&session.pass, session.outbox_check()) else {
                continue;
            };
            let others_queued = pass.in_flight.keys().any(|id| *id != check.branch_id)
                || pass.lanes.iter().flatten().any(|id| *id != check.branch_id);
            match pass.direction {
                Direction::Commit => debug_assert!(
                    !pass.in_flight.contains_key(&check.branch_id)
                        && !pass.lanes.iter().flatten().any(|id| *id == check.branch_id),
                    "transaction {transaction_id}: a commit pass visits the message's check"
                ),
                Direction::Rollback => debug_assert!(
                    !others_queued || check.status == BranchStatus::PhaseTwoRollbacked,
                    "transaction {transaction_id}: consumers queued for rollback before the \
                     producer's check answered rolled back"
                ),
            }
        }
    }

    /// Every token not answered yet is held by a pass that will answer it: none was dropped.
    fn check_tokens_are_waiting(&self) {
        let waiting: BTreeSet<ReplyToken> = self
            .sessions
            .values()
            .filter_map(|s| s.pass.as_ref()?.reply.map(|w| w.token))
            .collect();
        debug_assert_eq!(
            waiting, self.open_tokens.open,
            "reply tokens dropped without an answer (open but no pass waits for them)"
        );
    }

    /// At most one phase-2 request in flight per lane of a pass, each for a live branch (or,
    /// in a Saga transaction, for its engine).
    fn check_passes(&self) {
        for (transaction_id, session) in &self.sessions {
            let Some(pass) = &session.pass else { continue };
            let lanes: BTreeSet<usize> = pass.in_flight.values().copied().collect();
            debug_assert_eq!(
                lanes.len(),
                pass.in_flight.len(),
                "transaction {transaction_id}: two phase-2 requests in flight in one lane"
            );
            let busy = pass.busy.iter().filter(|b| **b).count();
            debug_assert_eq!(
                busy,
                pass.in_flight.len(),
                "transaction {transaction_id}: busy lanes and requests in flight disagree"
            );
            for branch_id in pass.in_flight.keys() {
                debug_assert!(
                    session.branches.get(*branch_id).is_some()
                        || (*branch_id == super::phase2::SAGA_ENGINE_BRANCH && session.is_saga()),
                    "transaction {transaction_id}: a request in flight for unknown branch {branch_id}"
                );
            }
        }
    }

    /// Every locked row belongs to a live AT branch whose lock key names it, and every AT branch
    /// of a transaction still in Begin has its rows held by its transaction.
    fn check_locks_mirror_branches(&self) {
        let mut counted = 0;
        for (resource, table, pk, holder) in self.locks.rows() {
            counted += 1;
            let branch = self
                .sessions
                .get(&holder.transaction_id)
                .and_then(|s| s.branches.get(holder.branch_id));
            let Some(branch) = branch else {
                debug_assert!(
                    false,
                    "row {resource}/{table}:{pk} held by a gone branch {holder:?}"
                );
                continue;
            };
            let rows = parse_lock_key(&branch.lock_key, LockKeyLimits::NONE).unwrap_or_default();
            debug_assert!(
                branch.resource_id == resource && rows.contains(&(table, pk)),
                "row {resource}/{table}:{pk} held by branch {holder:?}, whose lock key lacks it"
            );
        }
        debug_assert_eq!(
            counted,
            self.locks.len(),
            "the lock table miscounts its rows"
        );
        for (transaction_id, session) in &self.sessions {
            if session.global.status != GlobalStatus::Begin {
                continue;
            }
            for branch in session
                .branches
                .iter()
                .filter(|b| b.branch_type == BranchType::At)
            {
                let rows =
                    parse_lock_key(&branch.lock_key, LockKeyLimits::NONE).unwrap_or_default();
                for (table, pk) in rows {
                    let holder = self.locks.holder(&branch.resource_id, table, pk);
                    debug_assert_eq!(
                        holder.map(|h| h.transaction_id),
                        Some(*transaction_id),
                        "row {table}:{pk} of branch {} is not locked by its transaction",
                        branch.branch_id
                    );
                }
            }
        }
    }
}
