//! The Seata workloads as pure per-transaction state machines: given the answer to the last
//! request, say what to send next, when to retry, or how the transaction ended. No I/O and no
//! clock, so every path (conflict retries, failures, rollbacks) is unit-tested.

use std::time::Duration;

use ferrata_proto::{GlobalStatus, TransactionExceptionCode};

/// What the generator drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Empty global transaction: begin + commit.
    BeginCommit,
    /// AT-shaped: begin + branch registers with distinct lock keys + commit.
    AtCommit,
    /// The same, ending in rollback.
    AtRollback,
    /// Every transaction registers its branch on the same lock key.
    HotKey,
    /// DTM sagas over HTTP (not Seata).
    DtmSaga,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::BeginCommit => "begin-commit",
            Workload::AtCommit => "at-commit",
            Workload::AtRollback => "at-rollback",
            Workload::HotKey => "hot-key",
            Workload::DtmSaga => "dtm-saga",
        }
    }

    /// True when transactions register branches, so RM connections are needed.
    pub fn has_branches(self) -> bool {
        matches!(
            self,
            Workload::AtCommit | Workload::AtRollback | Workload::HotKey
        )
    }
}

/// Parameters shared by every transaction of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPlan {
    pub workload: Workload,
    /// Branches per AT transaction (hot-key always registers one).
    pub branches: u8,
    /// Conflict retries before giving up, and the pause between them (Java: 30 × 10 ms).
    pub lock_retries: u32,
    pub lock_retry_interval: Duration,
}

impl TxPlan {
    pub fn new(workload: Workload) -> TxPlan {
        TxPlan {
            workload,
            branches: 2,
            lock_retries: 30,
            lock_retry_interval: Duration::from_millis(10),
        }
    }

    fn branch_count(&self) -> u8 {
        match self.workload {
            Workload::AtCommit | Workload::AtRollback => self.branches,
            Workload::HotKey => 1,
            Workload::BeginCommit | Workload::DtmSaga => 0,
        }
    }
}

/// The single row every hot-key transaction locks.
pub const HOT_LOCK_KEY: &str = "bench_hot:1";

/// The next request of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Begin,
    /// Register branch number `index` (0-based).
    Register {
        index: u8,
    },
    Commit,
    Rollback,
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed; the string is the error kind counted in the report.
    Failed(&'static str),
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Send(Step),
    /// A lock conflict: count it, wait, then send the step again.
    RetryAfter(Duration, Step),
    Done(Outcome),
}

/// The answer to a branch registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterAnswer {
    Registered {
        branch_id: i64,
    },
    /// LockKeyConflict: Java AT clients retry only for this code.
    Conflict,
    Failed(TransactionExceptionCode),
}

/// The answer to a global commit or rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndAnswer {
    pub success: bool,
    pub status: GlobalStatus,
}

/// One transaction's progress.
#[derive(Debug, Clone)]
pub struct TxMachine {
    plan_branches: u8,
    ends_in_rollback: bool,
    lock_retries: u32,
    lock_retry_interval: Duration,
    hot_key: bool,
    /// Distinguishes this transaction's rows from every other's: (connection, sequence).
    owner: (u32, u64),
    xid: String,
    registered: u8,
    conflicts: u32,
    /// Set when the transaction is being rolled back because it failed.
    failure: Option<&'static str>,
}

impl TxMachine {
    /// A fresh transaction; `owner` must be unique among concurrently live transactions.
    pub fn new(plan: &TxPlan, owner: (u32, u64)) -> TxMachine {
        TxMachine {
            plan_branches: plan.branch_count(),
            ends_in_rollback: plan.workload == Workload::AtRollback,
            lock_retries: plan.lock_retries,
            lock_retry_interval: plan.lock_retry_interval,
            hot_key: plan.workload == Workload::HotKey,
            owner,
            xid: String::new(),
            registered: 0,
            conflicts: 0,
            failure: None,
        }
    }

    pub fn start(&self) -> Next {
        Next::Send(Step::Begin)
    }

    /// The XID once begun (empty before).
    pub fn xid(&self) -> &str {
        &self.xid
    }

    /// The lock key of branch `index`: the shared hot row, or rows no one else touches.
    pub fn lock_key(&self, index: u8) -> String {
        if self.hot_key {
            HOT_LOCK_KEY.to_owned()
        } else {
            format!("bench_t{index}:{}_{}", self.owner.0, self.owner.1)
        }
    }

    /// Conflicts met so far.
    pub fn conflicts(&self) -> u32 {
        self.conflicts
    }

