//! The resource-manager (RM) side: [`BranchHandler`]s registered per resource id answer the TC's
//! phase-2 BranchCommit/BranchRollback (and UndoLogDelete) requests, and the [`Client`]
//! registers resources and branches, reports their status and queries global locks, with
//! request structs ([`BranchRegistration`], [`BranchReport`], [`LockQuery`]).
//!
//! ```no_run
//! use ferrata::rm::{BranchHandler, BranchRequest};
//! use ferrata::{BranchRegistration, BranchStatus, BranchType, Client, ClientConfig};
//!
//! struct Inventory;
//!
//! impl BranchHandler for Inventory {
//!     async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
//!         // Confirm the reservation recorded in phase one (must be idempotent).
//!         BranchStatus::PhaseTwoCommitted
//!     }
//!     async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
//!         // Cancel it (idempotent too; may arrive before phase one ever ran).
//!         BranchStatus::PhaseTwoRollbacked
//!     }
//! }
//!
//! # async fn demo() -> Result<(), ferrata::Error> {
//! let config = ClientConfig::builder("stock-service")
//!     .tc_addresses(["127.0.0.1:8091"])
//!     .build()?;
//! let client = Client::connect(config).await?;
//! client.register_resource("inventory-reserve", Inventory).await?;
//! // Inside a global transaction (the XID arrived with the request):
//! let branch = BranchRegistration::new("127.0.0.1:8091:42", BranchType::Tcc, "inventory-reserve")
//!     .application_data("{}");
//! let branch_id = client.branch_register(branch).await?;
//! # let _ = branch_id;
//! # Ok(())
//! # }
//! ```
//!
//! Handlers run on the runtime's blocking pool (each one inside `Handle::block_on`), at most
//! `handler_concurrency` at a time, never on the task that reads the TC connection: a slow or
//! even blocking handler cannot delay heartbeats or other transactions' responses. The TC
//! delivers a phase-2 request again when it gets no answer, so handlers must be idempotent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use ferrata_proto::{
    BranchCommitResponse, BranchRollbackResponse, BranchStatus, BranchType, Message, ResultInfo,
};
use tokio::sync::Semaphore;

use crate::error::{ConfigError, Error, Operation};
use crate::{Client, ResultExt};

/// A phase-2 request from the TC: commit or roll back one branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRequest {
    pub xid: String,
    pub branch_id: i64,
    pub branch_type: BranchType,
    pub resource_id: String,
    /// What the branch registered (or last reported) as application data, e.g. a TCC context.
    pub application_data: String,
}

/// The TC asks AT resources to delete undo logs older than `save_days` (one-way, no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoLogDelete {
    pub branch_type: BranchType,
    pub resource_id: String,
    pub save_days: i16,
}

/// Answers the TC's phase-2 requests for the resources it is registered under.
///
/// Implement it with `async fn`. Return [`BranchStatus::PhaseTwoCommitted`] /
/// [`BranchStatus::PhaseTwoRollbacked`] when done, the `*FailedRetryable` statuses to have the
/// TC retry later, or the `*FailedUnretryable` ones to make it give up (the global transaction
/// then ends as CommitFailed / RollbackFailed). A panic counts as a retryable failure.
pub trait BranchHandler: Send + Sync + 'static {
    fn branch_commit(&self, request: BranchRequest) -> impl Future<Output = BranchStatus> + Send;

    fn branch_rollback(&self, request: BranchRequest) -> impl Future<Output = BranchStatus> + Send;

    /// AT undo-log housekeeping; other modes ignore it.
    fn undo_log_delete(&self, request: UndoLogDelete) -> impl Future<Output = ()> + Send {
        let _ = request;
        async {}
    }
}

impl<H: BranchHandler> BranchHandler for Arc<H> {
    fn branch_commit(&self, request: BranchRequest) -> impl Future<Output = BranchStatus> + Send {
        (**self).branch_commit(request)
    }

    fn branch_rollback(&self, request: BranchRequest) -> impl Future<Output = BranchStatus> + Send {
        (**self).branch_rollback(request)
    }

