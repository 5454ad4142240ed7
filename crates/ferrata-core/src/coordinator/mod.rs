//! The coordinator state machine: global and branch sessions, their legal transitions
//! (semantics §1.4–1.7), lock acquisition, synchronous and asynchronous phase 2, timeouts and
//! retries. Every entry point appends effects; the runtime drains and executes them in order.
//! Requests are in `requests.rs`, phase-2 passes in `phase2.rs`, timers in `timers.rs`.

pub mod admin;
#[cfg(debug_assertions)]
mod invariants;
mod phase2;
mod requests;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};

use crate::branches::Branches;
use crate::config::CoordinatorConfig;
use crate::config::{IdSource, StoreSharing};
use crate::effect::{BranchOutcome, Effect, Refusal, Reply, ReplyToken, TxError};
use crate::history::{Event, History, Phase2Kind};
use crate::id::{BranchId, IdGenerator, IdRanges, TransactionId};
use crate::lock::{
    LockHolder, LockKeyLimits, LockManager, is_rollback_lock_status, parse_lock_key,
    status_holds_locks,
};
use crate::model::{BranchSession, GlobalSession, Record, SessionTable, StoredTransaction};
use crate::rate_limit::TokenBucket;
use crate::request::{BranchRegistration, Request, RequestKind, Requester};
use crate::stats::{MetricsSnapshot, TransactionCounts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Commit,
    Rollback,
}

/// Which branches a commit pass visits (a rollback pass visits every branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The synchronous part of a commit: branches that cannot be committed asynchronously; the
    /// asynchronous pass that follows handles the rest.
    Synchronous,
    /// Every branch: an asynchronous commit, a retry, or a rollback.
    All,
}

/// A TM request (GlobalCommit or GlobalRollback) waiting for the outcome of a phase-2 pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    token: ReplyToken,
    direction: Direction,
}

impl Waiting {
    /// The answer to the waiting request: the global status it ended up in.
    fn reply(self, status: GlobalStatus) -> Reply {
        match self.direction {
            Direction::Commit => Reply::GlobalCommit { status },
            Direction::Rollback => Reply::GlobalRollback { status },
        }
    }
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
    lanes: Vec<VecDeque<BranchId>>,
    /// Whether a lane has a request in flight.
    busy: Vec<bool>,
    /// Branch id → lane of every request sent and not yet answered.
    in_flight: BTreeMap<BranchId, usize>,
    /// Set by the first failure: no new requests; the pass ends when `in_flight` drains.
    failure: Option<PassFailure>,
    /// The TM request waiting for the outcome of a synchronous pass.
    reply: Option<Waiting>,
}

#[derive(Debug)]
struct Session {
    global: GlobalSession,
    branches: Branches,
    pass: Option<Phase2Pass>,
    failed_passes: u32,
    retry_at_ms: Option<i64>,
    history: History,
    /// A Saga whose engine has answered: its participants' branches (TCC, AT, XA registered
    /// by services its steps called) now follow the saga's outcome. Not logged: after a
    /// restart the engine is asked again, and answers the same.
    saga_engine_done: bool,
}

impl Session {
    fn deadline_ms(&self) -> i64 {
        self.global
            .begin_time_ms
            .saturating_add(i64::from(self.global.timeout_ms))
    }

    fn is_timed_out(&self, now_ms: i64) -> bool {
        now_ms > self.deadline_ms()
    }

    /// Seata's rule (first branch SAGA, or none and the `$Saga_` name), widened to a `$Saga_`
    /// name whatever branches joined, so that participants called by the saga's steps do not
    /// turn it into an ordinary transaction.
    fn is_saga(&self) -> bool {
        self.global.transaction_name.starts_with("$Saga_")
            || self
                .branches
                .first()
                .is_some_and(|branch| branch.branch_type == BranchType::Saga)
    }

    /// Branches of a Saga that its engine does not drive: participants (TCC, AT, XA) that
    /// services called from its steps registered under its XID.
    fn has_saga_participants(&self) -> bool {
        self.is_saga()
            && self
                .branches
                .iter()
                .any(|branch| branch.branch_type != BranchType::Saga)
    }

