//! The transaction-manager (TM) side: begin, commit, rollback and status of global
//! transactions, and [`Client::in_global_transaction`], which applies Seata's propagation modes
//! and commits on `Ok`, rolls back on `Err`, panic or cancellation.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferrata_proto::{
    GlobalBeginRequest, GlobalCommitRequest, GlobalReportRequest, GlobalRollbackRequest,
    GlobalStatus, GlobalStatusRequest, Message,
};
use tokio::task::futures::TaskLocalFuture;

use crate::context::{self, TxContext};
use crate::error::{Error, Operation};
use crate::{Client, ResultExt};

/// Seata's transaction propagation modes (semantics §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Propagation {
    /// Join the bound transaction, or begin one.
    #[default]
    Required,
    /// Suspend the bound transaction (if any), begin a new one, resume afterwards.
    RequiresNew,
    /// Suspend the bound transaction (if any) and run without one.
    NotSupported,
    /// Join the bound transaction, or run without one.
    Supports,
    /// Fail if a transaction is bound; run without one.
    Never,
    /// Join the bound transaction; fail if none is bound.
    Mandatory,
}

/// How [`Client::in_global_transaction`] runs its closure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct TransactionOptions {
    /// Transaction name the TC records (Java: the method signature).
    pub name: String,
    /// Global timeout; `None` uses `client.tm.defaultGlobalTransactionTimeout`.
    pub timeout: Option<Duration>,
    pub propagation: Propagation,
}

impl TransactionOptions {
    pub fn new(name: impl Into<String>) -> TransactionOptions {
        TransactionOptions {
            name: name.into(),
            timeout: None,
            propagation: Propagation::Required,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> TransactionOptions {
        self.timeout = Some(timeout);
        self
    }

    pub fn propagation(mut self, propagation: Propagation) -> TransactionOptions {
        self.propagation = propagation;
        self
    }
}

/// Whether this code began the transaction (and so ends it) or joined one begun elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxRole {
    Launcher,
    Participant,
}

/// The global transaction the closure of [`Client::in_global_transaction`] runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    pub xid: String,
    /// Whether this call began the transaction (and ends it) or joined one begun elsewhere.
    pub role: TxRole,
}

/// A global transaction this client began or joined.
///
/// Finish a begun transaction with [`GlobalTransaction::commit`] or
/// [`GlobalTransaction::rollback`]; one dropped unfinished is rolled back in the background,
/// as the scoped [`Client::in_global_transaction`] does.
#[derive(Debug)]
#[must_use = "a begun transaction dropped without commit or rollback is rolled back"]
pub struct GlobalTransaction {
    client: Client,
    xid: String,
    role: TxRole,
    timeout: Duration,
    began: Instant,
    /// Set once commit or rollback has been sent: dropping no longer rolls back.
    finished: bool,
}

/// Why [`Client::in_global_transaction`] failed.
#[derive(Debug)]
pub enum TransactionError<E> {
    /// The closure returned `Err`; a launched transaction was rolled back (a participant leaves
    /// that to its launcher).
    Aborted(E),
    /// The closure returned `Err` and the rollback failed too; the TC still rolls the
    /// transaction back when its timeout expires.
    RollbackFailed { error: E, rollback: Error },
    /// Beginning, committing, or the propagation mode failed (see [`Error`]).
    Transaction(Error),
}

impl<E: fmt::Display> fmt::Display for TransactionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Aborted(e) => {
                write!(f, "transaction rolled back because the work failed: {e}")
            }
            TransactionError::RollbackFailed { error, rollback } => write!(
                f,
                "the work failed ({error}) and rolling back failed too ({rollback}); the TC rolls \
                 the transaction back at its timeout"
            ),
            TransactionError::Transaction(e) => e.fmt(f),
        }
    }
}

/// Only [`Error`] is given as the source: requiring `E: Error` would rule out boxed errors
/// (`Box<dyn Error>` does not implement `Error`); the work's error is part of the message.
impl<E: fmt::Debug + fmt::Display> std::error::Error for TransactionError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransactionError::Aborted(_) => None,
            TransactionError::RollbackFailed { rollback, .. } => Some(rollback),
            TransactionError::Transaction(e) => Some(e),
        }
    }
}