    fn undo_log_delete(&self, request: UndoLogDelete) -> impl Future<Output = ()> + Send {
        (**self).undo_log_delete(request)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`BranchHandler`], so handlers of different types share one table.
trait ErasedHandler: Send + Sync {
    fn commit(&self, request: BranchRequest) -> BoxFuture<'_, BranchStatus>;
    fn rollback(&self, request: BranchRequest) -> BoxFuture<'_, BranchStatus>;
    fn undo_log_delete(&self, request: UndoLogDelete) -> BoxFuture<'_, ()>;
}

impl<H: BranchHandler> ErasedHandler for H {
    fn commit(&self, request: BranchRequest) -> BoxFuture<'_, BranchStatus> {
        Box::pin(self.branch_commit(request))
    }
    fn rollback(&self, request: BranchRequest) -> BoxFuture<'_, BranchStatus> {
        Box::pin(self.branch_rollback(request))
    }
    fn undo_log_delete(&self, request: UndoLogDelete) -> BoxFuture<'_, ()> {
        Box::pin(BranchHandler::undo_log_delete(self, request))
    }
}

/// The handler table and the worker pool that runs handlers.
pub(crate) struct RmRuntime {
    handlers: RwLock<HashMap<String, Arc<dyn ErasedHandler>>>,
    permits: Arc<Semaphore>,
    /// Places for TC requests running or waiting for a worker; beyond them requests are
    /// dropped (the TC retries phase 2 on timeout) so a flood cannot grow memory.
    queued: Arc<Semaphore>,
}

/// TC requests one RM process keeps queued for its handler workers, beyond those running.
pub(crate) const MAX_QUEUED_TC_REQUESTS: usize = 10_000;

impl std::fmt::Debug for RmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmRuntime")
            .field("resources", &self.resource_ids())
            .finish_non_exhaustive()
    }
}

/// Sends the answer to a TC request back on the connection it came from.
pub(crate) type Reply = Box<dyn FnOnce(Message) + Send>;

impl RmRuntime {
    pub(crate) fn new(concurrency: usize) -> RmRuntime {
        RmRuntime {
            handlers: RwLock::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(concurrency)),
            queued: Arc::new(Semaphore::new(concurrency + MAX_QUEUED_TC_REQUESTS)),
        }
    }

    /// Every registered resource id, sorted (RegisterRM sends them comma-separated).
    pub(crate) fn resource_ids(&self) -> Vec<String> {
        let map = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<String> = map.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn insert(&self, resource_id: String, handler: Arc<dyn ErasedHandler>) {
        let mut map = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        map.insert(resource_id, handler);
    }

    fn handler(&self, resource_id: &str) -> Option<Arc<dyn ErasedHandler>> {
        let map = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        map.get(resource_id).cloned()
    }

    /// Runs the handler for a TC-initiated request off the connection's reader task and
    /// answers through `reply` (nothing is answered for UndoLogDelete, as in Java).
    /// False when the request was dropped because too many are queued already.
    pub(crate) fn dispatch(self: &Arc<Self>, message: Message, reply: Reply) -> bool {
        let Ok(queued) = self.queued.clone().try_acquire_owned() else {
            tracing::warn!(
                message = message.name(),
                limit = MAX_QUEUED_TC_REQUESTS,
                "too many TC requests waiting for a handler; dropped (the TC retries it later)"
            );
            return false;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _queued = queued;
            // Bounded pool: waiting here delays only phase-2 work; the TC retries on timeout.
            let Ok(_permit) = this.permits.clone().acquire_owned().await else {
                return;
            };
            match message {
                Message::BranchCommit(r) => {
                    let request = BranchRequest {
                        xid: r.xid,
                        branch_id: r.branch_id,
                        branch_type: r.branch_type,
                        resource_id: r.resource_id,
                        application_data: r.application_data,
                    };
                    let (xid, branch_id) = (request.xid.clone(), request.branch_id);
                    let branch_status = this.run(request, true).await;
                    reply(Message::BranchCommitResponse(BranchCommitResponse {
                        result: ResultInfo::success(),
                        xid,
                        branch_id,
                        branch_status,
                    }));
                }
                Message::BranchRollback(r) => {
                    let request = BranchRequest {
                        xid: r.xid,
                        branch_id: r.branch_id,
                        branch_type: r.branch_type,
                        resource_id: r.resource_id,
                        application_data: r.application_data,
                    };
                    let (xid, branch_id) = (request.xid.clone(), request.branch_id);
                    let branch_status = this.run(request, false).await;
                    reply(Message::BranchRollbackResponse(BranchRollbackResponse {
                        result: ResultInfo::success(),
                        xid,
                        branch_id,
                        branch_status,
                    }));
                }
                Message::UndoLogDelete(r) => {
                    let Some(handler) = this.handler(&r.resource_id) else {
                        return;
                    };
                    let request = UndoLogDelete {
                        branch_type: r.branch_type,
                        resource_id: r.resource_id,
                        save_days: r.save_days,
                    };
                    let handle = tokio::runtime::Handle::current();
                    let done = tokio::task::spawn_blocking(move || {
                        handle.block_on(handler.undo_log_delete(request))
                    })
                    .await;
                    if done.is_err() {
                        tracing::error!("undo-log delete handler panicked");
                    }
                }
                other => {
                    tracing::warn!(
                        message = other.name(),
                        "the TC sent a request an RM does not handle; ignored"
                    );
                }
            }
        });
        true
    }

    /// Runs one phase-2 handler on a blocking-pool thread so that it cannot stall the runtime's
    /// workers even if it blocks.
    async fn run(&self, request: BranchRequest, commit: bool) -> BranchStatus {
        let retry = if commit {
            BranchStatus::PhaseTwoCommitFailedRetryable
        } else {
            BranchStatus::PhaseTwoRollbackFailedRetryable
        };
        let Some(handler) = self.handler(&request.resource_id) else {
            tracing::warn!(
                xid = %request.xid,
                branch_id = request.branch_id,
                resource_id = %request.resource_id,
                "no handler registered for this resource; answering retryable so the TC tries again"
            );
            return retry;
        };
        let (xid, branch_id) = (request.xid.clone(), request.branch_id);
        let handle = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                if commit {
                    handler.commit(request).await
                } else {
                    handler.rollback(request).await
                }
            })
        })
        .await;
        match outcome {
            Ok(status) => {
                tracing::debug!(%xid, branch_id, commit, ?status, "branch phase two done");
                status
            }
            Err(error) => {
                tracing::error!(%xid, branch_id, commit, %error, "branch handler panicked; the TC will retry");
                retry
            }
        }
    }
}

