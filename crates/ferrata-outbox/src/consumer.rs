//! The consumer: a handler per resource id receives each call of a message at least once;
//! a row per delivery in `ferrata_outbox_received`, written in the handler's own local
//! transaction, turns repeated deliveries into one effect.

use std::future::Future;
use std::sync::Arc;

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchStatus, Client};
use serde::de::DeserializeOwned;

use crate::dialect::{
    DEFAULT_CONSUMER_TABLE, OutboxDatabase, check_table_name, consumer_ddl, is_duplicate_key,
};
use crate::error::OutboxError;
use crate::producer::TxFuture;

/// One call of a message, as its consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's global transaction id.
    pub xid: String,
    /// The call's branch id: with `xid`, unique per call, and the same on every redelivery.
    pub branch_id: i64,
    pub resource_id: String,
    /// What the producer passed to `call` (JSON with `call_json`).
    pub payload: String,
}

impl Delivery {
    /// The payload read as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    fn of(request: BranchRequest) -> Delivery {
        Delivery {
            xid: request.xid,
            branch_id: request.branch_id,
            resource_id: request.resource_id,
            payload: request.application_data,
        }
    }
}

/// Consumers on one database: each handler runs in a local transaction that also records the
/// delivery, so a call redelivered after a success is acknowledged without running again.
pub struct Consumer<DB: OutboxDatabase> {
    client: Client,
    pool: sqlx::Pool<DB>,
    table: String,
}

impl<DB: OutboxDatabase> Clone for Consumer<DB> {
    fn clone(&self) -> Self {
        Consumer {
            client: self.client.clone(),
            pool: self.pool.clone(),
            table: self.table.clone(),
        }
    }
}

impl<DB: OutboxDatabase> std::fmt::Debug for Consumer<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("database", &DB::NAME)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<DB: OutboxDatabase> Consumer<DB> {
    /// Consumers recording deliveries in the default table `ferrata_outbox_received`.
    pub fn new(client: Client, pool: sqlx::Pool<DB>) -> Self {
        Consumer {
            client,
            pool,
            table: DEFAULT_CONSUMER_TABLE.to_owned(),
        }
    }

    /// Consumers recording deliveries in `table`.
    pub fn with_table(
        client: Client,
        pool: sqlx::Pool<DB>,
        table: impl Into<String>,
    ) -> Result<Self, OutboxError> {
        let table = table.into();
        check_table_name(&table)?;
        Ok(Consumer {
            client,
            pool,
            table,
        })
    }

    /// Creates the deduplication table if it does not exist.
    pub async fn create_table(&self) -> Result<(), OutboxError> {
        let ddl = consumer_ddl::<DB>(&self.table)?;
        let db = |operation, source| OutboxError::Database {
            operation,
            table: self.table.clone(),
            source,
        };
        let mut conn = self.pool.acquire().await.map_err(|e| db("connect", e))?;
        DB::execute_raw(&mut conn, &ddl)
            .await
            .map_err(|e| db("create table", e))
    }

    /// Registers `handler` for the calls addressed to `resource_id`. It runs inside a local
    /// transaction, which commits when it returns `Ok` (the call is done) and rolls back
    /// when it returns `Err` (the TC delivers the call again later).
    ///
    /// ```no_run
    /// # async fn demo(consumer: ferrata_outbox::Consumer<sqlx::MySql>) -> Result<(), ferrata_outbox::OutboxError> {
    /// consumer
    ///     .handle("mail-send", |delivery, tx| {
    ///         Box::pin(async move {
    ///             sqlx::query("INSERT INTO mails (xid, body) VALUES (?, ?)")
    ///                 .bind(&delivery.xid)
    ///                 .bind(&delivery.payload)
    ///                 .execute(&mut **tx)
    ///                 .await
    ///                 .map(|_| ())
    ///         })
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn handle<F, E>(
        &self,
        resource_id: impl Into<String>,
        handler: F,
    ) -> Result<(), OutboxError>
    where
        F: for<'t> Fn(
                Delivery,
                &'t mut sqlx::Transaction<'static, DB>,
            ) -> TxFuture<'t, Result<(), E>>
            + Send
            + Sync
            + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let handler = self.delivery_handler(handler);
        self.client.register_resource(resource_id, handler).await?;
        Ok(())
    }

    /// The phase-2 handler [`Consumer::handle`] registers, for registering it elsewhere or
    /// driving it directly.
    pub fn delivery_handler<F, E>(&self, handler: F) -> impl BranchHandler + use<F, E, DB>
    where
        F: for<'t> Fn(
                Delivery,
                &'t mut sqlx::Transaction<'static, DB>,
            ) -> TxFuture<'t, Result<(), E>>
            + Send
            + Sync
            + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        Deduplicated {
            pool: self.pool.clone(),
            table: self.table.clone(),
            handler: Arc::new(handler),
            _error: std::marker::PhantomData,
        }
    }
}

