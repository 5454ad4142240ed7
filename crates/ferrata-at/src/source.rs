//! The AT data source: a sqlx pool wrapped so that local transactions begun through it take
//! part in the caller's global transaction, registered with the TC as one AT resource.

use std::sync::Arc;
use std::time::Duration;

use ferrata::Client;
use tokio_util::task::AbortOnDropHandle;

use crate::async_commit::{AsyncCommitter, FLUSH_INTERVAL};
use crate::database::{AtDatabase, DEFAULT_UNDO_TABLE, TimeZone};
use crate::error::AtError;
use crate::handler::AtBranchHandler;
use crate::lock_retry::LockRetry;
use crate::lock_retry::LockRetryPolicy;
use crate::meta::{MetaCache, TableMeta};
use crate::query::AtQuery;
use crate::sql::StatementCache;
use crate::transaction::{AtTransaction, Began, Finish};
use crate::undo::UndoSettings;
use crate::undo_table::UndoTable;

/// How AT records and restores rows; Seata's client defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtSettings {
    /// `client.rm.lock.retryInterval`, `retryTimes`, `retryPolicyBranchRollbackOnConflict`.
    pub lock_retry: LockRetryPolicy,
    /// `client.undo.compress.*` and the reader's size cap.
    pub undo: UndoSettings,
    /// `client.undo.dataValidation`: before a rollback, check that the rows are still what
    /// the branch left (after image) and refuse to overwrite anyone else's change.
    pub data_validation: bool,
    /// `client.undo.onlyCareUpdateColumns`: UPDATE images hold the key and the changed
    /// columns only, not every column.
    pub only_care_update_columns: bool,
    /// `client.rm.reportRetryCount`: attempts to report a failed phase one.
    pub report_retry_count: u32,
    /// The default time zone of the JVMs of Java resource managers sharing the database:
    /// Java writes dates and zone-less timestamps as epoch values taken in it.
    pub java_time_zone: TimeZone,
}

impl Default for AtSettings {
    fn default() -> Self {
        AtSettings {
            lock_retry: LockRetryPolicy::default(),
            undo: UndoSettings::default(),
            data_validation: true,
            only_care_update_columns: true,
            report_retry_count: 5,
            java_time_zone: TimeZone::UTC,
        }
    }
}

/// A sqlx pool as an AT resource. Clone it freely: clones share the pool, caches and
/// registration.
#[derive(Debug)]
pub struct AtDataSource<DB: AtDatabase> {
    pub(crate) inner: Arc<Shared<DB>>,
}

impl<DB: AtDatabase> Clone for AtDataSource<DB> {
    fn clone(&self) -> Self {
        AtDataSource {
            inner: self.inner.clone(),
        }
    }
}

/// What a data source and its phase-2 handler share.
#[derive(Debug)]
pub(crate) struct Shared<DB: AtDatabase> {
    pub pool: sqlx::Pool<DB>,
    pub client: Client,
    pub resource_id: String,
    pub undo_table: UndoTable<DB>,
    pub metas: MetaCache,
    pub statements: StatementCache,
    pub settings: AtSettings,
    pub committer: AsyncCommitter,
    /// Deletes committed branches' undo rows; stops when the last data source clone goes.
    _worker: AbortOnDropHandle<()>,
}

/// Builds an [`AtDataSource`]: `AtDataSource::builder(pool, client).build().await`.
#[derive(Debug)]
#[must_use = "call build() to register the resource"]
pub struct AtDataSourceBuilder<DB: AtDatabase> {
    pool: sqlx::Pool<DB>,
    client: Client,
    resource_id: Option<String>,
    undo_table: String,
    create_undo_table: bool,
    settings: AtSettings,
    async_commit_interval: Duration,
}

impl<DB: AtDatabase> AtDataSource<DB> {
    pub fn builder(pool: sqlx::Pool<DB>, client: Client) -> AtDataSourceBuilder<DB> {
        AtDataSourceBuilder {
            pool,
            client,
            resource_id: None,
            undo_table: DEFAULT_UNDO_TABLE.to_owned(),
            create_undo_table: true,
            settings: AtSettings::default(),
            async_commit_interval: FLUSH_INTERVAL,
        }
    }

