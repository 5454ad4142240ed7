//! The random run every invariant is checked under: operation sequences over a few transactions
//! and six rows (begins, AT and TCC registrations, reports, commits, rollbacks, phase-2 answers,
//! stale answers, time passing, restarts). The runner checks that each operation itself behaves
//! as the model expects; the global invariants are checked, one per file, through [`Invariant`].

use proptest::prelude::*;

use super::*;

/// Rows `orders:0` … `orders:5` are all the rows the runs lock.
pub const ROWS: u8 = 6;

#[derive(Debug, Clone)]
pub enum Op {
    Begin {
        timeout_ms: i32,
    },
    RegisterAt {
        tx: usize,
        rows: Vec<u8>,
        optimistic: bool,
        user: bool,
    },
    RegisterTcc {
        tx: usize,
    },
    Report {
        branch: usize,
        failed: bool,
    },
    Commit {
        tx: usize,
    },
    Rollback {
        tx: usize,
    },
    Answer {
        request: usize,
        outcome: u8,
    },
    StaleAnswer {
        tx: usize,
        branch: usize,
    },
    Tick {
        advance_ms: u16,
    },
    /// Crash and recover from the persisted records. A restart takes time, and ids are
    /// seeded from the clock: ids of sessions removed before the crash are only protected
    /// by that (recovered ids are observed explicitly).
    Restart {
        downtime_ms: u16,
    },
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (200..3_000i32).prop_map(|timeout_ms| Op::Begin { timeout_ms }),
        4 => (any::<usize>(), prop::collection::vec(0..ROWS, 1..4), any::<bool>(), any::<bool>())
            .prop_map(|(tx, rows, optimistic, user)| Op::RegisterAt { tx, rows, optimistic, user }),
        2 => any::<usize>().prop_map(|tx| Op::RegisterTcc { tx }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(branch, failed)| Op::Report { branch, failed }),
        2 => any::<usize>().prop_map(|tx| Op::Commit { tx }),
        2 => any::<usize>().prop_map(|tx| Op::Rollback { tx }),
        6 => (any::<usize>(), 0..8u8).prop_map(|(request, outcome)| Op::Answer { request, outcome }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(tx, branch)| Op::StaleAnswer { tx, branch }),
        3 => (0..2_000u16).prop_map(|advance_ms| Op::Tick { advance_ms }),
        1 => (1..1_000u16).prop_map(|downtime_ms| Op::Restart { downtime_ms }),
    ]
}

/// A run: up to 80 operations, and whether rows are unlocked at rollback-retry timeout.
pub fn runs() -> impl Strategy<Value = (Vec<Op>, Unlock)> {
    (
        prop::collection::vec(op(), 1..80),
        prop_oneof![Just(Unlock::Keep), Just(Unlock::Release)],
    )
}

/// The proptest settings of every invariant: 128 runs, nothing persisted.
pub fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What a transaction in RollbackRetryTimeout does with its rows
/// (`rollback_retry_timeout_unlock`, semantics §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unlock {
    #[default]
    Keep,
    Release,
}

/// What the runner knows about the run so far.
#[derive(Debug, Default)]
pub struct Model {
    pub now: i64,
    pub txs: Vec<Tx>,
    pub branches: Vec<(usize, BranchId)>,
    /// Phase-2 requests sent and not answered yet: (transaction, branch, is_commit).
    pub outstanding: Vec<(TransactionId, BranchId, bool)>,
    pub unlock: Unlock,
}

impl Model {
    fn tx(&self, pick: usize) -> Option<Tx> {
        (!self.txs.is_empty()).then(|| self.txs[pick % self.txs.len()].clone())
    }
}

/// One step of a run as an invariant sees it.
#[derive(Debug)]
pub struct Step {
    /// The effects of a commit, rollback, phase-2 answer, tick or restart (other operations
    /// have their exact effects asserted by the harness or the runner).
    pub effects: Vec<Effect>,
    /// Whether the step was a tick, after which no timed-out session may remain in Begin.
    pub after_tick: bool,
}

