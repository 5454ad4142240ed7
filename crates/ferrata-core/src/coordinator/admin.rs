//! What operators read and do through the admin API: pages of transactions, one transaction
//! with its branches and history, the lock table with holders; retrying phase 2 now, committing
//! or rolling back a stuck transaction where the protocol allows it, resolving a branch whose
//! rollback failed after a manual repair, deleting a failed session.

use super::*;
use crate::history::{Event, History};

/// Which transactions a page lists; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub statuses: Vec<GlobalStatus>,
    pub application_id: Option<String>,
    pub group: Option<String>,
    /// A part of the XID.
    pub xid_contains: Option<String>,
    /// Begun at least this long ago.
    pub min_age_ms: Option<i64>,
    pub offset: usize,
    pub limit: usize,
}

/// Largest page the coordinator builds (the admin API's `limit` is capped to it).
pub const MAX_PAGE: usize = 1_000;

/// A transaction in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSummary {
    pub global: GlobalSession,
    pub branches: usize,
}

/// A page of transactions, oldest id first, and how many matched in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionPage {
    pub total: usize,
    pub items: Vec<TransactionSummary>,
}

/// One transaction as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDetail {
    pub global: GlobalSession,
    pub branches: Vec<BranchSession>,
    pub history: History,
    /// Failed phase-2 passes so far, and when the next one is due.
    pub failed_passes: u32,
    pub retry_at_ms: Option<i64>,
    /// Branches with a phase-2 request waiting for the RM's answer.
    pub in_flight: Vec<BranchId>,
}

/// Which lock rows to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFilter {
    pub resource_id: Option<String>,
    pub table: Option<String>,
    pub transaction_id: Option<TransactionId>,
    pub offset: usize,
    pub limit: usize,
}

/// One locked row and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    pub resource_id: String,
    pub table: String,
    pub pk: String,
    pub xid: String,
    pub transaction_id: TransactionId,
    pub branch_id: BranchId,
    /// When the holding branch registered (unknown after a restart).
    pub since_ms: Option<i64>,
}

/// A page of lock rows, ordered by resource, table and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockPage {
    pub total: usize,
    pub items: Vec<LockView>,
}

/// What an operator asks of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Run the pending phase-2 pass now instead of after its backoff.
    RetryNow,
    /// Commit a transaction still in Begin (as its TM would), or retry a commit now.
    Commit,
    /// Roll back a transaction still in Begin (as its TM would), or retry a rollback now.
    Rollback,
    /// After a manual repair: forget a branch whose rollback failed or keeps failing and
    /// release its rows; the transaction ends rolled back when no branch is left.
    ResolveBranch(BranchId),
    /// Forget a transaction that ended in failure, releasing its rows.
    Delete,
}

impl AdminAction {
    pub fn name(self) -> &'static str {
        match self {
            AdminAction::RetryNow => "retry",
            AdminAction::Commit => "commit",
            AdminAction::Rollback => "rollback",
            AdminAction::ResolveBranch(_) => "resolve-branch",
            AdminAction::Delete => "delete",
        }
    }

    /// The request kind its reply is shaped as.
    pub fn reply_kind(self) -> RequestKind {
        match self {
            AdminAction::Commit => RequestKind::GlobalCommit,
            AdminAction::Rollback | AdminAction::ResolveBranch(_) => RequestKind::GlobalRollback,
            AdminAction::RetryNow | AdminAction::Delete => RequestKind::GlobalStatus,
        }
    }
}

