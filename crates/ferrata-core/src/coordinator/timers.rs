//! Timers: transaction timeouts, phase-2 retries with exponential backoff, and the periodic
//! undo-log cleanup. Time only ever comes in as the `now` argument.

use super::*;

impl Coordinator {
    /// Runs what is due at `now` (see [`Coordinator::tick`]).
    pub(super) fn run_timers(&mut self, now_ms: i64) {
        while let Some(&(deadline, transaction_id)) = self.timeouts.first() {
            if deadline >= now_ms {
                break;
            }
            self.timeouts.remove(&(deadline, transaction_id));
            let is_begin = self.status_of(transaction_id) == Some(GlobalStatus::Begin);
            if is_begin {
                tracing::info!(
                    transaction_id = transaction_id.0,
                    "global transaction timed out; rolling back"
                );
                self.set_status(transaction_id, GlobalStatus::TimeoutRollbacking);
                self.start_pass(transaction_id, Direction::Rollback, Scope::All, None);
            }
        }
        while let Some(&(at, transaction_id)) = self.retries.first() {
            if at > now_ms {
                break;
            }
            self.retries.remove(&(at, transaction_id));
            let Some(session) = self.sessions.get_mut(&transaction_id) else {
                continue;
            };
            session.retry_at_ms = None;
            if session.pass.is_some() {
                continue;
            }
            let status = session.global.status;
            let age = now_ms.saturating_sub(session.global.begin_time_ms);
            if status.is_committing() {
                // Only Committing / CommitRetrying give up (semantics §1.4); AsyncCommitting
                // (AT undo-log deletion, already reported Committed) is retried indefinitely.
                let limit = self.config.max_commit_retry_timeout_ms;
                if limit.is_some_and(|limit| age > limit) && status != GlobalStatus::AsyncCommitting
                {
                    self.end_failure(transaction_id, GlobalStatus::CommitRetryTimeout);
                } else {
                    self.start_pass(transaction_id, Direction::Commit, Scope::All, None);
                }
            } else if status.is_rollbacking() {
                let limit = self.config.max_rollback_retry_timeout_ms;
                if limit.is_some_and(|limit| age > limit) {
                    self.end_failure(transaction_id, GlobalStatus::RollbackRetryTimeout);
                } else {
                    self.start_pass(transaction_id, Direction::Rollback, Scope::All, None);
                }
            }
        }
        if now_ms >= self.next_undo_log_delete_at_ms {
            self.next_undo_log_delete_at_ms = now_ms.saturating_add(
                self.config
                    .undo_log_delete_period_ms
                    .unwrap_or(i64::MAX)
                    .max(1),
            );
            self.effects.push(Effect::UndoLogDelete {
                save_days: self.config.undo_log_save_days,
            });
        }
    }

    pub(super) fn schedule_retry(&mut self, transaction_id: TransactionId, now_ms: i64) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let exponent = session.failed_passes.saturating_sub(1).min(20);
        let backoff = if session.failed_passes == 0 {
            0
        } else {
            self.config
                .retry_backoff_initial_ms
                .saturating_mul(1 << exponent)
                .min(self.config.retry_backoff_max_ms)
        };
        let at = now_ms.saturating_add(backoff);
        if let Some(previous) = session.retry_at_ms.replace(at) {
            self.retries.remove(&(previous, transaction_id));
        }
        self.retries.insert((at, transaction_id));
    }

    pub(super) fn unschedule(&mut self, transaction_id: TransactionId) {
        if let Some(session) = self.sessions.get_mut(&transaction_id) {
            if let Some(at) = session.retry_at_ms.take() {
                self.retries.remove(&(at, transaction_id));
            }
            let deadline = session.deadline_ms();
            self.timeouts.remove(&(deadline, transaction_id));
        }
    }
}