    /// The resource id branches of this data source are registered under.
    pub fn resource_id(&self) -> &str {
        &self.inner.resource_id
    }

    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.inner.pool
    }

    pub fn settings(&self) -> &AtSettings {
        &self.inner.settings
    }

    /// Begins a local transaction. Inside a global transaction (an XID bound to the task, and
    /// no other branch type), its changes become an AT branch of it when it commits; outside
    /// one, statements run untouched.
    pub async fn begin(&self) -> Result<AtTransaction<DB>, AtError> {
        let tx = self.inner.pool.begin().await?;
        let xid = ferrata::context::current_xid().filter(|_| {
            ferrata::context::current_branch_type()
                .is_none_or(|branch_type| branch_type == ferrata::BranchType::At)
        });
        Ok(AtTransaction::new(self.clone(), tx, xid, false))
    }

    /// Begins a local transaction that, outside a global transaction, still respects the
    /// global locks (Java's `@GlobalLock`): its `SELECT … FOR UPDATE` waits for rows held by
    /// global transactions, and its commit waits until none holds a row it changed. Inside a
    /// global transaction it is [`AtDataSource::begin`].
    pub async fn begin_with_global_lock(&self) -> Result<AtTransaction<DB>, AtError> {
        let mut tx = self.begin().await?;
        if tx.xid().is_none() {
            tx.global_lock = true;
        }
        Ok(tx)
    }

    /// Runs one statement as its own local transaction (auto-commit), as a branch of the
    /// current global transaction if there is one. On a lock conflict it rolls back (releasing
    /// its row locks) and runs the statement again, as the lock retry policy says (Java's
    /// `retryPolicyBranchRollbackOnConflict`); with that policy off it waits holding them.
    pub async fn execute(&self, query: AtQuery) -> Result<u64, AtError> {
        let mut retry = LockRetry::new(self.inner.settings.lock_retry);
        loop {
            let mut tx = self.begin().await?;
            let changed = tx.execute(query.clone()).await?;
            match tx.finish(Began::ByDataSource).await {
                Ok(()) => return Ok(changed),
                Err(Finish::Failed(error)) => return Err(error),
                Err(Finish::Conflict(conflict)) => retry.wait_after(conflict, true).await?,
            }
        }
    }

    /// Forgets the cached metadata of `table` (after a schema change).
    pub fn forget_table(&self, table: &str) {
        self.inner.metas.forget(table);
    }
}

impl<DB: AtDatabase> Shared<DB> {
    /// The metadata of `table` as written in SQL, read once and then cached.
    pub async fn meta(
        &self,
        conn: &mut DB::Connection,
        table: &str,
    ) -> Result<Arc<TableMeta>, AtError> {
        if let Some(meta) = self.metas.get(table) {
            return Ok(meta);
        }
        let meta = DB::load_meta(conn, table).await?;
        Ok(self.metas.insert(table, meta))
    }
}

impl<DB: AtDatabase> AtDataSourceBuilder<DB> {
    /// The resource id to register (default: the JDBC URL a Java DataSourceProxy would report
    /// for the same database, `jdbc:mysql://host:port/db`, so Java and Rust branches of one
    /// database share locks and phase two).
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    /// The undo table (`client.undo.logTable`, default `undo_log`).
    pub fn undo_table(mut self, table: impl Into<String>) -> Self {
        self.undo_table = table.into();
        self
    }

    /// Whether `build` creates the undo table with Seata's DDL when it is missing (default
    /// true; turn off when migrations own the schema).
    pub fn create_undo_table(mut self, create: bool) -> Self {
        self.create_undo_table = create;
        self
    }

    pub fn settings(mut self, settings: AtSettings) -> Self {
        self.settings = settings;
        self
    }

    /// How often committed branches' undo rows are deleted (default 1 s, as Java).
    pub fn async_commit_interval(mut self, interval: Duration) -> Self {
        self.async_commit_interval = interval;
        self
    }

    /// Creates the undo table if asked, starts the undo-row deletion worker and registers the
    /// resource with the TC.
    pub async fn build(self) -> Result<AtDataSource<DB>, AtError> {
        let undo_table = UndoTable::<DB>::new(&self.undo_table)?;
        if self.create_undo_table {
            let mut conn = self.pool.acquire().await?;
            undo_table.create(&mut conn).await?;
        }
        let resource_id = self
            .resource_id
            .unwrap_or_else(|| DB::resource_id(&self.pool.connect_options()));
        let (committer, worker) = AsyncCommitter::new(
            self.pool.clone(),
            undo_table.clone(),
            self.async_commit_interval,
        );
        let worker = AbortOnDropHandle::new(tokio::spawn(worker.run()));
        let source = AtDataSource {
            inner: Arc::new(Shared {
                pool: self.pool,
                client: self.client,
                resource_id,
                undo_table,
                metas: MetaCache::default(),
                statements: StatementCache::default(),
                settings: self.settings,
                committer,
                _worker: worker,
            }),
        };
        let handler = AtBranchHandler::new(&source);
        source
            .inner
            .client
            .register_resource(source.inner.resource_id.clone(), handler)
            .await?;
        Ok(source)
    }
}