impl<E> From<Error> for TransactionError<E> {
    fn from(error: Error) -> Self {
        TransactionError::Transaction(error)
    }
}

impl<E> TransactionError<E> {
    /// The closure's own error, if that is what failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            TransactionError::Aborted(e) | TransactionError::RollbackFailed { error: e, .. } => {
                Some(e)
            }
            TransactionError::Transaction(_) => None,
        }
    }
}

fn commit_ok(status: GlobalStatus) -> bool {
    status.is_commit_decided()
}

fn timed_out(status: GlobalStatus) -> bool {
    status.is_timeout_rollback()
}

fn rollback_ok(status: GlobalStatus) -> bool {
    // Finished: the TC no longer knows it, so it was already rolled back (or never existed).
    status.is_rollback_decided() || status == GlobalStatus::Finished
}

impl GlobalTransaction {
    pub fn xid(&self) -> &str {
        &self.xid
    }

    pub fn role(&self) -> TxRole {
        self.role
    }

    /// Runs `fut` with this transaction's XID bound to the task, so that branches registered
    /// and calls made inside it join the transaction.
    pub fn scope<F: Future>(&self, fut: F) -> TaskLocalFuture<TxContext, F> {
        context::with_xid(self.xid.clone(), fut)
    }

    /// Commits (launcher only; a participant's commit does nothing and returns `Begin`).
    /// Checks the timeout first, as Java's template does: an expired transaction is rolled
    /// back and reported as [`Error::TransactionTimeout`].
    ///
    /// `Ok` means the TC decided to commit: phase 2 (each branch's confirm or commit) may still
    /// be running — `Committed` when it finished, `Committing`/`AsyncCommitting`/
    /// `CommitRetrying` while the TC is still driving (and retrying) the branches.
    pub async fn commit(mut self) -> Result<GlobalStatus, Error> {
        self.finished = true;
        self.commit_once().await
    }

    async fn commit_once(&self) -> Result<GlobalStatus, Error> {
        if self.role == TxRole::Participant {
            return Ok(GlobalStatus::Begin);
        }
        if self.began.elapsed() > self.timeout {
            let status = match self.client.rollback(&self.xid).await {
                Ok(status) => status,
                Err(error) => {
                    tracing::warn!(xid = %self.xid, %error, "rollback of a timed-out transaction failed; the TC rolls it back by itself");
                    GlobalStatus::TimeoutRollbacking
                }
            };
            return Err(Error::TransactionTimeout {
                xid: self.xid.clone(),
                status,
            });
        }
        let status = self.client.commit(&self.xid).await?;
        if commit_ok(status) {
            Ok(status)
        } else if timed_out(status) {
            Err(Error::TransactionTimeout {
                xid: self.xid.clone(),
                status,
            })
        } else {
            Err(Error::CommitFailed {
                xid: self.xid.clone(),
                status,
            })
        }
    }

    /// Saga mode: reports the status the engine reached (GlobalReport) instead of committing
    /// or rolling back, and returns the TC's status afterwards.
    pub async fn report(mut self, status: GlobalStatus) -> Result<GlobalStatus, Error> {
        self.finished = true;
        self.client.global_report(&self.xid, status).await
    }

    /// Rolls back (launcher only; a participant's rollback does nothing and returns `Begin`).
    /// `Ok` with `Rollbacking`/`RollbackRetrying` means the TC is still undoing branches.
    pub async fn rollback(mut self) -> Result<GlobalStatus, Error> {
        self.finished = true;
        self.rollback_once().await
    }

    async fn rollback_once(&self) -> Result<GlobalStatus, Error> {
        if self.role == TxRole::Participant {
            return Ok(GlobalStatus::Begin);
        }
        let status = self.client.rollback(&self.xid).await?;
        if rollback_ok(status) {
            Ok(status)
        } else {
            Err(Error::RollbackFailed {
                xid: self.xid.clone(),
                status,
            })
        }
    }