/// BranchRegister: a branch of `xid` on `resource_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct BranchRegistration {
    pub xid: String,
    pub branch_type: BranchType,
    pub resource_id: String,
    /// The AT row-lock key (`table:pk1,pk2;table2:pk3`); empty for other modes.
    pub lock_key: String,
    /// Handed back in phase two (TCC: the action context as JSON).
    pub application_data: String,
}

impl BranchRegistration {
    /// A branch with no lock key and no application data.
    pub fn new(
        xid: impl Into<String>,
        branch_type: BranchType,
        resource_id: impl Into<String>,
    ) -> Self {
        BranchRegistration {
            xid: xid.into(),
            branch_type,
            resource_id: resource_id.into(),
            lock_key: String::new(),
            application_data: String::new(),
        }
    }

    pub fn lock_key(mut self, lock_key: impl Into<String>) -> Self {
        self.lock_key = lock_key.into();
        self
    }

    pub fn application_data(mut self, application_data: impl Into<String>) -> Self {
        self.application_data = application_data.into();
        self
    }
}

/// BranchReport: a branch's phase-one status, and new application data when non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct BranchReport {
    pub xid: String,
    pub branch_id: i64,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub status: BranchStatus,
    pub application_data: String,
}

impl BranchReport {
    /// A report of `status` for branch `branch_id` of `xid`, with no resource id and no new
    /// application data.
    pub fn new(
        xid: impl Into<String>,
        branch_id: i64,
        branch_type: BranchType,
        status: BranchStatus,
    ) -> Self {
        BranchReport {
            xid: xid.into(),
            branch_id,
            branch_type,
            resource_id: String::new(),
            status,
            application_data: String::new(),
        }
    }

    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = resource_id.into();
        self
    }

    pub fn application_data(mut self, application_data: impl Into<String>) -> Self {
        self.application_data = application_data.into();
        self
    }
}

/// GlobalLockQuery: are the rows of `lock_key` on `resource_id` free for `xid`?
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LockQuery {
    /// The asking transaction (rows it holds itself count as free); empty outside one.
    pub xid: String,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub lock_key: String,
}

