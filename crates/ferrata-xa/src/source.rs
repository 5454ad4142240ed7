//! An XA data source: a sqlx pool registered with the TC as one XA resource. Branches run on a
//! connection of the pool between XA START and XA PREPARE; phase 2 commits or rolls back the
//! prepared branch, on the session that prepared it where the database needs that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchRegistration, BranchReport, BranchStatus, BranchType, Client, GlobalStatus};
use sqlx::Pool;
use sqlx::pool::PoolConnection;

use crate::dialect::XaDatabase;
use crate::error::XaError;
use crate::xid::XaId;

/// A pool of one database registered as an XA resource. Cheap to clone.
#[derive(Debug)]
pub struct XaDataSource<DB: XaDatabase> {
    inner: Arc<Inner<DB>>,
}

impl<DB: XaDatabase> Clone for XaDataSource<DB> {
    fn clone(&self) -> Self {
        XaDataSource {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<DB: XaDatabase> {
    client: Client,
    pool: Pool<DB>,
    resource_id: String,
    /// Sessions of prepared branches, kept until phase 2 (databases that need it). Bounded by
    /// the pool: a held connection is one the pool does not hand out.
    held: Mutex<HashMap<XaId, PoolConnection<DB>>>,
}

impl<DB: XaDatabase> Inner<DB> {
    fn held(&self) -> MutexGuard<'_, HashMap<XaId, PoolConnection<DB>>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells the TC that phase one of a branch failed: phase 2 then skips it.
    async fn report_failed(&self, id: &XaId) {
        let report = BranchReport::new(
            id.xid.clone(),
            id.branch_id,
            BranchType::Xa,
            BranchStatus::PhaseOneFailed,
        )
        .resource_id(self.resource_id.clone());
        if let Err(error) = self.client.branch_report(report).await {
            // The TC's phase 2 still reaches the branch and finds no XA id: XAER_NOTA.
            tracing::warn!(%id, %error, "could not report a failed XA branch");
        }
    }

    /// Phase 2 of one branch: on its held session when there is one, else on any.
    async fn finish(&self, id: XaId, commit: bool) -> BranchStatus {
        let (failed, not_found) = if commit {
            (
                BranchStatus::PhaseTwoCommitFailedRetryable,
                BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable,
            )
        } else {
            (
                BranchStatus::PhaseTwoRollbackFailedRetryable,
                BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable,
            )
        };
        let held = self.held().remove(&id);
        let mut conn = match held {
            Some(conn) => conn,
            None => match self.pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%id, %error, "no connection for XA phase 2; the TC will retry");
                    return failed;
                }
            },
        };
        let result = if commit {
            DB::commit_prepared(&mut conn, &id).await
        } else {
            DB::rollback_prepared(&mut conn, &id).await
        };
        match result {
            Ok(()) => {
                tracing::debug!(%id, commit, "XA branch finished");
                if commit {
                    BranchStatus::PhaseTwoCommitted
                } else {
                    BranchStatus::PhaseTwoRollbacked
                }
            }
            Err(error) if DB::is_unknown_xa_id(&error) => {
                tracing::info!(%id, commit, "the database does not know this XA id (XAER_NOTA)");
                not_found
            }
            Err(error) => {
                tracing::warn!(%id, commit, %error, "XA phase 2 failed; the TC will retry");
                // The session's state is unknown: it must not go back to the pool.
                close(conn);
                failed
            }
        }
    }
}

/// Drops a connection's socket instead of returning it to the pool: an XA transaction may
/// still be open on it, which the database then rolls back (or detaches, if prepared).
fn close<DB: XaDatabase>(conn: PoolConnection<DB>) {
    drop(conn.detach());
}

/// Answers the TC's phase-2 requests for the data source's resource id.
struct Handler<DB: XaDatabase>(Arc<Inner<DB>>);

impl<DB: XaDatabase> BranchHandler for Handler<DB> {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        self.0
            .finish(XaId::new(request.xid, request.branch_id), true)
            .await
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        self.0
            .finish(XaId::new(request.xid, request.branch_id), false)
            .await
    }
}

/// What [`XaDataSource::recover`] found among the database's prepared branches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Branches of transactions the TC no longer knows, rolled back here.
    pub rolled_back: Vec<XaId>,
    /// Branches the TC still drives (it sends their phase 2 itself), left as they are.
    pub left_to_the_tc: Vec<XaId>,
}

impl<DB: XaDatabase> XaDataSource<DB> {
    /// Registers `pool` with the TC as XA resource `resource_id` (conventionally the database
    /// URL without credentials, as Seata's data source proxies name it) and answers its phase-2
    /// requests from now on.
    pub async fn register(
        client: &Client,
        pool: Pool<DB>,
        resource_id: impl Into<String>,
    ) -> Result<XaDataSource<DB>, XaError> {
        let inner = Arc::new(Inner {
            client: client.clone(),
            pool,
            resource_id: resource_id.into(),
            held: Mutex::new(HashMap::new()),
        });
        client
            .register_resource(inner.resource_id.clone(), Handler(inner.clone()))
            .await?;
        Ok(XaDataSource { inner })
    }

    /// The resource id branches register under.
    pub fn resource_id(&self) -> &str {
        &self.inner.resource_id
    }