    /// The TC's current status of this transaction.
    pub async fn status(&self) -> Result<GlobalStatus, Error> {
        self.client.status(&self.xid).await
    }
}

impl Client {
    /// Begins a global transaction (this client is its launcher). `timeout` is how long the TC
    /// lets it run before rolling it back by itself.
    pub async fn begin(&self, timeout: Duration, name: &str) -> Result<GlobalTransaction, Error> {
        let op = Operation::GlobalBegin;
        let request = Message::GlobalBegin(GlobalBeginRequest {
            timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
            transaction_name: name.to_owned(),
        });
        match self.tm_call(op, None, request).await? {
            Message::GlobalBeginResponse(r) if r.result.is_success() && !r.xid.is_empty() => {
                tracing::debug!(xid = %r.xid, name, "global transaction begun");
                Ok(GlobalTransaction {
                    client: self.clone(),
                    xid: r.xid,
                    role: TxRole::Launcher,
                    timeout,
                    began: Instant::now(),
                    finished: false,
                })
            }
            Message::GlobalBeginResponse(r) => Err(Error::from_result(
                op,
                r.result.exception_code,
                if r.result.msg.is_empty() {
                    "the TC returned no XID".to_owned()
                } else {
                    r.result.msg
                },
            )),
            other => Err(crate::unexpected(op, &other)),
        }
    }

    /// A handle on a transaction begun elsewhere (e.g. from an inbound `TX_XID`); its commit
    /// and rollback do nothing, as only the launcher ends a transaction.
    pub fn join(&self, xid: impl Into<String>) -> GlobalTransaction {
        GlobalTransaction {
            client: self.clone(),
            xid: xid.into(),
            role: TxRole::Participant,
            timeout: Duration::MAX,
            began: Instant::now(),
            finished: false,
        }
    }

    /// Sends GlobalCommit for `xid` and returns the TC's status, retrying failures and
    /// timeouts up to `client.tm.commitRetryCount` attempts in all (as Java does).
    pub async fn commit(&self, xid: &str) -> Result<GlobalStatus, Error> {
        let attempts = self.inner.config.commit_retry_count.max(1);
        self.end_with_retry(
            Operation::GlobalCommit,
            attempts,
            || {
                Message::GlobalCommit(GlobalCommitRequest {
                    xid: xid.to_owned(),
                    extra_data: String::new(),
                })
            },
            xid,
        )
        .await
    }

    /// Sends GlobalRollback for `xid`, retrying up to `client.tm.rollbackRetryCount` attempts.
    pub async fn rollback(&self, xid: &str) -> Result<GlobalStatus, Error> {
        let attempts = self.inner.config.rollback_retry_count.max(1);
        self.end_with_retry(
            Operation::GlobalRollback,
            attempts,
            || {
                Message::GlobalRollback(GlobalRollbackRequest {
                    xid: xid.to_owned(),
                    extra_data: String::new(),
                })
            },
            xid,
        )
        .await
    }

    /// The TC's status of `xid` (`Finished` when the TC no longer knows it).
    pub async fn status(&self, xid: &str) -> Result<GlobalStatus, Error> {
        let op = Operation::GlobalStatus;
        let request = Message::GlobalStatus(GlobalStatusRequest {
            xid: xid.to_owned(),
            extra_data: String::new(),
        });
        match self.tm_call(op, Some(xid), request).await? {
            Message::GlobalStatusResponse(r) => r.result.into_result(op).map(|_| r.global_status),
            other => Err(crate::unexpected(op, &other)),
        }
    }

    /// Saga mode: reports the status a Saga engine reached for `xid` (GlobalReport) and returns
    /// the TC's status afterwards. Only Saga transactions act on it (semantics §6.4).
    pub async fn global_report(
        &self,
        xid: &str,
        status: GlobalStatus,
    ) -> Result<GlobalStatus, Error> {
        let op = Operation::GlobalReport;
        let request = Message::GlobalReport(GlobalReportRequest {
            xid: xid.to_owned(),
            extra_data: String::new(),
            global_status: Some(status),
        });
        match self.tm_call(op, Some(xid), request).await? {
            Message::GlobalReportResponse(r) => r.result.into_result(op).map(|_| r.global_status),
            other => Err(crate::unexpected(op, &other)),
        }
    }