    /// A two-phase message (transactional outbox, a Ferrata extension): named like Seata names
    /// sagas, by a prefix, so the begin request needs no new field.
    fn is_outbox(&self) -> bool {
        self.global.transaction_name.starts_with(OUTBOX_PREFIX) && !self.is_saga()
    }

    /// The check branch of a two-phase message: its lowest branch id, registered by the
    /// producer before its local transaction. It stays until the transaction ends, so that
    /// the rule keeps naming the same branch after delivery branches finish or a restart.
    fn outbox_check(&self) -> Option<&BranchSession> {
        if !self.is_outbox() {
            return None;
        }
        self.branches.iter().min_by_key(|b| b.branch_id)
    }

    /// Whether phase 2 has branches left to finish (a message's check branch never counts).
    fn has_branches_to_finish(&self) -> bool {
        let check = self.outbox_check().map(|b| b.branch_id);
        self.branches.iter().any(|b| Some(b.branch_id) != check)
    }

    fn can_be_committed_async(&self) -> bool {
        self.branches.iter().all(is_async_committable)
    }
}

/// The transaction-name prefix of a two-phase message (docs/guide/outbox.md).
pub const OUTBOX_PREFIX: &str = "$Outbox_";

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

/// A timeout rollback still in progress: its end keeps the timeout flavour.
fn is_timeout_rollbacking(status: GlobalStatus) -> bool {
    status.is_rollbacking() && status.is_timeout_rollback()
}

/// The transaction id of an XID: the number after the last `:`.
pub fn transaction_id_of(xid: &str) -> Option<TransactionId> {
    xid.rsplit_once(':')
        .and_then(|(_, id)| id.parse().ok())
        .map(TransactionId)
}

