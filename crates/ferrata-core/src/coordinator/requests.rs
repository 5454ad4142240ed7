//! The requests of TMs and RMs: begin, branch register and report, global commit, rollback,
//! status and report, and lock queries. Each answers its token exactly once.

use super::*;

/// The answer while a node that takes its ids from the store has none left.
const NO_IDS: &str = "this TC has no ids left: the store has not yet answered its reservation of \
    more; retry shortly (if this lasts, check the database)";

impl Coordinator {
    /// GlobalBegin: a new session in Begin, durable before the XID is returned.
    pub(super) fn begin(
        &mut self,
        now_ms: i64,
        token: ReplyToken,
        requester: &Requester,
        timeout_ms: i32,
        transaction_name: String,
    ) {
        if let Some(message) = self.begin_refusal(now_ms, requester, timeout_ms) {
            tracing::warn!(application_id = %requester.application_id, %message, "GlobalBegin refused");
            return self.fail(token, RequestKind::Begin, Code::BeginFailed, message);
        }
        let Some(id) = self.next_id() else {
            return self.fail(
                token,
                RequestKind::Begin,
                Code::BeginFailed,
                NO_IDS.to_owned(),
            );
        };
        let transaction_id = TransactionId(id);
        let xid = format!("{}:{}", self.config.xid_prefix, transaction_id);
        let global = GlobalSession {
            transaction_id,
            xid: xid.clone(),
            status: GlobalStatus::Begin,
            application_id: requester.application_id.clone(),
            transaction_service_group: requester.transaction_service_group.clone(),
            transaction_name,
            timeout_ms,
            begin_time_ms: now_ms,
            application_data: String::new(),
        };
        let session = Session {
            global: global.clone(),
            branches: Branches::new(),
            pass: None,
            failed_passes: 0,
            retry_at_ms: None,
            history: History::default(),
            saga_engine_done: false,
        };
        self.counts
            .began(&global.application_id, &global.transaction_service_group);
        self.timeouts
            .insert((session.deadline_ms(), transaction_id));
        self.sessions.insert(transaction_id, Box::new(session));
        self.persist(Record::GlobalAdd(global));
        self.reply(token, Reply::Began { xid });
    }