    async fn end_with_retry(
        &self,
        op: Operation,
        attempts: u32,
        request: impl Fn() -> Message,
        xid: &str,
    ) -> Result<GlobalStatus, Error> {
        let mut last = Error::Shutdown;
        for attempt in 1..=attempts {
            let answer = self.tm_call(op, Some(xid), request()).await;
            let error = match answer {
                Ok(Message::GlobalCommitResponse(r)) if r.result.is_success() => {
                    return Ok(r.global_status);
                }
                Ok(Message::GlobalRollbackResponse(r)) if r.result.is_success() => {
                    return Ok(r.global_status);
                }
                Ok(Message::GlobalCommitResponse(r)) => {
                    Error::from_result(op, r.result.exception_code, r.result.msg)
                }
                Ok(Message::GlobalRollbackResponse(r)) => {
                    Error::from_result(op, r.result.exception_code, r.result.msg)
                }
                Ok(other) => return Err(crate::unexpected(op, &other)),
                Err(error @ (Error::Shutdown | Error::Config(_))) => return Err(error),
                Err(error) => error,
            };
            tracing::warn!(%xid, attempt, attempts, %error, "{op} failed");
            last = error;
            if attempt < attempts {
                tokio::time::sleep(self.inner.config.retry_interval * attempt).await;
            }
        }
        Err(last)
    }