/// Registers `handler` for the calls addressed to `resource_id`, with no database: the
/// handler must itself tolerate the same call twice (a call is redelivered whenever its answer
/// is lost). `Ok` acknowledges the call, `Err` has the TC deliver it again later.
pub async fn handle_idempotent<F, Fut, E>(
    client: &Client,
    resource_id: impl Into<String>,
    handler: F,
) -> Result<(), OutboxError>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    client
        .register_resource(resource_id, Idempotent { handler })
        .await?;
    Ok(())
}

struct Deduplicated<DB: OutboxDatabase, F, E> {
    pool: sqlx::Pool<DB>,
    table: String,
    handler: Arc<F>,
    _error: std::marker::PhantomData<fn() -> E>,
}

/// How one delivery ended, for the log and the TC.
enum Outcome {
    Done,
    AlreadyDone,
}

impl<DB, F, E> Deduplicated<DB, F, E>
where
    DB: OutboxDatabase,
    F: for<'t> Fn(Delivery, &'t mut sqlx::Transaction<'static, DB>) -> TxFuture<'t, Result<(), E>>
        + Send
        + Sync
        + 'static,
    E: std::fmt::Display + Send + 'static,
{
    async fn deliver(&self, delivery: Delivery) -> Result<Outcome, String> {
        let mut tx = self.pool.begin().await.map_err(|e| format!("begin: {e}"))?;
        // First, so that a concurrent redelivery waits here for this one to end.
        match DB::insert_received(&mut *tx, &self.table, &delivery.xid, delivery.branch_id).await {
            Ok(()) => {}
            Err(error) if is_duplicate_key::<DB>(&error) => {
                if let Err(error) = tx.rollback().await {
                    tracing::debug!(%error, "rollback after a duplicate delivery failed");
                }
                return Ok(Outcome::AlreadyDone);
            }
            Err(error) => return Err(format!("record delivery in {}: {error}", self.table)),
        }
        if let Err(error) = (self.handler)(delivery, &mut tx).await {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(%rollback, "rollback after a failed handler failed");
            }
            return Err(format!("handler: {error}"));
        }
        tx.commit().await.map_err(|e| format!("commit: {e}"))?;
        Ok(Outcome::Done)
    }
}

impl<DB, F, E> BranchHandler for Deduplicated<DB, F, E>
where
    DB: OutboxDatabase,
    F: for<'t> Fn(Delivery, &'t mut sqlx::Transaction<'static, DB>) -> TxFuture<'t, Result<(), E>>
        + Send
        + Sync
        + 'static,
    E: std::fmt::Display + Send + 'static,
{
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        let (xid, branch_id) = (request.xid.clone(), request.branch_id);
        match self.deliver(Delivery::of(request)).await {
            Ok(Outcome::Done) => {
                tracing::debug!(%xid, branch_id, "message call delivered");
                BranchStatus::PhaseTwoCommitted
            }
            Ok(Outcome::AlreadyDone) => {
                tracing::debug!(%xid, branch_id, "message call delivered before; acknowledged again");
                BranchStatus::PhaseTwoCommitted
            }
            Err(error) => {
                tracing::warn!(%xid, branch_id, %error, "message call failed; the TC delivers it again");
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
        }
    }

    async fn branch_rollback(&self, _request: BranchRequest) -> BranchStatus {
        // The message was dropped before any delivery: nothing happened here.
        BranchStatus::PhaseTwoRollbacked
    }
}

struct Idempotent<F> {
    handler: F,
}

impl<F, Fut, E> BranchHandler for Idempotent<F>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        let (xid, branch_id) = (request.xid.clone(), request.branch_id);
        match (self.handler)(Delivery::of(request)).await {
            Ok(()) => BranchStatus::PhaseTwoCommitted,
            Err(error) => {
                tracing::warn!(%xid, branch_id, %error, "message call failed; the TC delivers it again");
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
        }
    }

    async fn branch_rollback(&self, _request: BranchRequest) -> BranchStatus {
        BranchStatus::PhaseTwoRollbacked
    }
}
