//! The coordinator state machine: global and branch sessions, their legal transitions
//! (semantics §1.4–1.7), lock acquisition, synchronous and asynchronous phase 2, timeouts and
//! retries. Every method appends effects; the runtime drains and executes them in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};

use crate::branches::Branches;
use crate::config::CoordinatorConfig;
use crate::effect::{BranchOutcome, BranchRequest, Effect, Reply, ReplyToken, TxError};
use crate::id::IdGenerator;
use crate::lock::{LockHolder, LockKeyLimits, LockManager, parse_lock_key};
use crate::model::{BranchSession, GlobalSession, Record, SessionTable, StoredTransaction};
use crate::rate_limit::TokenBucket;

/// Who sent a request: the registration of the connection it arrived on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requester {
    pub application_id: String,
    pub transaction_service_group: String,
    /// `applicationId:ip:port`, used to route phase-2 requests back.
    pub client_id: String,
}

/// The fields of a BranchRegisterRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRegistration {
    pub xid: String,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub lock_key: String,
    pub application_data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Commit,
    Rollback,
}

/// How a phase-2 pass ends once its in-flight requests have come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassFailure {
    /// A branch could not finish now: retry the pass later.
    Retry,
    /// A branch failed for good: the transaction ends in this status.
    Final(GlobalStatus),
}

/// One pass over the branches of a transaction in phase 2. Branches are visited one at a time
/// per lane: a single lane normally, one lane per resource with parallel phase 2 (Seata's
/// `enableParallelHandleBranch`), so at most one request per lane is in flight.
#[derive(Debug)]
struct Phase2Pass {
    direction: Direction,
    /// Branch ids still to visit, per lane, in visiting order.
    lanes: Vec<VecDeque<i64>>,
    /// Whether a lane has a request in flight.
    busy: Vec<bool>,
    /// Branch id → lane of every request sent and not yet answered.
    in_flight: BTreeMap<i64, usize>,
    /// Set by the first failure: no new requests; the pass ends when `in_flight` drains.
    failure: Option<PassFailure>,
    /// The TM request waiting for the outcome of a synchronous pass.
    reply: Option<ReplyToken>,
}

#[derive(Debug)]
struct Session {
    global: GlobalSession,
    branches: Branches,
    pass: Option<Phase2Pass>,
    failed_passes: u32,
    retry_at: Option<i64>,
}

impl Session {
    fn deadline(&self) -> i64 {
        self.global
            .begin_time_ms
            .saturating_add(i64::from(self.global.timeout_ms))
    }

    fn is_timed_out(&self, now: i64) -> bool {
        now > self.deadline()
    }

    fn is_saga(&self) -> bool {
        match self.branches.first() {
            Some(branch) => branch.branch_type == BranchType::Saga,
            None => self.global.transaction_name.starts_with("$Saga_"),
        }
    }

    fn can_be_committed_async(&self) -> bool {
        self.branches.iter().all(is_async_committable)
    }
}

/// Releases the rows a branch holds (only AT branches hold rows).
fn release_locks(locks: &mut LockManager, branch: &BranchSession) {
    if branch.branch_type == BranchType::At && !branch.lock_key.is_empty() {
        // Accepted when registered, so no limits apply when reading it back.
        if let Ok(rows) = parse_lock_key(&branch.lock_key, LockKeyLimits::NONE) {
            locks.release(branch.branch_id, &branch.resource_id, &rows);
        }
    }
}

fn is_async_committable(branch: &BranchSession) -> bool {
    branch.branch_type == BranchType::At || branch.status == BranchStatus::PhaseOneFailed
}

fn is_rollback_family(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::Rollbacking
            | GlobalStatus::RollbackRetrying
            | GlobalStatus::TimeoutRollbacking
            | GlobalStatus::TimeoutRollbackRetrying
    )
}

fn is_commit_family(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::Committing | GlobalStatus::CommitRetrying | GlobalStatus::AsyncCommitting
    )
}

/// Statuses a transaction reaches through Rollbacking or TimeoutRollbacking while its rows may
/// still be locked. Seata marks those locks Rollbacking and never unmarks them (semantics §2.3),
/// which is what fail-fast keys on (§2.2).
fn is_rollback_lock_status(status: GlobalStatus) -> bool {
    is_rollback_family(status)
        || matches!(
            status,
            GlobalStatus::RollbackFailed
                | GlobalStatus::TimeoutRollbackFailed
                | GlobalStatus::RollbackRetryTimeout
        )
}