    /// Runs `work` in a global transaction, as `options.propagation` says:
    ///
    /// | propagation   | transaction bound to the task | none bound |
    /// |---------------|-------------------------------|------------|
    /// | Required      | join (participant)            | begin (launcher) |
    /// | RequiresNew   | suspend it, begin a new one, resume after | begin |
    /// | Mandatory     | join                          | `Error::NoTransaction` |
    /// | Supports      | join                          | `Error::NotTransactional` |
    /// | NotSupported, Never | `Error::NotTransactional` | `Error::NotTransactional` |
    ///
    /// The modes that may run without a transaction go through [`Client::with_propagation`].
    ///
    /// As launcher it binds the new XID for `work`, commits when `work` returns `Ok` (after
    /// checking the timeout), and rolls back when it returns `Err`, panics (the panic then
    /// continues) or is dropped before finishing (the rollback is spawned). A participant
    /// never commits or rolls back; its launcher does. `Ok` means the TC decided to commit;
    /// phase 2 may still be running (see [`GlobalTransaction::commit`]).
    pub async fn in_global_transaction<F, Fut, T, E>(
        &self,
        options: TransactionOptions,
        work: F,
    ) -> Result<T, TransactionError<E>>
    where
        F: FnOnce(TxInfo) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match (options.propagation, context::current_xid()) {
            (Propagation::Required | Propagation::Supports | Propagation::Mandatory, Some(xid)) => {
                let info = TxInfo {
                    xid,
                    role: TxRole::Participant,
                };
                work(info).await.map_err(TransactionError::Aborted)
            }
            (Propagation::Required | Propagation::RequiresNew, None) => {
                self.launch(&options, work).await
            }
            (Propagation::RequiresNew, Some(_)) => {
                context::without_xid(self.launch(&options, work)).await
            }
            (Propagation::Mandatory, None) => {
                Err(TransactionError::Transaction(Error::NoTransaction))
            }
            (
                propagation @ (Propagation::Supports
                | Propagation::NotSupported
                | Propagation::Never),
                _,
            ) => Err(TransactionError::Transaction(Error::NotTransactional {
                propagation,
            })),
        }
    }

    /// Runs `work` according to `options.propagation`, with or without a global transaction:
    /// as [`Client::in_global_transaction`] when the mode runs in one, and otherwise
    ///
    /// | propagation   | transaction bound to the task | none bound |
    /// |---------------|-------------------------------|------------|
    /// | Supports      | (joins)                       | run without |
    /// | NotSupported  | suspend it, run without, resume after | run without |
    /// | Never         | `Error::ExistingTransaction`  | run without |
    pub async fn with_propagation<F, Fut, T, E>(
        &self,
        options: TransactionOptions,
        work: F,
    ) -> Result<T, TransactionError<E>>
    where
        F: FnOnce(Option<TxInfo>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match (options.propagation, context::current_xid()) {
            // The closure itself (not only its future) runs inside the suspended scope.
            (Propagation::NotSupported, Some(_)) => {
                context::without_xid(async move { work(None).await })
                    .await
                    .map_err(TransactionError::Aborted)
            }
            (Propagation::NotSupported | Propagation::Supports | Propagation::Never, None) => {
                work(None).await.map_err(TransactionError::Aborted)
            }
            (Propagation::Never, Some(xid)) => {
                Err(TransactionError::Transaction(Error::ExistingTransaction {
                    xid,
                }))
            }
            _ => {
                self.in_global_transaction(options, |info| work(Some(info)))
                    .await
            }
        }
    }

    async fn launch<F, Fut, T, E>(
        &self,
        options: &TransactionOptions,
        work: F,
    ) -> Result<T, TransactionError<E>>
    where
        F: FnOnce(TxInfo) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let timeout = options
            .timeout
            .unwrap_or(self.inner.config.default_transaction_timeout);
        // Dropping `tx` before it is finished (this future cancelled) rolls it back.
        let tx = self.begin(timeout, &options.name).await?;
        let info = TxInfo {
            xid: tx.xid.clone(),
            role: TxRole::Launcher,
        };
        // Calling `work` inside the scope binds the XID for the closure's synchronous part too.
        let outcome = CatchUnwind(Box::pin(tx.scope(async move { work(info).await }))).await;
        match outcome {
            Ok(Ok(value)) => {
                tx.commit().await?;
                Ok(value)
            }
            Ok(Err(error)) => match tx.rollback().await {
                Ok(_) => Err(TransactionError::Aborted(error)),
                Err(rollback) => Err(TransactionError::RollbackFailed { error, rollback }),
            },
            Err(panic) => {
                let xid = tx.xid.clone();
                if let Err(error) = tx.rollback().await {
                    tracing::error!(%xid, %error, "rollback after a panic failed; the TC rolls back at the timeout");
                }
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// A begun transaction dropped before commit or rollback (an early return, or the caller's own
/// timeout cancelling the future) is rolled back in the background: nothing is left half-done.
impl Drop for GlobalTransaction {
    fn drop(&mut self) {
        if self.finished || self.role == TxRole::Participant {
            return;
        }
        let tx = GlobalTransaction {
            client: self.client.clone(),
            xid: std::mem::take(&mut self.xid),
            role: self.role,
            timeout: self.timeout,
            began: self.began,
            finished: true,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                tracing::warn!(xid = %tx.xid, "global transaction dropped before it finished; rolling back");
                handle.spawn(async move {
                    if let Err(error) = tx.rollback_once().await {
                        tracing::warn!(xid = %tx.xid, %error, "background rollback failed; the TC rolls back at the timeout");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(xid = %tx.xid, "global transaction dropped outside a runtime; the TC rolls it back at its timeout");
            }
        }
    }
}

/// Catches a panic of the wrapped future so that the transaction can be rolled back before
/// the panic continues.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert!(commit_ok(GlobalStatus::AsyncCommitting));
        assert!(!commit_ok(GlobalStatus::Finished));
        assert!(timed_out(GlobalStatus::TimeoutRollbacked));
        assert!(rollback_ok(GlobalStatus::Finished));
        assert!(!rollback_ok(GlobalStatus::RollbackFailed));
    }

    #[tokio::test]
    async fn catch_unwind_returns_the_panic() {
        let boom = true;
        let caught = CatchUnwind(Box::pin(async move {
            if boom {
                panic!("boom");
            }
            1
        }))
        .await;
        let Err(payload) = caught else {
            panic!("expected a panic")
        };
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }
}