/// One global invariant, checked after every step of a run.
pub trait Invariant {
    fn check(&mut self, h: &mut Harness, model: &Model, step: &Step) -> Result<(), TestCaseError>;
}

/// Checks nothing: for runs that only look at what came out.
pub struct Nothing;

impl Invariant for Nothing {
    fn check(&mut self, _: &mut Harness, _: &Model, _: &Step) -> Result<(), TestCaseError> {
        Ok(())
    }
}

/// Runs `ops`, checking each operation against the model and `invariant` after every step.
pub fn run(
    ops: Vec<Op>,
    unlock: Unlock,
    invariant: &mut dyn Invariant,
) -> Result<Harness, TestCaseError> {
    let config = CoordinatorConfig {
        retry_backoff_initial_ms: 200,
        retry_backoff_max_ms: 800,
        max_commit_retry_timeout_ms: Some(6_000),
        max_rollback_retry_timeout_ms: Some(6_000),
        rollback_retry_timeout_unlock: unlock == Unlock::Release,
        ..config()
    };
    let mut h = Harness::with_config(config);
    let mut model = Model {
        now: T0,
        unlock,
        ..Model::default()
    };
    let mut next_token = 1u64;
    for op in ops {
        let mut step = Step {
            effects: Vec::new(),
            after_tick: false,
        };
        match op {
            Op::Begin { timeout_ms } => {
                let tx = h.begin(model.now, timeout_ms);
                model.txs.push(tx);
            }
            Op::RegisterAt {
                tx,
                rows,
                optimistic,
                user,
            } => {
                let Some(tx) = model.tx(tx) else { continue };
                let pks: Vec<String> = rows.iter().map(u8::to_string).collect();
                let lock_key = format!("orders:{}", pks.join(","));
                let data = match (optimistic, user) {
                    (false, false) => String::new(),
                    (optimistic, user) => {
                        format!(r#"{{"skipCheckLock":{optimistic},"autoCommit":{}}}"#, !user)
                    }
                };
                let status = h.tc.status_of(tx.id);
                let blocked = !h.lockable(&tx.xid, &lock_key);
                let result = h.try_at(&tx, &lock_key, &data);
                match (status, result) {
                    (None, Err(code)) => prop_assert_eq!(code, Code::GlobalTransactionNotExist),
                    (Some(GlobalStatus::Begin), Ok(branch)) if !blocked => {
                        let index = model.txs.iter().position(|t| t.id == tx.id).unwrap_or(0);
                        model.branches.push((index, branch));
                    }
                    (Some(GlobalStatus::Begin), Err(Code::LockKeyConflict)) if blocked => {}
                    (Some(GlobalStatus::Begin), Err(Code::LockKeyConflictFailFast))
                        if blocked && user => {}
                    (Some(other), Err(Code::GlobalTransactionNotActive))
                        if other != GlobalStatus::Begin => {}
                    (status, result) => {
                        prop_assert!(
                            false,
                            "register in {:?} (blocked {}) gave {:?}",
                            status,
                            blocked,
                            result
                        )
                    }
                }
            }
            Op::RegisterTcc { tx } => {
                let Some(tx) = model.tx(tx) else { continue };
                let status = h.tc.status_of(tx.id);
                let result = h.try_register(&tx, BranchType::Tcc, "debit", "", "");
                match (status, result) {
                    (Some(GlobalStatus::Begin), Ok(branch)) => {
                        let index = model.txs.iter().position(|t| t.id == tx.id).unwrap_or(0);
                        model.branches.push((index, branch));
                    }
                    (None, Err(Code::GlobalTransactionNotExist)) => {}
                    (Some(other), Err(Code::GlobalTransactionNotActive))
                        if other != GlobalStatus::Begin => {}
                    (status, result) => {
                        prop_assert!(false, "TCC register in {:?} gave {:?}", status, result)
                    }
                }
            }
            Op::Report { branch, failed } => {
                if model.branches.is_empty() {
                    continue;
                }
                let (index, branch_id) = model.branches[branch % model.branches.len()];
                let tx = model.txs[index].clone();
                let exists = h
                    .replay()
                    .get(tx.id)
                    .is_some_and(|t| t.branches.iter().any(|b| b.branch_id == branch_id));
                let status = if failed {
                    BranchStatus::PhaseOneFailed
                } else {
                    BranchStatus::PhaseOneDone
                };
                let token = next_token;
                next_token += 1;
                h.branch_report(
                    token,
                    &tx.xid,
                    branch_id,
                    status,
                    format!("{{\"n\":{token}}}"),
                );
                let effects = h.effects();
                if exists {
                    prop_assert_eq!(effects.len(), 2);
                    prop_assert_eq!(&effects[1], &reply(token, Reply::BranchReported));
                } else {
                    prop_assert!(
                        matches!(
                            effects.as_slice(),
                            [Effect::Reply {
                                reply: Reply::Failed { .. },
                                ..
                            }]
                        ),
                        "report of a missing branch: {:?}",
                        effects
                    );
                }
            }
            Op::Commit { tx } => {
                let Some(tx) = model.tx(tx) else { continue };
                h.commit(model.now, 1_000_000 + next_token, &tx.xid);
                next_token += 1;
                step.effects = h.effects();
            }
            Op::Rollback { tx } => {
                let Some(tx) = model.tx(tx) else { continue };
                h.rollback(1_000_000 + next_token, &tx.xid);
                next_token += 1;
                step.effects = h.effects();
            }
            Op::Answer { request, outcome } => {
                if model.outstanding.is_empty() {
                    continue;
                }
                let (transaction_id, branch_id, commit) =
                    model.outstanding.remove(request % model.outstanding.len());
                let outcome = match (outcome, commit) {
                    (0..=3, true) => COMMITTED,
                    (0..=3, false) => ROLLBACKED,
                    (4, true) => COMMIT_RETRYABLE,
                    (4, false) => ROLLBACK_RETRYABLE,
                    (5 | 6, _) => BranchOutcome::Unreachable,
                    (_, true) => COMMIT_UNRETRYABLE,
                    (_, false) => ROLLBACK_UNRETRYABLE,
                };
                h.tc.branch_result(model.now, transaction_id, branch_id, outcome);
                step.effects = h.effects();
            }
            Op::StaleAnswer { tx, branch } => {
                let Some(tx) = model.tx(tx) else { continue };
                if model.branches.is_empty() {
                    continue;
                }
                let (_, branch_id) = model.branches[branch % model.branches.len()];
                let in_flight = model
                    .outstanding
                    .iter()
                    .any(|&(t, b, _)| t == tx.id && b == branch_id);
                if in_flight {
                    continue;
                }
                h.tc.branch_result(model.now, tx.id, branch_id, COMMITTED);
                let effects = h.effects();
                prop_assert!(
                    effects.is_empty(),
                    "stale answer had effects: {:?}",
                    effects
                );
            }
            Op::Tick { advance_ms } => {
                model.now += i64::from(advance_ms);
                h.tc.tick(model.now);
                step.effects = h.effects();
                step.after_tick = true;
            }
            Op::Restart { downtime_ms } => {
                model.now += i64::from(downtime_ms);
                h.recover(model.now);
                step.effects = h.effects();
            }
        }
        for effect in &step.effects {
            match effect {
                Effect::BranchCommit(r) => {
                    model
                        .outstanding
                        .push((r.transaction_id, r.branch_id, true));
                }
                Effect::BranchRollback(r) => {
                    model
                        .outstanding
                        .push((r.transaction_id, r.branch_id, false));
                }
                _ => {}
            }
        }
        invariant.check(&mut h, &model, &step)?;
    }
    Ok(h)
}