/// The TC node an XID names: what precedes its last `:` (`host:port`); empty when it has none.
pub fn xid_prefix(xid: &str) -> &str {
    xid.rsplit_once(':').map_or("", |(prefix, _)| prefix)
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

/// The id source of [`CoordinatorConfig::id_source`].
#[derive(Debug)]
enum Ids {
    Snowflake(IdGenerator),
    StoreRanges(IdRanges),
}

/// The transaction coordinator. Not thread-safe by design: one owner drives it.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    ids: Ids,
    /// Ordered, so that whatever iterates sessions (snapshots) comes out the same every run.
    /// Boxed: a B-tree keeps its nodes about half full when keys only grow (ids do), and
    /// slack of pointers costs far less than slack of whole sessions (docs/BENCHMARKS.md RSS).
    sessions: BTreeMap<TransactionId, Box<Session>>,
    locks: LockManager,
    /// (deadline_ms, transaction) of every session in Begin, earliest first.
    timeouts: BTreeSet<(i64, TransactionId)>,
    /// (retry_at_ms, transaction) of every scheduled phase-2 pass, earliest first.
    retries: BTreeSet<(i64, TransactionId)>,
    next_undo_log_delete_at_ms: i64,
    begin_tokens: Option<TokenBucket>,
    effects: Vec<Effect>,
    /// The time of the latest call that carried one: what durations are measured against.
    now_ms: i64,
    counts: TransactionCounts,
    #[cfg(debug_assertions)]
    open_tokens: invariants::OpenTokens,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig, now_ms: i64) -> Coordinator {
        Coordinator::recover(config, SessionTable::new(), now_ms)
    }

    /// Rebuilds the coordinator from recovered state (semantics §3.2): sessions in Begin or a
    /// rollback status take their locks back, unfinished phase 2 resumes at once, and ended
    /// successes left behind are removed.
    pub fn recover(config: CoordinatorConfig, table: SessionTable, now_ms: i64) -> Coordinator {
        let mut ids = IdGenerator::new(config.worker_id, now_ms);
        ids.observe_reservation(table.next_free_id());
        let next_undo_log_delete_at_ms = match config.undo_log_delete_period_ms {
            None => i64::MAX,
            Some(_) => now_ms.saturating_add(config.undo_log_delete_initial_delay_ms),
        };
        let begin_tokens = config
            .begin_rate_limit
            .map(|limit| TokenBucket::new(limit, now_ms));
        let mut coordinator = Coordinator {
            config,
            ids: Ids::StoreRanges(IdRanges::default()),
            sessions: BTreeMap::new(),
            locks: LockManager::new(),
            timeouts: BTreeSet::new(),
            retries: BTreeSet::new(),
            next_undo_log_delete_at_ms,
            begin_tokens,
            effects: Vec::new(),
            now_ms,
            counts: TransactionCounts::default(),
            #[cfg(debug_assertions)]
            open_tokens: invariants::OpenTokens::default(),
        };
        for tx in table.into_transactions() {
            ids.observe(tx.global.transaction_id.0);
            for branch in &tx.branches {
                ids.observe(branch.branch_id.0);
            }
            coordinator.restore(tx, now_ms);
        }
        coordinator.ids = match coordinator.config.id_source {
            IdSource::Snowflake => Ids::Snowflake(ids),
            // The store reserves ranges above every id it holds.
            IdSource::StoreRanges => Ids::StoreRanges(IdRanges::default()),
        };
        coordinator
    }

    /// Takes over the transactions another TC node began and can no longer drive (its lease
    /// in the shared store expired), as [`Coordinator::recover`] does with this node's own.
    /// Transactions this coordinator holds already are left as they are.
    pub fn adopt(&mut self, transactions: Vec<StoredTransaction>, now_ms: i64) {
        self.now_ms = now_ms;
        for tx in transactions {
            if !self.sessions.contains_key(&tx.global.transaction_id) {
                self.restore(tx, now_ms);
            }
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Stops driving every transaction another node began (XID prefix `prefix`): that node
    /// took its transactions back. A TM waiting on one of them gets its status as it is now.
    pub fn disown(&mut self, prefix: &str) {
        let gone: Vec<TransactionId> = self
            .sessions
            .iter()
            .filter(|(_, session)| xid_prefix(&session.global.xid) == prefix)
            .map(|(id, _)| *id)
            .collect();
        for transaction_id in gone {
            self.unschedule(transaction_id);
            let Some(session) = self.sessions.remove(&transaction_id) else {
                continue;
            };
            for branch in session.branches.iter() {
                release_locks(&mut self.locks, branch);
            }
            let waiting = session.pass.and_then(|pass| pass.reply);
            self.answer(waiting, session.global.status);
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Puts one stored transaction back under this coordinator (semantics §3.2).
    fn restore(&mut self, stored: StoredTransaction, now_ms: i64) {
        let StoredTransaction { global, branches } = stored;
        let transaction_id = global.transaction_id;
        let status = global.status;
        let mut history = History::default();
        history.push(now_ms, Event::Recovered { status });
        let session = Session {
            global,
            branches,
            pass: None,
            failed_passes: 0,
            retry_at_ms: None,
            history,
            saga_engine_done: false,
        };
        match status {
            GlobalStatus::Committed
            | GlobalStatus::Rollbacked
            | GlobalStatus::TimeoutRollbacked
            | GlobalStatus::UnKnown
            | GlobalStatus::Finished => {
                self.persist_expecting(Record::GlobalRemove { transaction_id }, status);
                return;
            }
            _ => {}
        }
        // A rollback-retry timeout with unlocking enabled released its rows before the
        // restart; taking them back would steal rows other transactions hold since.
        let takes_locks = status_holds_locks(status, self.config.rollback_retry_timeout_unlock);
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
                if let Err(other) = self.locks.acquire(holder, &branch.resource_id, &rows) {
                    tracing::warn!(
                        transaction_id = transaction_id.0,
                        branch_id = branch.branch_id.0,
                        holder = other.transaction_id.0,
                        "recovered branch overlaps the locks of another transaction"
                    );
                }
            }
        }
        let deadline = session.deadline_ms();
        self.sessions.insert(transaction_id, Box::new(session));
        if status == GlobalStatus::Begin {
            self.timeouts.insert((deadline, transaction_id));
        } else if status.is_rollbacking() || status.is_committing() {
            self.schedule_retry(transaction_id, now_ms);
        }
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

    /// Transaction counts for metrics (their windows emptied for the next call), with the
    /// transactions each group still has active and what the coordinator holds.
    pub fn take_metrics(&mut self) -> MetricsSnapshot {
        let snapshot = self.metrics();
        self.counts.clear_windows();
        snapshot
    }

    /// [`Coordinator::take_metrics`] without emptying the windows (for the console, so that it
    /// does not take what a Prometheus scrape is owed).
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut active: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for session in self.sessions.values() {
            let global = &session.global;
            if !global.status.is_final() && global.status != GlobalStatus::AsyncCommitting {
                *active
                    .entry((&global.application_id, &global.transaction_service_group))
                    .or_default() += 1;
            }
        }
        let mut transactions = self.counts.clone();
        for ((application_id, group), count) in active {
            transactions.set_active(application_id, group, count);
        }
        let stats = self.stats();
        MetricsSnapshot {
            transactions,
            sessions: stats.sessions,
            branches: stats.branches,
            locked_rows: stats.locked_rows,
        }
    }

    /// The stored status of a transaction, if the coordinator still holds it.
    pub fn status_of(&self, transaction_id: TransactionId) -> Option<GlobalStatus> {
        self.sessions.get(&transaction_id).map(|s| s.global.status)
    }

    /// The records that recreate the current state, for compacting the store.
    pub fn snapshot_records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.sessions.len() * 2 + 1);
        if let Ids::Snowflake(ids) = &self.ids
            && let Some(next_free_id) = ids.last_reservation()
        {
            records.push(Record::IdReserve { next_free_id });
        }
        for session in self.sessions.values() {
            records.push(Record::GlobalAdd(session.global.clone()));
            records.extend(session.branches.iter().cloned().map(Record::BranchAdd));
        }
        records
    }

    /// The earliest time at which `tick` has work to do.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let timeout = self.timeouts.first().map(|(at, _)| at.saturating_add(1));
        let retry = self.retries.first().map(|(at, _)| *at);
        [timeout, retry, Some(self.next_undo_log_delete_at_ms)]
            .into_iter()
            .flatten()
            .min()
    }

    /// A fresh id; a new snowflake block is logged before any effect that reveals the id.
    /// `None` when ids come from store ranges and none has arrived yet.
    fn next_id(&mut self) -> Option<i64> {
        match &mut self.ids {
            Ids::Snowflake(ids) => {
                let id = ids.next_id();
                if let Some(next_free_id) = ids.take_reservation() {
                    self.persist(Record::IdReserve { next_free_id });
                }
                Some(id)
            }
            Ids::StoreRanges(ranges) => {
                let id = ranges.next_id();
                if let Some(count) = ranges.wanted() {
                    self.effects.push(Effect::ReserveIds { count });
                }
                id
            }
        }
    }

    /// A range of ids the store reserved for this node (after [`Effect::ReserveIds`], or at
    /// start); ignored with snowflake ids.
    pub fn add_id_range(&mut self, range: std::ops::Range<i64>) {
        if let Ids::StoreRanges(ranges) = &mut self.ids {
            ranges.add(range);
        }
    }

    /// Persists a change of a transaction this coordinator holds (or of the TC itself). On a
    /// shared store the write is conditioned on the status this node believes is stored, so
    /// a node that lost a race writes nothing more for that transaction.
    fn persist(&mut self, record: Record) {
        // A begin creates the transaction: nothing to condition it on.
        let believed = match &record {
            Record::GlobalAdd(_) => None,
            other => other
                .transaction_id()
                .and_then(|id| self.sessions.get(&id))
                .map(|session| session.global.status),
        };
        match believed {
            Some(status) => self.persist_expecting(record, status),
            None => self.effects.push(Effect::Persist(record)),
        }
    }

    /// Persists a change made while the transaction's stored status is `status`: on a shared
    /// store, only if no other node changed that in the meantime.
    fn persist_expecting(&mut self, record: Record, status: GlobalStatus) {
        match self.config.store_sharing {
            StoreSharing::Exclusive => self.effects.push(Effect::Persist(record)),
            StoreSharing::Shared => self.effects.push(Effect::PersistIf { record, status }),
        }
    }

    fn reply(&mut self, token: ReplyToken, reply: Reply) {
        #[cfg(debug_assertions)]
        self.token_answered(token);
        self.effects.push(Effect::Reply { token, reply });
    }

    fn fail(&mut self, token: ReplyToken, request: RequestKind, code: Code, message: String) {
        let error = TxError::new(code, message);
        self.reply(token, Reply::Failed { request, error });
    }

    /// Answers a TM request that waited for a phase-2 pass, if one did.
    fn answer(&mut self, waiting: Option<Waiting>, status: GlobalStatus) {
        if let Some(waiting) = waiting {
            self.reply(waiting.token, waiting.reply(status));
        }
    }

    fn set_status(&mut self, transaction_id: TransactionId, status: GlobalStatus) {
        if let Some(session) = self.sessions.get_mut(&transaction_id)
            && session.global.status != status
        {
            let stored = std::mem::replace(&mut session.global.status, status);
            session.history.push(self.now_ms, Event::Status(status));
            // Answered committed (AT), or ended in a failure the session stays in.
            if status == GlobalStatus::AsyncCommitting || status.is_final() {
                self.counts.decided(&session.global, status, self.now_ms);
            }
            if status.is_final() {
                self.counts.ended(&session.global, status);
            }
            self.persist_expecting(
                Record::GlobalUpdate {
                    transaction_id,
                    status,
                },
                stored,
            );
        }
    }

    /// A shared store refused a write this coordinator asked for (the runtime has held back
    /// what depended on it). A branch whose rows another node's transaction holds is dropped;
    /// any other refusal means another node decided or ended the transaction, so this node
    /// forgets it, answering a TM still waiting on it with what the store says.
    pub fn store_refused(&mut self, record: &Record, refusal: Refusal) {
        let Some(transaction_id) = record.transaction_id() else {
            return;
        };
        match (record, &refusal) {
            // The branch never joined: drop it, the transaction goes on.
            (Record::BranchAdd(branch), Refusal::RowLocked { .. } | Refusal::Unstorable { .. }) => {
                if let Some(session) = self.sessions.get_mut(&transaction_id)
                    && let Some(branch) = session.branches.remove(branch.branch_id)
                {
                    release_locks(&mut self.locks, &branch);
                }
            }
            // Another node decided or ended it, or it was never stored: forget it.
            (_, Refusal::StatusChanged { .. } | Refusal::Gone)
            | (Record::GlobalAdd(_), Refusal::Unstorable { .. }) => {
                self.forget(transaction_id, &refusal);
            }
            // The core keeps values within the store's limits and takes rows only with a
            // branch, so nothing else can be refused; keep the session rather than guess.
            (other, _) => tracing::error!(
                record = ?other,
                ?refusal,
                "the shared store refused a change the coordinator cannot undo; the transaction \
                 stays in memory as it was asked to be"
            ),
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Forgets a transaction the store does not hold as this node believed, answering a TM
    /// still waiting on it.
    fn forget(&mut self, transaction_id: TransactionId, refusal: &Refusal) {
        self.unschedule(transaction_id);
        let Some(session) = self.sessions.remove(&transaction_id) else {
            return;
        };
        for branch in session.branches.iter() {
            release_locks(&mut self.locks, branch);
        }
        tracing::warn!(
            xid = %session.global.xid,
            ?refusal,
            "the shared store refused a change; this node forgets the transaction"
        );
        if let Some(waiting) = session.pass.and_then(|pass| pass.reply) {
            let request = match waiting.direction {
                Direction::Commit => RequestKind::GlobalCommit,
                Direction::Rollback => RequestKind::GlobalRollback,
            };
            self.reply(waiting.token, refusal.reply(request, &session.global.xid));
        }
    }

    /// Whether `request` is about a transaction another node began (its XID names another
    /// TC) and this node does not hold: on a shared store, that node drives it.
    fn foreign(&self, request: &Request) -> bool {
        let xid = match request {
            Request::Begin { .. } | Request::LockQuery { .. } => return false,
            Request::BranchRegister(registration) => &registration.xid,
            Request::BranchReport { xid, .. }
            | Request::GlobalCommit { xid }
            | Request::GlobalRollback { xid }
            | Request::GlobalStatus { xid }
            | Request::GlobalReport { xid, .. } => xid,
        };
        xid_prefix(xid) != self.config.xid_prefix && self.lookup(xid).is_none()
    }

    /// A request about another node's transaction: its status is read from the store; what
    /// would change it is refused with where to send it.
    fn foreign_request(&mut self, token: ReplyToken, request: Request) {
        let kind = request.kind();
        let xid = match request {
            Request::GlobalStatus { xid } => {
                #[cfg(debug_assertions)]
                self.token_answered(token);
                let transaction_id = transaction_id_of(&xid).unwrap_or(TransactionId(-1));
                self.effects.push(Effect::CheckStatus {
                    token,
                    transaction_id,
                });
                return;
            }
            Request::BranchRegister(registration) => registration.xid,
            Request::BranchReport { xid, .. }
            | Request::GlobalCommit { xid }
            | Request::GlobalRollback { xid }
            | Request::GlobalReport { xid, .. } => xid,
            Request::Begin { .. } | Request::LockQuery { .. } => String::new(),
        };
        let owner = xid_prefix(&xid);
        let code = match kind {
            RequestKind::BranchRegister => Code::BranchRegisterFailed,
            RequestKind::BranchReport => Code::BranchReportFailed,
            _ => Code::GlobalTransactionNotExist,
        };
        let message = format!(
            "{xid} is driven by TC node {owner}, not by this one ({}): send it there (Seata's \
             XID load balancing does), or retry once that node's transactions are taken over",
            self.config.xid_prefix
        );
        self.fail(token, kind, code, message);
    }

    fn lookup(&self, xid: &str) -> Option<TransactionId> {
        transaction_id_of(xid).filter(|id| self.sessions.contains_key(id))
    }

    /// Handles one request at `now`; its reply (exactly one) carries `token`, possibly after
    /// effects of later calls when it waits for a synchronous phase 2.
    pub fn handle(
        &mut self,
        now_ms: i64,
        token: ReplyToken,
        requester: &Requester,
        request: Request,
    ) {
        #[cfg(debug_assertions)]
        self.token_opened(token);
        self.now_ms = now_ms;
        if self.config.store_sharing == StoreSharing::Shared && self.foreign(&request) {
            self.foreign_request(token, request);
            #[cfg(debug_assertions)]
            self.check_invariants();
            return;
        }
        match request {
            Request::Begin {
                timeout_ms,
                transaction_name,
            } => self.begin(now_ms, token, requester, timeout_ms, transaction_name),
            Request::BranchRegister(registration) => {
                self.branch_register(token, &requester.client_id, registration)
            }
            Request::BranchReport {
                xid,
                branch_id,
                status,
                application_data,
            } => self.branch_report(token, &xid, branch_id, status, application_data),
            Request::GlobalCommit { xid } => self.global_commit(now_ms, token, &xid),
            Request::GlobalRollback { xid } => self.global_rollback(token, &xid),
            Request::GlobalStatus { xid } => self.global_status(token, &xid),
            Request::GlobalReport { xid, status } => {
                self.global_report(now_ms, token, &xid, status)
            }
            Request::LockQuery {
                xid,
                branch_type,
                resource_id,
                lock_key,
            } => self.lock_query(token, &xid, branch_type, &resource_id, &lock_key),
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// The answer (or the failure) of a phase-2 request sent for this branch. Answers for a
    /// branch with no request in flight (late, duplicated or forged) change nothing.
    pub fn branch_result(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        branch_id: BranchId,
        outcome: BranchOutcome,
    ) {
        self.now_ms = now_ms;
        self.apply_branch_result(now_ms, transaction_id, branch_id, outcome);
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    /// Time passes: roll back timed-out transactions, retry due phase-2 passes, schedule undo-log
    /// cleanup.
    pub fn tick(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.run_timers(now_ms);
        #[cfg(debug_assertions)]
        self.check_invariants();
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
        assert_eq!(
            transaction_id_of("10.0.0.1:8091:42"),
            Some(TransactionId(42))
        );
        assert_eq!(transaction_id_of("[::1]:8091:7"), Some(TransactionId(7)));
        assert_eq!(transaction_id_of("nonsense"), None);
    }
}