    /// Starts a branch of global transaction `xid`: registers it with the TC and starts its
    /// XA transaction on a connection of the pool. Run the branch's statements on
    /// [`XaBranch::connection`], then [`XaBranch::prepare`] (or [`XaBranch::rollback`]).
    pub async fn begin(&self, xid: &str) -> Result<XaBranch<DB>, XaError> {
        let inner = &self.inner;
        let registration = BranchRegistration::new(xid, BranchType::Xa, inner.resource_id.clone());
        let branch_id = inner.client.branch_register(registration).await?;
        let id = XaId::new(xid, branch_id);
        let mut conn = match inner.pool.acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                inner.report_failed(&id).await;
                return Err(error.into());
            }
        };
        if let Err(error) = DB::start(&mut conn, &id).await {
            close(conn);
            inner.report_failed(&id).await;
            return Err(error.into());
        }
        Ok(XaBranch {
            source: inner.clone(),
            id,
            conn: Some(conn),
        })
    }

    /// Closes the sessions held for prepared branches, as a process that stops does: the
    /// branches stay prepared in the database (MariaDB from 10.5, MySQL from 8.0.29 keep them
    /// past their session) and phase 2 finishes them from any session, of this process or of
    /// its successor. Call it before shutting down.
    pub fn detach_prepared(&self) {
        let held = std::mem::take(&mut *self.inner.held());
        for (_, conn) in held {
            close(conn);
        }
    }

    /// Commits a prepared branch, as the TC's BranchCommit does (its answer is the status
    /// returned: committed, XAER_NOTA for an id the database does not know, or retryable).
    pub async fn commit_prepared(&self, id: XaId) -> BranchStatus {
        self.inner.finish(id, true).await
    }

    /// Rolls back a prepared branch, as the TC's BranchRollback does.
    pub async fn rollback_prepared(&self, id: XaId) -> BranchStatus {
        self.inner.finish(id, false).await
    }

    /// Prepared branches of this database that this process does not hold and `ours` claims:
    /// those of transactions the TC no longer knows (GlobalStatus Finished) are rolled back — a
    /// transaction is only ever acknowledged as committed once its branches are — and the rest
    /// are left for the TC's phase 2. Run it after a restart; it is safe at any time.
    ///
    /// `ours` must leave out branches of transactions of other coordinators that share the
    /// database (this TC would not know them and they would be rolled back): typically it
    /// compares [`XaId::tc_address`] with the addresses of this deployment's TC nodes.
    pub async fn recover(&self, ours: impl Fn(&XaId) -> bool) -> Result<Recovery, XaError> {
        let inner = &self.inner;
        let mut conn = inner.pool.acquire().await?;
        let prepared = DB::recover(&mut conn).await?;
        let mut recovery = Recovery::default();
        for id in prepared {
            if !ours(&id) || inner.held().contains_key(&id) {
                continue;
            }
            match inner.client.status(&id.xid).await? {
                GlobalStatus::Finished => {
                    match DB::rollback_prepared(&mut conn, &id).await {
                        Ok(()) => {}
                        // Finished meanwhile by the TC or another process.
                        Err(error) if DB::is_unknown_xa_id(&error) => continue,
                        Err(error) => return Err(error.into()),
                    }
                    tracing::info!(%id, "rolled back a prepared XA branch the TC no longer knows");
                    recovery.rolled_back.push(id);
                }
                _ => recovery.left_to_the_tc.push(id),
            }
        }
        Ok(recovery)
    }
}

/// One branch in phase one: its XA transaction is open on [`XaBranch::connection`]. Dropped
/// without [`XaBranch::prepare`] or [`XaBranch::rollback`], its connection is closed (the
/// database rolls the branch back) and the TC is told phase one failed.
#[derive(Debug)]
pub struct XaBranch<DB: XaDatabase> {
    source: Arc<Inner<DB>>,
    id: XaId,
    conn: Option<PoolConnection<DB>>,
}

impl<DB: XaDatabase> XaBranch<DB> {
    /// The branch's XA id.
    pub fn id(&self) -> &XaId {
        &self.id
    }

    /// The branch id the TC gave it.
    pub fn branch_id(&self) -> i64 {
        self.id.branch_id
    }

    /// The connection the branch's statements run on (inside its XA transaction).
    pub fn connection(&mut self) -> &mut DB::Connection {
        match self.conn.as_mut() {
            Some(conn) => conn,
            None => unreachable!("an XA branch keeps its connection until it is consumed"),
        }
    }

    /// Ends phase one: the branch's changes are prepared and wait for the TC's phase 2. On an
    /// error the branch is rolled back and the TC told so.
    pub async fn prepare(mut self) -> Result<(), XaError> {
        let Some(mut conn) = self.conn.take() else {
            unreachable!("an XA branch keeps its connection until it is consumed")
        };
        match DB::prepare(&mut conn, &self.id).await {
            Ok(()) => {
                if DB::HOLDS_PREPARED {
                    self.source.held().insert(self.id.clone(), conn);
                }
                Ok(())
            }
            Err(error) => {
                close(conn);
                self.source.report_failed(&self.id).await;
                Err(error.into())
            }
        }
    }

    /// Abandons the branch: its changes are rolled back and the TC told phase one failed.
    pub async fn rollback(mut self) -> Result<(), XaError> {
        let Some(mut conn) = self.conn.take() else {
            unreachable!("an XA branch keeps its connection until it is consumed")
        };
        let result = DB::rollback_active(&mut conn, &self.id).await;
        if result.is_err() {
            close(conn);
        }
        self.source.report_failed(&self.id).await;
        result.map_err(XaError::from)
    }
}

impl<DB: XaDatabase> Drop for XaBranch<DB> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        close(conn);
        let source = self.source.clone();
        let id = self.id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { source.report_failed(&id).await });
        }
    }
}