impl Coordinator {
    /// A page of the transactions this coordinator holds that match `filter`.
    pub fn transactions(&self, filter: &TransactionFilter, now_ms: i64) -> TransactionPage {
        let limit = filter.limit.min(MAX_PAGE);
        let mut page = TransactionPage::default();
        for session in self.sessions.values() {
            let global = &session.global;
            let matches = (filter.statuses.is_empty() || filter.statuses.contains(&global.status))
                && filter
                    .application_id
                    .as_ref()
                    .is_none_or(|a| *a == global.application_id)
                && filter
                    .group
                    .as_ref()
                    .is_none_or(|g| *g == global.transaction_service_group)
                && filter
                    .xid_contains
                    .as_ref()
                    .is_none_or(|x| global.xid.contains(x.as_str()))
                && filter
                    .min_age_ms
                    .is_none_or(|age| now_ms.saturating_sub(global.begin_time_ms) >= age);
            if !matches {
                continue;
            }
            if page.total >= filter.offset && page.items.len() < limit {
                page.items.push(TransactionSummary {
                    global: global.clone(),
                    branches: session.branches.len(),
                });
            }
            page.total += 1;
        }
        page
    }

    /// One transaction with its branches and history, if this coordinator holds it.
    pub fn transaction(&self, xid: &str) -> Option<TransactionDetail> {
        let session = self.sessions.get(&self.lookup(xid)?)?;
        Some(TransactionDetail {
            global: session.global.clone(),
            branches: session.branches.iter().cloned().collect(),
            history: session.history.clone(),
            failed_passes: session.failed_passes,
            retry_at_ms: session.retry_at_ms,
            in_flight: session
                .pass
                .as_ref()
                .map(|pass| pass.in_flight.keys().copied().collect())
                .unwrap_or_default(),
        })
    }

    /// A page of the lock table (AT rows) matching `filter`, with holders.
    pub fn locks(&self, filter: &LockFilter) -> LockPage {
        let limit = filter.limit.min(MAX_PAGE);
        let mut rows: Vec<(&str, &str, &str, LockHolder)> = self
            .locks
            .rows()
            .filter(|(resource, table, _, holder)| {
                filter.resource_id.as_deref().is_none_or(|r| r == *resource)
                    && filter.table.as_deref().is_none_or(|t| t == *table)
                    && filter
                        .transaction_id
                        .is_none_or(|id| id == holder.transaction_id)
            })
            .collect();
        rows.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let total = rows.len();
        let items = rows
            .into_iter()
            .skip(filter.offset)
            .take(limit)
            .map(|(resource, table, pk, holder)| {
                let session = self.sessions.get(&holder.transaction_id);
                LockView {
                    resource_id: resource.to_owned(),
                    table: table.to_owned(),
                    pk: pk.to_owned(),
                    xid: session.map(|s| s.global.xid.clone()).unwrap_or_default(),
                    transaction_id: holder.transaction_id,
                    branch_id: holder.branch_id,
                    since_ms: session.and_then(|s| s.history.registered_at_ms(holder.branch_id)),
                }
            })
            .collect();
        LockPage { total, items }
    }