    /// The answer to GlobalBegin: `Some(xid)` on success.
    pub fn on_begin(&mut self, xid: Option<String>) -> Next {
        match xid {
            Some(xid) if !xid.is_empty() => {
                self.xid = xid;
                self.after_branches()
            }
            _ => Next::Done(Outcome::Failed("begin_failed")),
        }
    }

    pub fn on_register(&mut self, answer: RegisterAnswer) -> Next {
        let index = self.registered;
        match answer {
            RegisterAnswer::Registered { .. } => {
                self.registered += 1;
                self.conflicts = 0;
                self.after_branches()
            }
            RegisterAnswer::Conflict if self.conflicts < self.lock_retries => {
                self.conflicts += 1;
                Next::RetryAfter(self.lock_retry_interval, Step::Register { index })
            }
            // As a Java TM does when the business method throws: roll the global back.
            RegisterAnswer::Conflict => self.fail("lock_conflict_exhausted"),
            RegisterAnswer::Failed(TransactionExceptionCode::LockKeyConflictFailFast) => {
                self.fail("lock_conflict_fail_fast")
            }
            RegisterAnswer::Failed(_) => self.fail("branch_register_failed"),
        }
    }

    /// The answer to the final GlobalCommit or GlobalRollback.
    pub fn on_end(&mut self, step: Step, answer: EndAnswer) -> Next {
        let ok = match step {
            Step::Commit => answer.success && commit_succeeded(answer.status),
            _ => answer.success && rollback_succeeded(answer.status),
        };
        if let Some(failure) = self.failure {
            // A rollback after a failure: the transaction failed whatever the rollback did.
            return Next::Done(Outcome::Failed(failure));
        }
        match (ok, step) {
            (true, _) => Next::Done(Outcome::Succeeded),
            (false, Step::Commit) => Next::Done(Outcome::Failed("commit_failed")),
            (false, _) => Next::Done(Outcome::Failed("rollback_failed")),
        }
    }

    fn after_branches(&self) -> Next {
        if self.registered < self.plan_branches {
            Next::Send(Step::Register {
                index: self.registered,
            })
        } else if self.ends_in_rollback {
            Next::Send(Step::Rollback)
        } else {
            Next::Send(Step::Commit)
        }
    }

    fn fail(&mut self, kind: &'static str) -> Next {
        self.failure = Some(kind);
        Next::Send(Step::Rollback)
    }
}

/// Commit answers a TC gives for a commit that went through (AT commits asynchronously).
fn commit_succeeded(status: GlobalStatus) -> bool {
    status.is_commit_decided() || status == GlobalStatus::Finished
}