impl LockQuery {
    pub fn new(
        xid: impl Into<String>,
        branch_type: BranchType,
        resource_id: impl Into<String>,
    ) -> Self {
        LockQuery {
            xid: xid.into(),
            branch_type,
            resource_id: resource_id.into(),
            lock_key: String::new(),
        }
    }

    pub fn lock_key(mut self, lock_key: impl Into<String>) -> Self {
        self.lock_key = lock_key.into();
        self
    }
}

/// The RM calls: resources with their handlers, branches and global locks, on the RM
/// connections.
impl Client {
    /// Registers `resource_id` (a TCC action name, an AT/XA datasource URL…) with the handler
    /// that answers its phase-2 requests, and announces it (RegisterRM) on every RM connection;
    /// connections made later, including reconnects, announce every registered resource.
    /// Registering an id again replaces its handler.
    pub async fn register_resource(
        &self,
        resource_id: impl Into<String>,
        handler: impl BranchHandler,
    ) -> Result<(), Error> {
        let resource_id = resource_id.into();
        if resource_id.is_empty() || resource_id.contains(',') {
            return Err(Error::Config(ConfigError::BadResourceId { resource_id }));
        }
        self.inner
            .rm_runtime
            .insert(resource_id.clone(), Arc::new(handler));
        self.inner.rm.announce_resources(&[resource_id]).await
    }

    /// Registers a branch and returns its branch id. A row held by another transaction is
    /// [`Error::LockConflict`].
    pub async fn branch_register(&self, branch: BranchRegistration) -> Result<i64, Error> {
        let BranchRegistration {
            xid,
            branch_type,
            resource_id,
            lock_key,
            application_data,
        } = branch;
        let request = Message::BranchRegister(ferrata_proto::BranchRegisterRequest {
            xid: xid.clone(),
            branch_type,
            resource_id: resource_id.clone(),
            lock_key: lock_key.clone(),
            application_data,
        });
        let op = Operation::BranchRegister;
        match self.rm_call(op, Some(&xid), request).await? {
            Message::BranchRegisterResponse(r) if r.result.is_success() => Ok(r.branch_id),
            Message::BranchRegisterResponse(r) => {
                use ferrata_proto::TransactionExceptionCode as C;
                match r.result.exception_code {
                    C::LockKeyConflict | C::LockKeyConflictFailFast => Err(Error::LockConflict {
                        xid,
                        resource_id,
                        lock_key,
                        fail_fast: r.result.exception_code == C::LockKeyConflictFailFast,
                        message: r.result.msg,
                    }),
                    code => Err(Error::from_result(op, code, r.result.msg)),
                }
            }
            other => Err(crate::unexpected(op, &other)),
        }
    }

    /// Reports a branch's phase-one status (and new application data when non-empty).
    pub async fn branch_report(&self, report: BranchReport) -> Result<(), Error> {
        let xid = report.xid.clone();
        let request = Message::BranchReport(ferrata_proto::BranchReportRequest {
            xid: report.xid,
            branch_id: report.branch_id,
            status: report.status,
            resource_id: report.resource_id,
            application_data: report.application_data,
            branch_type: report.branch_type,
        });
        let op = Operation::BranchReport;
        match self.rm_call(op, Some(&xid), request).await? {
            Message::BranchReportResponse(r) => r.result.into_result(op).map(|_| ()),
            other => Err(crate::unexpected(op, &other)),
        }
    }

    /// True when every row of the query's lock key is free or held by its `xid` itself (AT
    /// `@GlobalLock`).
    pub async fn lock_query(&self, query: LockQuery) -> Result<bool, Error> {
        let route = (!query.xid.is_empty()).then(|| query.xid.clone());
        let request = Message::GlobalLockQuery(ferrata_proto::GlobalLockQueryRequest {
            xid: query.xid,
            branch_type: query.branch_type,
            resource_id: query.resource_id,
            lock_key: query.lock_key,
            application_data: String::new(),
        });
        let op = Operation::GlobalLockQuery;
        match self.rm_call(op, route.as_deref(), request).await? {
            Message::GlobalLockQueryResponse(r) => r.result.into_result(op).map(|_| r.lockable),
            other => Err(crate::unexpected(op, &other)),
        }
    }
}