    /// Why a GlobalBegin must be refused (a limit it exceeds), if it must.
    pub(super) fn begin_refusal(
        &mut self,
        now_ms: i64,
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
            && !bucket.try_take(now_ms)
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
    pub(super) fn branch_register(
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
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::GlobalTransactionNotExist,
                message,
            );
        };
        if let Some(limit) = self.config.application_data_limit
            && request.application_data.len() > limit
        {
            let message = format!(
                "application data of {} bytes exceeds the limit of {limit} bytes \
                 (limits.max_application_data_bytes)",
                request.application_data.len()
            );
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::FailedToAddBranch,
                message,
            );
        }
        let lock_limits = self.lock_key_limits();
        if request.lock_key.len() > lock_limits.max_bytes {
            let message = format!(
                "lock key of {} bytes exceeds the limit of {} bytes (limits.max_lock_key_bytes)",
                request.lock_key.len(),
                lock_limits.max_bytes
            );
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::FailedToAddBranch,
                message,
            );
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
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::GlobalTransactionNotActive,
                message,
            );
        }
        let max_branches = self.config.max_branches_per_transaction;
        if session.branches.len() >= max_branches {
            let message = format!(
                "global transaction {} already has {} branches, the limit \
                 (limits.max_branches_per_transaction)",
                request.xid,
                session.branches.len()
            );
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::FailedToAddBranch,
                message,
            );
        }
        let rows = if request.branch_type == BranchType::At {
            match parse_lock_key(&request.lock_key, lock_limits) {
                Ok(rows) => rows,
                Err(error) => {
                    let message = format!("cannot register into {}: {error}", request.xid);
                    return self.fail(
                        token,
                        RequestKind::BranchRegister,
                        Code::FailedToAddBranch,
                        message,
                    );
                }
            }
        } else {
            Vec::new()
        };
        let Some(id) = self.next_id() else {
            return self.fail(
                token,
                RequestKind::BranchRegister,
                Code::FailedToAddBranch,
                NO_IDS.to_owned(),
            );
        };
        let branch_id = BranchId(id);
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
                return self.fail(token, RequestKind::BranchRegister, code, message);
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
            session
                .history
                .push(self.now_ms, Event::BranchRegistered { branch_id });
        }
        self.persist(Record::BranchAdd(branch));
        self.reply(token, Reply::BranchRegistered { branch_id });
    }

    /// BranchReport: overwrites the branch status (and application data when given).
    pub(super) fn branch_report(
        &mut self,
        token: ReplyToken,
        xid: &str,
        branch_id: BranchId,
        status: BranchStatus,
        application_data: String,
    ) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.fail(
                token,
                RequestKind::BranchReport,
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
            return self.fail(
                token,
                RequestKind::BranchReport,
                Code::BranchTransactionNotExist,
                message,
            );
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
    pub(super) fn global_commit(&mut self, now_ms: i64, token: ReplyToken, xid: &str) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(
                token,
                Reply::GlobalCommit {
                    status: GlobalStatus::Finished,
                },
            );
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
            return self.reply(token, Reply::GlobalCommit { status: shown });
        }
        if session.is_timed_out(now_ms) {
            // The timeout check will roll it back; the TM turns this into a timeout error.
            return self.reply(
                token,
                Reply::GlobalCommit {
                    status: GlobalStatus::TimeoutRollbacking,
                },
            );
        }
        let asynchronous = session.can_be_committed_async();
        let no_branches = session.branches.is_empty();
        self.timeouts
            .remove(&(session.deadline_ms(), transaction_id));
        for branch in session.branches.iter() {
            release_locks(&mut self.locks, branch);
        }
        if no_branches {
            self.end_success_replying(
                transaction_id,
                GlobalStatus::Committed,
                Some(Waiting {
                    token,
                    direction: Direction::Commit,
                }),
            );
        } else if asynchronous {
            self.set_status(transaction_id, GlobalStatus::AsyncCommitting);
            self.reply(
                token,
                Reply::GlobalCommit {
                    status: GlobalStatus::Committed,
                },
            );
            self.start_pass(transaction_id, Direction::Commit, Scope::All, None);
        } else {
            self.set_status(transaction_id, GlobalStatus::Committing);
            self.start_pass(
                transaction_id,
                Direction::Commit,
                Scope::Synchronous,
                Some(token),
            );
        }
    }

    /// GlobalRollback: rolls every branch back in reverse registration order; the reply waits.
    pub(super) fn global_rollback(&mut self, token: ReplyToken, xid: &str) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(
                token,
                Reply::GlobalRollback {
                    status: GlobalStatus::Finished,
                },
            );
        };
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let status = session.global.status;
        if status != GlobalStatus::Begin {
            return self.reply(token, Reply::GlobalRollback { status });
        }
        self.timeouts
            .remove(&(session.deadline_ms(), transaction_id));
        self.set_status(transaction_id, GlobalStatus::Rollbacking);
        self.start_pass(transaction_id, Direction::Rollback, Scope::All, Some(token));
    }

    /// GlobalStatus: the stored status, or Finished for a transaction the TC no longer holds.
    pub(super) fn global_status(&mut self, token: ReplyToken, xid: &str) {
        let status = self
            .lookup(xid)
            .and_then(|id| self.sessions.get(&id))
            .map_or(GlobalStatus::Finished, |s| s.global.status);
        self.reply(token, Reply::GlobalStatus { status });
    }

    /// GlobalReport: only Saga transactions are driven by it (semantics §6.4).
    pub(super) fn global_report(
        &mut self,
        now_ms: i64,
        token: ReplyToken,
        xid: &str,
        reported: Option<GlobalStatus>,
    ) {
        let Some(transaction_id) = self.lookup(xid) else {
            return self.reply(
                token,
                Reply::GlobalReport {
                    status: reported.unwrap_or(GlobalStatus::Finished),
                },
            );
        };
        let Some(session) = self.sessions.get(&transaction_id) else {
            return;
        };
        let current = session.global.status;
        let Some(reported) = reported.filter(|_| session.is_saga()) else {
            return self.reply(token, Reply::GlobalReport { status: current });
        };
        let deadline = session.deadline_ms();
        let participants = session.has_saga_participants();
        let finished = match reported {
            GlobalStatus::Committed => Some(GlobalStatus::Committed),
            // Seata ends it as rolled back, keeping the timeout flavour, and answers with the
            // status it ended in.
            GlobalStatus::Rollbacked | GlobalStatus::Finished
                if is_timeout_rollbacking(current) =>
            {
                Some(GlobalStatus::TimeoutRollbacked)
            }
            GlobalStatus::Rollbacked | GlobalStatus::Finished => Some(GlobalStatus::Rollbacked),
            GlobalStatus::TimeoutRollbacked => Some(GlobalStatus::TimeoutRollbacked),
            _ => None,
        };
        if let Some(final_status) = finished {
            if participants && session.pass.is_some() {
                // A recovery request to the engine is in flight; its answer decides.
                return self.reply(token, Reply::GlobalReport { status: current });
            }
            self.timeouts.remove(&(deadline, transaction_id));
            self.saga_engine_finished(transaction_id, final_status);
            // With participants the answer is the pass in progress (Committing, Rollbacking).
            let status = self.status_of(transaction_id).unwrap_or(final_status);
            return self.reply(token, Reply::GlobalReport { status });
        }
        match reported {
            GlobalStatus::Committed
            | GlobalStatus::Rollbacked
            | GlobalStatus::Finished
            | GlobalStatus::TimeoutRollbacked => {}
            // The engine could not finish: the TC drives it from here (semantics §6.4). Every
            // status below leaves the transaction with a pass coming, never in a status
            // nothing drives.
            GlobalStatus::RollbackRetrying
            | GlobalStatus::TimeoutRollbackRetrying
            | GlobalStatus::UnKnown => {
                let next = if is_timeout_rollbacking(current) {
                    GlobalStatus::TimeoutRollbackRetrying
                } else {
                    GlobalStatus::RollbackRetrying
                };
                self.retry_from_report(now_ms, transaction_id, deadline, next);
            }
            GlobalStatus::Rollbacking
            | GlobalStatus::TimeoutRollbacking
            | GlobalStatus::Committing
            | GlobalStatus::CommitRetrying => {
                self.retry_from_report(now_ms, transaction_id, deadline, reported);
            }
            // Ferrata's AsyncCommitting means "answered Committed, retried for ever": for a
            // saga that is a commit retry.
            GlobalStatus::AsyncCommitting => self.retry_from_report(
                now_ms,
                transaction_id,
                deadline,
                GlobalStatus::CommitRetrying,
            ),
            // Failed for good: kept for an operator, like any transaction ending so.
            GlobalStatus::CommitFailed
            | GlobalStatus::RollbackFailed
            | GlobalStatus::TimeoutRollbackFailed
            | GlobalStatus::CommitRetryTimeout
            | GlobalStatus::RollbackRetryTimeout => self.end_failure(transaction_id, reported),
            // Begin changes nothing (its timeout still runs); the operator's statuses are not
            // a client's to set.
            GlobalStatus::Begin
            | GlobalStatus::Deleting
            | GlobalStatus::StopCommitOrCommitRetry
            | GlobalStatus::StopRollbackOrRollbackRetry => {}
        }
        let status = self.status_of(transaction_id).unwrap_or(reported);
        self.reply(token, Reply::GlobalReport { status });
    }

    /// Moves a Saga transaction to `status` and queues a pass for it (its timeout no longer
    /// applies: the engine has taken over).
    fn retry_from_report(
        &mut self,
        now_ms: i64,
        transaction_id: TransactionId,
        deadline_ms: i64,
        status: GlobalStatus,
    ) {
        self.timeouts.remove(&(deadline_ms, transaction_id));
        self.set_status(transaction_id, status);
        self.schedule_retry(transaction_id, now_ms);
    }

    /// GlobalLockQuery: whether every row of `lock_key` is free or held by `xid` itself.
    pub(super) fn lock_query(
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
                return self.fail(
                    token,
                    RequestKind::LockQuery,
                    Code::LockableCheckFailed,
                    message,
                );
            }
        };
        let transaction_id = transaction_id_of(xid).unwrap_or(TransactionId(-1));
        if self.config.store_sharing == StoreSharing::Shared {
            #[cfg(debug_assertions)]
            self.token_answered(token);
            self.effects.push(Effect::CheckLocks {
                token,
                transaction_id,
                resource_id: resource_id.to_owned(),
                rows: rows
                    .iter()
                    .map(|&(table, pk)| (table.to_owned(), pk.to_owned()))
                    .collect(),
            });
            return;
        }
        let lockable = self
            .locks
            .conflict(transaction_id, resource_id, &rows)
            .is_none();
        self.reply(token, Reply::Lockable(lockable));
    }

    pub(super) fn lock_key_limits(&self) -> LockKeyLimits {
        LockKeyLimits {
            max_bytes: self.config.max_lock_key_bytes,
            max_rows: self.config.max_rows_per_branch,
        }
    }
}
