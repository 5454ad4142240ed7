//! The engine's side of Seata's Saga protocol with the TC: the global status a run reports,
//! and the answers to the TC's recovery requests (branch -1 on `<applicationId>#<group>`).

use std::sync::Weak;

use ferrata::{BranchHandler, BranchRequest, BranchStatus, GlobalStatus};

use super::{Inner, SagaEngine, SagaOutcome, run};
use crate::model::{ExecutionStatus, RecoverStrategy};

/// GlobalReport at the end of a run (semantics §6.4).
pub(crate) fn report_status(outcome: &SagaOutcome) -> GlobalStatus {
    use ExecutionStatus::{Failed, Succeed, Unknown};
    match (outcome.status, outcome.compensation_status) {
        (Succeed, None) => GlobalStatus::Committed,
        (_, Some(Succeed)) => GlobalStatus::Rollbacked,
        (_, Some(Failed | Unknown)) => GlobalStatus::RollbackRetrying,
        (Failed, None) => GlobalStatus::Finished,
        (Unknown, None) => GlobalStatus::CommitRetrying,
        _ => GlobalStatus::UnKnown,
    }
}

/// The answer to the TC's commit (forward recovery) once the run ended as `outcome`.
fn commit_answer(outcome: &SagaOutcome) -> BranchStatus {
    use ExecutionStatus::{Failed, Succeed, Unknown};
    match (outcome.status, outcome.compensation_status) {
        (Succeed, None) => BranchStatus::PhaseTwoCommitted,
        (_, Some(Succeed)) => BranchStatus::PhaseTwoRollbacked,
        (_, Some(Failed | Unknown)) => BranchStatus::PhaseTwoRollbackFailedRetryable,
        (Failed, None) => BranchStatus::PhaseOneFailed,
        _ => BranchStatus::PhaseTwoCommitFailedRetryable,
    }
}

/// Answers the TC's branch -1 requests. Holds the engine weakly: the client keeps its handlers
/// alive, and the engine keeps the client.
pub(crate) struct RecoveryHandler {
    engine: Weak<Inner>,
}

impl RecoveryHandler {
    pub(crate) fn new(engine: &SagaEngine) -> Self {
        RecoveryHandler {
            engine: std::sync::Arc::downgrade(&engine.inner),
        }
    }

    fn engine(&self) -> Option<SagaEngine> {
        self.engine.upgrade().map(|inner| SagaEngine { inner })
    }
}

impl BranchHandler for RecoveryHandler {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        let Some(engine) = self.engine() else {
            return BranchStatus::PhaseTwoCommitFailedRetryable;
        };
        match engine.inner.store.machine(&request.xid).await {
            Ok(None) => return BranchStatus::PhaseTwoCommitted,
            Ok(Some(_)) => {}
            Err(error) => {
                tracing::warn!(xid = %request.xid, %error, "saga: forward recovery cannot read the instance");
                return BranchStatus::PhaseTwoCommitFailedRetryable;
            }
        }
        match run::forward(&engine, &request.xid).await {
            Ok(outcome) => commit_answer(&outcome),
            Err(error) => {
                tracing::warn!(xid = %request.xid, %error, "saga: forward recovery failed");
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
        }
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        let Some(engine) = self.engine() else {
            return BranchStatus::PhaseTwoRollbackFailedRetryable;
        };
        let record = match engine.inner.store.machine(&request.xid).await {
            Ok(Some(record)) => record,
            Ok(None) => return BranchStatus::PhaseTwoRollbacked,
            Err(error) => {
                tracing::warn!(xid = %request.xid, %error, "saga: compensation cannot read the instance");
                return BranchStatus::PhaseTwoRollbackFailedRetryable;
            }
        };
        let timed_out = matches!(
            request.application_data.as_str(),
            "TimeoutRollbacking" | "TimeoutRollbackRetrying"
        );
        if timed_out && record.compensation_status.is_none() {
            let forward = match run::definition_of(&engine, &record).await {
                Ok(machine) => machine.recover_strategy == RecoverStrategy::Forward,
                Err(error) => {
                    tracing::warn!(xid = %request.xid, %error, "saga: no definition for the instance");
                    return BranchStatus::PhaseTwoRollbackFailedRetryable;
                }
            };
            if forward {
                // Seata's answer that turns the TC to commit retries, i.e. forward recovery.
                return BranchStatus::PhaseTwoCommitFailedRetryable;
            }
        }
        match run::compensate(&engine, &request.xid).await {
            Ok(outcome) if outcome.compensation_status == Some(ExecutionStatus::Succeed) => {
                BranchStatus::PhaseTwoRollbacked
            }
            Ok(_) => BranchStatus::PhaseTwoRollbackFailedRetryable,
            Err(error) => {
                tracing::warn!(xid = %request.xid, %error, "saga: compensation failed");
                BranchStatus::PhaseTwoRollbackFailedRetryable
            }
        }
    }
}