fn rollback_succeeded(status: GlobalStatus) -> bool {
    status.is_rollback_decided() || status == GlobalStatus::Finished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_end(status: GlobalStatus) -> EndAnswer {
        EndAnswer {
            success: true,
            status,
        }
    }

    #[test]
    fn begin_commit_is_two_requests() {
        let mut tx = TxMachine::new(&TxPlan::new(Workload::BeginCommit), (0, 1));
        assert_eq!(tx.start(), Next::Send(Step::Begin));
        assert_eq!(
            tx.on_begin(Some("127.0.0.1:8091:42".into())),
            Next::Send(Step::Commit)
        );
        assert_eq!(tx.xid(), "127.0.0.1:8091:42");
        assert_eq!(
            tx.on_end(Step::Commit, ok_end(GlobalStatus::Committed)),
            Next::Done(Outcome::Succeeded)
        );
    }

    #[test]
    fn at_commit_registers_two_distinct_branches_then_commits() {
        let plan = TxPlan::new(Workload::AtCommit);
        let mut tx = TxMachine::new(&plan, (3, 9));
        let other = TxMachine::new(&plan, (3, 10));
        assert_eq!(
            tx.on_begin(Some("x:1".into())),
            Next::Send(Step::Register { index: 0 })
        );
        assert_ne!(tx.lock_key(0), tx.lock_key(1));
        assert_ne!(tx.lock_key(0), other.lock_key(0));
        assert_eq!(tx.lock_key(1), "bench_t1:3_9");
        assert_eq!(
            tx.on_register(RegisterAnswer::Registered { branch_id: 1 }),
            Next::Send(Step::Register { index: 1 })
        );
        assert_eq!(
            tx.on_register(RegisterAnswer::Registered { branch_id: 2 }),
            Next::Send(Step::Commit)
        );
        // AT commits asynchronously: AsyncCommitting is a success.
        assert_eq!(
            tx.on_end(Step::Commit, ok_end(GlobalStatus::AsyncCommitting)),
            Next::Done(Outcome::Succeeded)
        );
    }

    #[test]
    fn at_rollback_ends_in_rollback() {
        let mut tx = TxMachine::new(&TxPlan::new(Workload::AtRollback), (0, 0));
        tx.on_begin(Some("x:1".into()));
        tx.on_register(RegisterAnswer::Registered { branch_id: 1 });
        assert_eq!(
            tx.on_register(RegisterAnswer::Registered { branch_id: 2 }),
            Next::Send(Step::Rollback)
        );
        assert_eq!(
            tx.on_end(Step::Rollback, ok_end(GlobalStatus::Rollbacked)),
            Next::Done(Outcome::Succeeded)
        );
        let mut bad = TxMachine::new(&TxPlan::new(Workload::AtRollback), (0, 1));
        assert_eq!(
            bad.on_end(Step::Rollback, ok_end(GlobalStatus::RollbackFailed)),
            Next::Done(Outcome::Failed("rollback_failed"))
        );
    }

    #[test]
    fn hot_key_retries_conflicts_with_backoff_then_gives_up_and_rolls_back() {
        let mut plan = TxPlan::new(Workload::HotKey);
        plan.lock_retries = 2;
        let mut tx = TxMachine::new(&plan, (1, 1));
        assert_eq!(tx.lock_key(0), HOT_LOCK_KEY);
        assert_eq!(
            tx.on_begin(Some("x:1".into())),
            Next::Send(Step::Register { index: 0 })
        );
        let retry = Next::RetryAfter(Duration::from_millis(10), Step::Register { index: 0 });
        assert_eq!(tx.on_register(RegisterAnswer::Conflict), retry);
        assert_eq!(tx.on_register(RegisterAnswer::Conflict), retry);
        assert_eq!(tx.conflicts(), 2);
        assert_eq!(
            tx.on_register(RegisterAnswer::Conflict),
            Next::Send(Step::Rollback)
        );
        // Even a clean rollback leaves the transaction failed, with the conflict as reason.
        assert_eq!(
            tx.on_end(Step::Rollback, ok_end(GlobalStatus::Rollbacked)),
            Next::Done(Outcome::Failed("lock_conflict_exhausted"))
        );
    }

    #[test]
    fn hot_key_succeeds_after_a_conflict() {
        let mut tx = TxMachine::new(&TxPlan::new(Workload::HotKey), (1, 2));
        tx.on_begin(Some("x:1".into()));
        assert!(matches!(
            tx.on_register(RegisterAnswer::Conflict),
            Next::RetryAfter(..)
        ));
        assert_eq!(
            tx.on_register(RegisterAnswer::Registered { branch_id: 5 }),
            Next::Send(Step::Commit)
        );
        assert_eq!(
            tx.on_end(Step::Commit, ok_end(GlobalStatus::Committed)),
            Next::Done(Outcome::Succeeded)
        );
    }

    #[test]
    fn failures_are_named() {
        let plan = TxPlan::new(Workload::AtCommit);
        let mut tx = TxMachine::new(&plan, (0, 0));
        assert_eq!(
            tx.on_begin(None),
            Next::Done(Outcome::Failed("begin_failed"))
        );
        let mut tx = TxMachine::new(&plan, (0, 1));
        tx.on_begin(Some("x:1".into()));
        assert_eq!(
            tx.on_register(RegisterAnswer::Failed(
                TransactionExceptionCode::GlobalTransactionNotExist
            )),
            Next::Send(Step::Rollback)
        );
        assert_eq!(
            tx.on_end(
                Step::Rollback,
                EndAnswer {
                    success: false,
                    status: GlobalStatus::Finished
                }
            ),
            Next::Done(Outcome::Failed("branch_register_failed"))
        );
        let mut tx = TxMachine::new(&plan, (0, 2));
        tx.on_begin(Some("x:1".into()));
        assert_eq!(
            tx.on_register(RegisterAnswer::Failed(
                TransactionExceptionCode::LockKeyConflictFailFast
            )),
            Next::Send(Step::Rollback)
        );
        let mut tx = TxMachine::new(&TxPlan::new(Workload::BeginCommit), (0, 3));
        tx.on_begin(Some("x:1".into()));
        assert_eq!(
            tx.on_end(
                Step::Commit,
                EndAnswer {
                    success: true,
                    status: GlobalStatus::CommitFailed
                }
            ),
            Next::Done(Outcome::Failed("commit_failed"))
        );
    }
}