    /// Carries out an operator's `action` on `xid`; the answer (exactly one, carrying `token`)
    /// is shaped as the reply to GlobalCommit (commit), GlobalRollback (rollback, resolve) or
    /// GlobalStatus (retry, delete), or a failure saying why the action does not apply.
    pub fn admin(
        &mut self,
        now_ms: i64,
        token: ReplyToken,
        operator: &str,
        xid: &str,
        action: AdminAction,
    ) {
        #[cfg(debug_assertions)]
        self.token_opened(token);
        self.now_ms = now_ms;
        let kind = action.reply_kind();
        let Some(transaction_id) = self.lookup(xid) else {
            let message =
                format!("{xid} is not held by this TC (ended, or driven by another node)");
            return self.fail(token, kind, Code::GlobalTransactionNotExist, message);
        };
        let Some(session) = self.sessions.get_mut(&transaction_id) else {
            return;
        };
        let status = session.global.status;
        session.history.push(
            now_ms,
            Event::Operator {
                operator: operator.to_owned(),
                action: match action {
                    AdminAction::ResolveBranch(branch_id) => format!("resolve branch {branch_id}"),
                    other => other.name().to_owned(),
                },
            },
        );
        let refused = |why: &str| format!("cannot {} {xid} in {status:?}: {why}", action.name());
        match action {
            AdminAction::Commit if status == GlobalStatus::Begin => {
                self.global_commit(now_ms, token, xid)
            }
            AdminAction::Rollback if status == GlobalStatus::Begin => {
                self.global_rollback(token, xid)
            }
            AdminAction::RetryNow | AdminAction::Commit | AdminAction::Rollback => {
                let fits = match action {
                    AdminAction::Commit => status.is_committing(),
                    AdminAction::Rollback => status.is_rollbacking(),
                    _ => status.is_committing() || status.is_rollbacking(),
                };
                if !fits {
                    let message = refused(
                        "only a transaction in Begin or in phase 2 of that direction can be",
                    );
                    return self.fail(token, kind, Code::GlobalTransactionStatusInvalid, message);
                }
                if session.pass.is_none() {
                    if let Some(at) = session.retry_at_ms.replace(now_ms) {
                        self.retries.remove(&(at, transaction_id));
                    }
                    self.retries.insert((now_ms, transaction_id));
                }
                let reply = match action {
                    AdminAction::Commit => Reply::GlobalCommit { status },
                    AdminAction::Rollback => Reply::GlobalRollback { status },
                    _ => Reply::GlobalStatus { status },
                };
                self.reply(token, reply);
            }
            AdminAction::ResolveBranch(branch_id) => {
                // A rollback that failed or is still being retried (the statuses whose rows stay locked).
                if !is_rollback_lock_status(status) {
                    let message =
                        refused("only a branch of a failing or failed rollback can be resolved");
                    return self.fail(token, kind, Code::GlobalTransactionStatusInvalid, message);
                }
                if session.branches.get(branch_id).is_none() {
                    let message = refused(&format!("it has no branch {branch_id}"));
                    return self.fail(token, kind, Code::BranchTransactionNotExist, message);
                }
                if session
                    .pass
                    .as_ref()
                    .is_some_and(|p| p.in_flight.contains_key(&branch_id))
                {
                    let message = refused(
                        "its rollback request is waiting for the RM; try again once it is answered",
                    );
                    return self.fail(token, kind, Code::GlobalTransactionStatusInvalid, message);
                }
                tracing::warn!(
                    transaction_id = transaction_id.0,
                    branch_id = branch_id.0,
                    operator,
                    "branch resolved by an operator"
                );
                self.remove_branch(transaction_id, branch_id);
                let left = self
                    .sessions
                    .get(&transaction_id)
                    .map_or(0, |s| s.branches.len());
                let idle = self
                    .sessions
                    .get(&transaction_id)
                    .is_some_and(|s| s.pass.is_none());
                if left == 0 && idle {
                    let final_status = if status.is_timeout_rollback() {
                        GlobalStatus::TimeoutRollbacked
                    } else {
                        GlobalStatus::Rollbacked
                    };
                    self.end_success_replying(transaction_id, final_status, None);
                    return self.reply(
                        token,
                        Reply::GlobalRollback {
                            status: final_status,
                        },
                    );
                }
                self.reply(token, Reply::GlobalRollback { status });
            }
            AdminAction::Delete => {
                if !status.is_final() {
                    let message = refused(
                        "only a transaction that ended in failure can be deleted; roll it back or resolve its branches",
                    );
                    return self.fail(token, kind, Code::GlobalTransactionStatusInvalid, message);
                }
                tracing::warn!(
                    transaction_id = transaction_id.0,
                    ?status,
                    operator,
                    "failed session deleted by an operator"
                );
                self.unschedule(transaction_id);
                if let Some(session) = self.sessions.remove(&transaction_id) {
                    for branch in session.branches.iter() {
                        release_locks(&mut self.locks, branch);
                    }
                }
                self.persist_expecting(Record::GlobalRemove { transaction_id }, status);
                self.reply(
                    token,
                    Reply::GlobalStatus {
                        status: GlobalStatus::Finished,
                    },
                );
            }
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }
}