fn is_timeout_flavour(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::TimeoutRollbacking | GlobalStatus::TimeoutRollbackRetrying
    )
}

/// The transaction id of an XID: the number after the last `:`.
pub fn transaction_id_of(xid: &str) -> Option<i64> {
    xid.rsplit_once(':').and_then(|(_, id)| id.parse().ok())
}

/// Reads a boolean flag from the JSON application data of an AT registration
/// (`{"autoCommit":false,"skipCheckLock":true}`) without a JSON parser on the hot path.
fn json_flag(application_data: &str, name: &str) -> Option<bool> {
    let compact: String = application_data
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let key = format!("\"{name}\":");
    let rest = &compact[compact.find(&key)? + key.len()..];
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

/// Counts of what the coordinator holds, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoordinatorStats {
    pub sessions: usize,
    pub branches: usize,
    pub locked_rows: usize,
}

/// The transaction coordinator. Not thread-safe by design: one owner drives it.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    ids: IdGenerator,
    sessions: HashMap<i64, Session>,
    locks: LockManager,
    timeouts: BTreeSet<(i64, i64)>,
    retries: BTreeSet<(i64, i64)>,
    next_undo_log_delete_at: i64,
    begin_tokens: Option<TokenBucket>,
    effects: Vec<Effect>,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig, now: i64) -> Coordinator {
        Coordinator::recover(config, SessionTable::new(), now)
    }

    /// Rebuilds the coordinator from recovered state (semantics §3.2): sessions in Begin or a
    /// rollback status take their locks back, unfinished phase 2 resumes at once, and ended
    /// successes left behind are removed.
    pub fn recover(config: CoordinatorConfig, table: SessionTable, now: i64) -> Coordinator {
        let mut ids = IdGenerator::new(config.worker_id, now);
        ids.observe_reservation(table.next_free_id());
        let next_undo_log_delete_at = match config.undo_log_delete_period_ms {
            None => i64::MAX,
            Some(_) => now.saturating_add(config.undo_log_delete_initial_delay_ms),
        };
        let begin_tokens = config
            .begin_rate_limit
            .map(|limit| TokenBucket::new(limit, now));
        let mut coordinator = Coordinator {
            config,
            ids: IdGenerator::new(0, now),
            sessions: HashMap::new(),
            locks: LockManager::new(),
            timeouts: BTreeSet::new(),
            retries: BTreeSet::new(),
            next_undo_log_delete_at,
            begin_tokens,
            effects: Vec::new(),
        };
        for StoredTransaction { global, branches } in table.into_transactions() {
            ids.observe(global.transaction_id);
            for branch in &branches {
                ids.observe(branch.branch_id);
            }
            let transaction_id = global.transaction_id;
            let status = global.status;
            let session = Session {
                global,
                branches,
                pass: None,
                failed_passes: 0,
                retry_at: None,
            };
            match status {
                GlobalStatus::Committed
                | GlobalStatus::Rollbacked
                | GlobalStatus::TimeoutRollbacked
                | GlobalStatus::UnKnown
                | GlobalStatus::Finished => {
                    coordinator.persist(Record::GlobalRemove { transaction_id });
                    continue;
                }
                _ => {}
            }
            // A rollback-retry timeout with unlocking enabled released its rows before the
            // restart; taking them back would steal rows other transactions hold since.
            let released = status == GlobalStatus::RollbackRetryTimeout
                && coordinator.config.rollback_retry_timeout_unlock;
            let takes_locks =
                status == GlobalStatus::Begin || (is_rollback_lock_status(status) && !released);
            if takes_locks {
                for branch in session
                    .branches
                    .iter()
                    .filter(|b| b.branch_type == BranchType::At)
                {
                    let holder = LockHolder {
                        transaction_id,
                        branch_id: branch.branch_id,
                    };
                    let rows =
                        parse_lock_key(&branch.lock_key, LockKeyLimits::NONE).unwrap_or_default();
                    if let Err(other) =
                        coordinator
                            .locks
                            .acquire(holder, &branch.resource_id, &rows)
                    {
                        tracing::warn!(
                            transaction_id,
                            branch_id = branch.branch_id,
                            holder = other.transaction_id,
                            "recovered branch overlaps the locks of another transaction"
                        );
                    }
                }
            }
            let deadline = session.deadline();
            coordinator.sessions.insert(transaction_id, session);
            if status == GlobalStatus::Begin {
                coordinator.timeouts.insert((deadline, transaction_id));
            } else if is_rollback_family(status) || is_commit_family(status) {
                coordinator.schedule_retry(transaction_id, now);
            }
        }
        coordinator.ids = ids;
        coordinator
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Moves the pending effects into `out`, in the order they were produced.
    pub fn drain_effects_into(&mut self, out: &mut Vec<Effect>) {
        out.append(&mut self.effects);
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn stats(&self) -> CoordinatorStats {
        CoordinatorStats {
            sessions: self.sessions.len(),
            branches: self.sessions.values().map(|s| s.branches.len()).sum(),
            locked_rows: self.locks.len(),
        }
    }

    /// The stored status of a transaction, if the coordinator still holds it.
    pub fn status_of(&self, transaction_id: i64) -> Option<GlobalStatus> {
        self.sessions.get(&transaction_id).map(|s| s.global.status)
    }

    /// The records that recreate the current state, for compacting the store.
    pub fn snapshot_records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.sessions.len() * 2 + 1);
        if let Some(next_free_id) = self.ids.last_reservation() {
            records.push(Record::IdReserve { next_free_id });
        }
        for session in self.sessions.values() {
            records.push(Record::GlobalAdd(session.global.clone()));
            records.extend(session.branches.iter().cloned().map(Record::BranchAdd));
        }
        records
    }

    /// The earliest time at which `tick` has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let timeout = self.timeouts.first().map(|(at, _)| at.saturating_add(1));
        let retry = self.retries.first().map(|(at, _)| *at);
        [timeout, retry, Some(self.next_undo_log_delete_at)]
            .into_iter()
            .flatten()
            .min()
    }

    /// A fresh id; a new reservation block is logged before any effect that reveals the id.
    fn next_id(&mut self) -> i64 {
        let id = self.ids.next_id();
        if let Some(next_free_id) = self.ids.take_reservation() {
            self.persist(Record::IdReserve { next_free_id });
        }
        id
    }

    fn persist(&mut self, record: Record) {
        self.effects.push(Effect::Persist(record));
    }

    fn reply(&mut self, token: ReplyToken, reply: Reply) {
        self.effects.push(Effect::Reply { token, reply });
    }

    fn fail(&mut self, token: ReplyToken, code: Code, message: String) {
        self.reply(
            token,
            Reply::Failed {
                error: TxError::new(code, message),
                status: None,
            },
        );
    }

    fn set_status(&mut self, transaction_id: i64, status: GlobalStatus) {
        if let Some(session) = self.sessions.get_mut(&transaction_id)
            && session.global.status != status
        {
            session.global.status = status;
            self.effects.push(Effect::Persist(Record::GlobalUpdate {
                transaction_id,
                status,
            }));
        }
    }

    fn lookup(&self, xid: &str) -> Option<i64> {
        transaction_id_of(xid).filter(|id| self.sessions.contains_key(id))
    }

    // ---- requests -------------------------------------------------------------------------

    /// GlobalBegin: a new session in Begin, durable before the XID is returned.
    pub fn begin(
        &mut self,
        now: i64,
        token: ReplyToken,
        requester: &Requester,
        timeout_ms: i32,
        transaction_name: String,
    ) {
        if let Some(message) = self.begin_refusal(now, requester, timeout_ms) {
            tracing::warn!(application_id = %requester.application_id, %message, "GlobalBegin refused");
            return self.fail(token, Code::BeginFailed, message);
        }
        let transaction_id = self.next_id();
        let xid = format!("{}:{}", self.config.xid_prefix, transaction_id);
        let global = GlobalSession {
            transaction_id,
            xid: xid.clone(),
            status: GlobalStatus::Begin,
            application_id: requester.application_id.clone(),
            transaction_service_group: requester.transaction_service_group.clone(),
            transaction_name,
            timeout_ms,
            begin_time_ms: now,
            application_data: String::new(),
        };
        let session = Session {
            global: global.clone(),
            branches: Branches::new(),
            pass: None,
            failed_passes: 0,
            retry_at: None,
        };
        self.timeouts.insert((session.deadline(), transaction_id));
        self.sessions.insert(transaction_id, session);
        self.persist(Record::GlobalAdd(global));
        self.reply(token, Reply::Began { xid });
    }

    /// Why a GlobalBegin must be refused (a limit it exceeds), if it must.
    fn begin_refusal(
        &mut self,
        now: i64,
        requester: &Requester,
        timeout_ms: i32,
    ) -> Option<String> {
        let max_timeout_ms = self.config.max_transaction_timeout_ms;
        if i64::from(timeout_ms) > max_timeout_ms {
            return Some(format!(
                "transaction timeout of {timeout_ms} ms exceeds the limit of {max_timeout_ms} ms \
                 (limits.max_transaction_timeout)"
            ));
        }
        let max_sessions = self.config.max_sessions;
        if self.sessions.len() >= max_sessions {
            return Some(format!(
                "{} global transactions are open, the limit (limits.max_sessions = {max_sessions}); \
                 retry when some have finished",
                self.sessions.len()
            ));
        }
        if let Some(bucket) = self.begin_tokens.as_mut()
            && !bucket.try_take(now)
        {
            let limit = bucket.limit();
            // Seata answers BeginFailed with this message shape (RateLimiterHandler).
            return Some(format!(
                "rate limit exception, rate limit info: GlobalBegin of application {} exceeds \
                 {} per second with bursts of {} (coordinator.begin_rate_limit)",
                requester.application_id, limit.tokens_per_second, limit.max_tokens
            ));
        }
        None
    }

    /// BranchRegister: checks the global is still in Begin, takes AT row locks atomically.
    pub fn branch_register(
        &mut self,
        token: ReplyToken,
        client_id: &str,
        request: BranchRegistration,
    ) {
        let Some(transaction_id) = self.lookup(&request.xid) else {
            let message = format!(
                "global transaction {} does not exist: it ended or timed out",
                request.xid
            );
            return self.fail(token, Code::GlobalTransactionNotExist, message);
        };
        if let Some(limit) = self.config.application_data_limit
            && request.application_data.len() > limit
        {
            let message = format!(
                "application data of {} bytes exceeds the limit of {limit} bytes \
                 (limits.max_application_data_bytes)",
                request.application_data.len()
            );
            return self.fail(token, Code::FailedToAddBranch, message);
        }
        let lock_limits = self.lock_key_limits();
        if request.lock_key.len() > lock_limits.max_bytes {
            let message = format!(
                "lock key of {} bytes exceeds the limit of {} bytes (limits.max_lock_key_bytes)",
                request.lock_key.len(),
                lock_limits.max_bytes
            );
            return self.fail(token, Code::FailedToAddBranch, message);
        }
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let status = session.global.status;
        if status != GlobalStatus::Begin && request.branch_type != BranchType::Saga {
            let message = format!(
                "cannot register a branch into global transaction {}: it is no longer active (status {status:?})",
                request.xid
            );
            return self.fail(token, Code::GlobalTransactionNotActive, message);
        }
        let max_branches = self.config.max_branches_per_transaction;
        if session.branches.len() >= max_branches {
            let message = format!(
                "global transaction {} already has {} branches, the limit \
                 (limits.max_branches_per_transaction)",
                request.xid,
                session.branches.len()
            );
            return self.fail(token, Code::FailedToAddBranch, message);
        }
        let rows = if request.branch_type == BranchType::At {
            match parse_lock_key(&request.lock_key, lock_limits) {
                Ok(rows) => rows,
                Err(error) => {
                    let message = format!("cannot register into {}: {error}", request.xid);
                    return self.fail(token, Code::FailedToAddBranch, message);
                }
            }
        } else {
            Vec::new()
        };
        let branch_id = self.next_id();
        if request.branch_type == BranchType::At {
            let holder = LockHolder {
                transaction_id,
                branch_id,
            };
            if let Err(other) = self.locks.acquire(holder, &request.resource_id, &rows) {
                let rolling_back = self
                    .sessions
                    .get(&other.transaction_id)
                    .is_some_and(|s| is_rollback_lock_status(s.global.status));
                let user_transaction =
                    json_flag(&request.application_data, "autoCommit") == Some(false);
                let code = if rolling_back && user_transaction {
                    Code::LockKeyConflictFailFast
                } else {
                    Code::LockKeyConflict
                };
                let message = format!(
                    "global lock acquire failed: xid {} branch {branch_id}: a row of {:?} is locked by transaction {}",
                    request.xid, request.lock_key, other.transaction_id
                );
                return self.fail(token, code, message);
            }
        }
        let branch = BranchSession {
            branch_id,
            transaction_id,
            resource_id: request.resource_id,
            lock_key: request.lock_key,
            branch_type: request.branch_type,
            status: BranchStatus::Registered,
            client_id: client_id.to_owned(),
            application_data: request.application_data,
        };
        if let Some(session) = self.sessions.get_mut(&transaction_id) {
            session.branches.insert(branch.clone());
        }
        self.persist(Record::BranchAdd(branch));
        self.reply(token, Reply::BranchRegistered { branch_id });
    }

    /// BranchReport: overwrites the branch status (and application data when given).
    pub fn branch_report(
        &mut self,
        token: ReplyToken,
        xid: &str,
        branch_id: i64,
        status: BranchStatus,
        application_data: String,
    ) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.fail(
                token,
                Code::GlobalTransactionNotExist,
                format!("global transaction {xid} does not exist"),
            );
        };
        let data = (!application_data.trim().is_empty()).then_some(application_data);
        let Some(branch) = self
            .sessions
            .get_mut(&transaction_id)
            .and_then(|s| s.branches.get_mut(branch_id))
        else {
            let message = format!("branch {branch_id} does not exist in global transaction {xid}");
            return self.fail(token, Code::BranchTransactionNotExist, message);
        };
        branch.status = status;
        if let Some(data) = &data {
            branch.application_data = data.clone();
        }
        self.persist(Record::BranchUpdate {
            transaction_id,
            branch_id,
            status,
            application_data: data,
        });
        self.reply(token, Reply::BranchReported);
    }

    /// GlobalCommit: the commit decision is made durable, AT locks are released at once, then
    /// non-AT branches are committed synchronously (the reply waits) and AT ones asynchronously.
    pub fn global_commit(&mut self, now: i64, token: ReplyToken, xid: &str) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(token, Reply::Status(GlobalStatus::Finished));
        };
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let status = session.global.status;
        if status != GlobalStatus::Begin {
            let shown = if status == GlobalStatus::AsyncCommitting {
                GlobalStatus::Committed
            } else {
                status
            };
            return self.reply(token, Reply::Status(shown));
        }
        if session.is_timed_out(now) {
            // The timeout check will roll it back; the TM turns this into a timeout error.
            return self.reply(token, Reply::Status(GlobalStatus::TimeoutRollbacking));
        }
        let asynchronous = session.can_be_committed_async();
        let no_branches = session.branches.is_empty();
        self.timeouts.remove(&(session.deadline(), transaction_id));
        for branch in session.branches.iter() {
            release_locks(&mut self.locks, branch);
        }
        if no_branches {
            self.end_success_replying(transaction_id, GlobalStatus::Committed, Some(token));
        } else if asynchronous {
            self.set_status(transaction_id, GlobalStatus::AsyncCommitting);
            self.reply(token, Reply::Status(GlobalStatus::Committed));
            self.start_pass(transaction_id, Direction::Commit, true, None);
        } else {
            self.set_status(transaction_id, GlobalStatus::Committing);
            self.start_pass(transaction_id, Direction::Commit, false, Some(token));
        }
    }

    /// GlobalRollback: rolls every branch back in reverse registration order; the reply waits.
    pub fn global_rollback(&mut self, token: ReplyToken, xid: &str) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(token, Reply::Status(GlobalStatus::Finished));
        };
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let status = session.global.status;
        if status != GlobalStatus::Begin {
            return self.reply(token, Reply::Status(status));
        }
        self.timeouts.remove(&(session.deadline(), transaction_id));
        self.set_status(transaction_id, GlobalStatus::Rollbacking);
        self.start_pass(transaction_id, Direction::Rollback, false, Some(token));
    }

    /// GlobalStatus: the stored status, or Finished for a transaction the TC no longer holds.
    pub fn global_status(&mut self, token: ReplyToken, xid: &str) {
        let status = self
            .lookup(xid)
            .and_then(|id| self.sessions.get(&id))
            .map_or(GlobalStatus::Finished, |s| s.global.status);
        self.reply(token, Reply::Status(status));
    }

    /// GlobalReport: only Saga transactions are driven by it (semantics §6.4).
    pub fn global_report(
        &mut self,
        now: i64,
        token: ReplyToken,
        xid: &str,
        reported: Option<GlobalStatus>,
    ) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(
                token,
                Reply::Status(reported.unwrap_or(GlobalStatus::Finished)),
            );
        };
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let current = session.global.status;
        let Some(reported) = reported.filter(|_| session.is_saga()) else {
            return self.reply(token, Reply::Status(current));
        };
        let deadline = session.deadline();
        match reported {
            GlobalStatus::Committed => {
                self.end_success(transaction_id, GlobalStatus::Committed);
                return self.reply(token, Reply::Status(GlobalStatus::Committed));
            }
            GlobalStatus::Rollbacked | GlobalStatus::Finished => {
                // Seata ends it as rolled back, keeping the timeout flavour, and answers with
                // the status it ended in.
                let final_status = if is_timeout_flavour(current) {
                    GlobalStatus::TimeoutRollbacked
                } else {
                    GlobalStatus::Rollbacked
                };
                self.end_success(transaction_id, final_status);
                return self.reply(token, Reply::Status(final_status));
            }
            GlobalStatus::RollbackRetrying
            | GlobalStatus::TimeoutRollbackRetrying
            | GlobalStatus::UnKnown => {
                let next = if is_timeout_flavour(current) {
                    GlobalStatus::TimeoutRollbackRetrying
                } else {
                    GlobalStatus::RollbackRetrying
                };
                self.timeouts.remove(&(deadline, transaction_id));
                self.set_status(transaction_id, next);
                self.schedule_retry(transaction_id, now);
            }
            GlobalStatus::CommitRetrying => {
                self.timeouts.remove(&(deadline, transaction_id));
                self.set_status(transaction_id, GlobalStatus::CommitRetrying);
                self.schedule_retry(transaction_id, now);
            }
            other => self.set_status(transaction_id, other),
        }
        let status = self.status_of(transaction_id).unwrap_or(reported);
        self.reply(token, Reply::Status(status));
    }

    /// GlobalLockQuery: whether every row of `lock_key` is free or held by `xid` itself.
    pub fn lock_query(
        &mut self,
        token: ReplyToken,
        xid: &str,
        branch_type: BranchType,
        resource_id: &str,
        lock_key: &str,
    ) {
        if branch_type != BranchType::At {
            return self.reply(token, Reply::Lockable(true));
        }
        let rows = match parse_lock_key(lock_key, self.lock_key_limits()) {
            Ok(rows) => rows,
            Err(error) => {
                let message = format!("cannot check the locks of {xid}: {error}");
                return self.fail(token, Code::LockableCheckFailed, message);
            }
        };
        let transaction_id = transaction_id_of(xid).unwrap_or(-1);
        let lockable = self
            .locks
            .conflict(transaction_id, resource_id, &rows)
            .is_none();
        self.reply(token, Reply::Lockable(lockable));
    }

    fn lock_key_limits(&self) -> LockKeyLimits {
        LockKeyLimits {
            max_bytes: self.config.max_lock_key_bytes,
            max_rows: self.config.max_rows_per_branch,
        }
    }

    // ---- phase 2 --------------------------------------------------------------------------

    /// Starts a pass. The first synchronous commit pass skips async-committable branches, which
    /// the asynchronous pass that follows handles; rollback visits branches newest first.
    fn start_pass(
        &mut self,
        transaction_id: i64,
        direction: Direction,
        retrying: bool,
        reply: Option<ReplyToken>,
    ) {
        let parallel = self.config.parallel_phase2;
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        debug_assert!(session.pass.is_none(), "a second pass for one transaction");
        let ordered: Vec<&BranchSession> = match direction {
            Direction::Commit => session
                .branches
                .iter()
                .filter(|b| retrying || !is_async_committable(b))
                .collect(),
            Direction::Rollback => session.branches.iter().rev().collect(),
        };
        let mut lanes: Vec<VecDeque<i64>> = Vec::new();
        if parallel {
            // One lane per resource, in the order resources first appear.
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
        } else {
            lanes.push(ordered.iter().map(|b| b.branch_id).collect());
        }
        session.pass = Some(Phase2Pass {
            direction,
            busy: vec![false; lanes.len()],
            lanes,
            in_flight: BTreeMap::new(),
            failure: None,
            reply,
        });
        self.advance(transaction_id);
    }

    /// Sends the next branch request of every idle lane, or finishes the pass when nothing is
    /// left to send or to wait for.
    fn advance(&mut self, transaction_id: i64) {
        let mut skipped = Vec::new();
        let mut requests = Vec::new();
        let finished = {
            let Some(session) = self.sessions.get_mut(&transaction_id) else {
                return;
            };
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
                    let Some(branch) = session.branches.get(branch_id) else {
                        continue;
                    };
                    let skip = branch.status == BranchStatus::PhaseOneFailed
                        || (pass.direction == Direction::Commit
                            && branch.status == BranchStatus::PhaseOneRdonly);
                    if skip {
                        skipped.push(branch_id);
                        continue;
                    }
                    requests.push(BranchRequest {
                        transaction_id,
                        xid: session.global.xid.clone(),
                        branch_id,
                        branch_type: branch.branch_type,
                        resource_id: branch.resource_id.clone(),
                        application_data: branch.application_data.clone(),
                        client_id: branch.client_id.clone(),
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

    fn remove_branch(&mut self, transaction_id: i64, branch_id: i64) {
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

    /// The answer (or the failure) of a phase-2 request sent for this branch. Answers for a
    /// branch with no request in flight (late, duplicated or forged) change nothing.
    pub fn branch_result(
        &mut self,
        now: i64,
        transaction_id: i64,
        branch_id: i64,
        outcome: BranchOutcome,
    ) {
        let timeout_flavour = self
            .status_of(transaction_id)
            .is_some_and(is_timeout_flavour);
        let Some(pass) = self
            .sessions
            .get_mut(&transaction_id)
            .and_then(|s| s.pass.as_mut())
        else {
            return;
        };
        let Some(lane) = pass.in_flight.remove(&branch_id) else {
            return;
        };
        pass.busy[lane] = false;
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
            Some(PassFailure::Retry) => self.pass_failed(now, transaction_id),
            Some(PassFailure::Final(status)) => self.end_failure(transaction_id, status),
        }
    }

    /// A branch could not finish: move to the retrying status, answer a waiting TM with it,
    /// and try the whole pass again after a backoff.
    fn pass_failed(&mut self, now: i64, transaction_id: i64) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let reply = session.pass.take().and_then(|p| p.reply);
        session.failed_passes = session.failed_passes.saturating_add(1);
        let next = match session.global.status {
            GlobalStatus::Committing => GlobalStatus::CommitRetrying,
            GlobalStatus::Rollbacking => GlobalStatus::RollbackRetrying,
            GlobalStatus::TimeoutRollbacking => GlobalStatus::TimeoutRollbackRetrying,
            other => other,
        };
        self.set_status(transaction_id, next);
        if let Some(token) = reply {
            self.reply(token, Reply::Status(next));
        }
        self.schedule_retry(transaction_id, now);
    }

    fn schedule_retry(&mut self, transaction_id: i64, now: i64) {
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
        let at = now.saturating_add(backoff);
        if let Some(previous) = session.retry_at.replace(at) {
            self.retries.remove(&(previous, transaction_id));
        }
        self.retries.insert((at, transaction_id));
    }

    fn unschedule(&mut self, transaction_id: i64) {
        if let Some(session) = self.sessions.get_mut(&transaction_id) {
            if let Some(at) = session.retry_at.take() {
                self.retries.remove(&(at, transaction_id));
            }
            let deadline = session.deadline();
            self.timeouts.remove(&(deadline, transaction_id));
        }
    }

    fn finish_pass(&mut self, transaction_id: i64) {
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let Some(pass) = session.pass.take() else {
            return;
        };
        let status = session.global.status;
        let no_branches = session.branches.is_empty();
        let all_async = session.can_be_committed_async();
        match pass.direction {
            Direction::Commit if no_branches => {
                self.end_success_replying(transaction_id, GlobalStatus::Committed, pass.reply)
            }
            Direction::Commit if all_async => {
                // The synchronous part is done; AT branches only need their undo logs removed.
                self.set_status(transaction_id, GlobalStatus::AsyncCommitting);
                if let Some(token) = pass.reply {
                    self.reply(token, Reply::Status(GlobalStatus::Committed));
                }
                self.start_pass(transaction_id, Direction::Commit, true, None);
            }
            Direction::Rollback if no_branches => {
                let final_status = if is_timeout_flavour(status) {
                    GlobalStatus::TimeoutRollbacked
                } else {
                    GlobalStatus::Rollbacked
                };
                self.end_success_replying(transaction_id, final_status, pass.reply)
            }
            _ => {
                // Branches joined during the pass (Saga forward recovery): go round again.
                if let Some(token) = pass.reply {
                    self.reply(token, Reply::Status(status));
                }
                self.schedule_retry(transaction_id, 0);
            }
        }
    }

    fn end_success(&mut self, transaction_id: i64, final_status: GlobalStatus) {
        let reply = self
            .sessions
            .get_mut(&transaction_id)
            .and_then(|s| s.pass.take())
            .and_then(|p| p.reply);
        self.end_success_replying(transaction_id, final_status, reply);
    }

    /// A successful end: release every lock, forget the session, answer a waiting TM.
    fn end_success_replying(
        &mut self,
        transaction_id: i64,
        final_status: GlobalStatus,
        reply: Option<ReplyToken>,
    ) {
        self.unschedule(transaction_id);
        if let Some(session) = self.sessions.remove(&transaction_id) {
            for branch in session.branches.iter() {
                release_locks(&mut self.locks, branch);
            }
        }
        self.persist(Record::GlobalRemove { transaction_id });
        if let Some(token) = reply {
            self.reply(token, Reply::Status(final_status));
        }
    }

    /// A failed end: the session stays, with its locks, for an operator to resolve.
    fn end_failure(&mut self, transaction_id: i64, status: GlobalStatus) {
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
            transaction_id,
            ?status,
            "global transaction ended in failure and needs manual handling"
        );
        if let Some(token) = reply {
            self.reply(token, Reply::Status(status));
        }
    }

    // ---- timers ---------------------------------------------------------------------------

    /// Time passes: roll back timed-out transactions, retry due phase-2 passes, schedule undo-log
    /// cleanup.
    pub fn tick(&mut self, now: i64) {
        while let Some(&(deadline, transaction_id)) = self.timeouts.first() {
            if deadline >= now {
                break;
            }
            self.timeouts.remove(&(deadline, transaction_id));
            let is_begin = self.status_of(transaction_id) == Some(GlobalStatus::Begin);
            if is_begin {
                tracing::info!(transaction_id, "global transaction timed out; rolling back");
                self.set_status(transaction_id, GlobalStatus::TimeoutRollbacking);
                self.start_pass(transaction_id, Direction::Rollback, false, None);
            }
        }
        while let Some(&(at, transaction_id)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, transaction_id));
            let Some(session) = self.sessions.get_mut(&transaction_id) else {
                continue;
            };
            session.retry_at = None;
            if session.pass.is_some() {
                continue;
            }
            let status = session.global.status;
            let age = now.saturating_sub(session.global.begin_time_ms);
            if is_commit_family(status) {
                // Only Committing / CommitRetrying give up (semantics §1.4); AsyncCommitting
                // (AT undo-log deletion, already reported Committed) is retried indefinitely.
                let limit = self.config.max_commit_retry_timeout_ms;
                if limit.is_some_and(|limit| age > limit) && status != GlobalStatus::AsyncCommitting
                {
                    self.end_failure(transaction_id, GlobalStatus::CommitRetryTimeout);
                } else {
                    self.start_pass(transaction_id, Direction::Commit, true, None);
                }
            } else if is_rollback_family(status) {
                let limit = self.config.max_rollback_retry_timeout_ms;
                if limit.is_some_and(|limit| age > limit) {
                    self.end_failure(transaction_id, GlobalStatus::RollbackRetryTimeout);
                } else {
                    self.start_pass(transaction_id, Direction::Rollback, true, None);
                }
            }
        }
        if now >= self.next_undo_log_delete_at {
            self.next_undo_log_delete_at = now.saturating_add(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_flags() {
        assert_eq!(
            json_flag(r#"{"autoCommit": false}"#, "autoCommit"),
            Some(false)
        );
        assert_eq!(
            json_flag(r#"{"skipCheckLock":true}"#, "skipCheckLock"),
            Some(true)
        );
        assert_eq!(json_flag("", "autoCommit"), None);
    }

    #[test]
    fn transaction_id_is_the_number_after_the_last_colon() {
        assert_eq!(transaction_id_of("10.0.0.1:8091:42"), Some(42));
        assert_eq!(transaction_id_of("[::1]:8091:7"), Some(7));
        assert_eq!(transaction_id_of("nonsense"), None);
    }
}
