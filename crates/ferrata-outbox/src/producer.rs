//! The producer: prepares a message at the TC (a `$Outbox_` global transaction with a check
//! branch and one delivery branch per call), records it in its local transaction, reports the
//! outcome, and answers the TC's check from its own database when it never reported.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{
    BranchRegistration, BranchStatus, BranchType, Client, GlobalStatus, GlobalTransaction,
};
use serde::Serialize;

use crate::dialect::{
    DEFAULT_PRODUCER_TABLE, OutboxDatabase, State, check_table_name, is_duplicate_key, parse_state,
    producer_ddl,
};
use crate::error::{OutboxError, SendError};

/// What the TC waits before it asks the check about a message nobody reported, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The transaction name prefix the TC recognises a message by (`$Outbox_<topic>`).
pub const NAME_PREFIX: &str = "$Outbox_";

/// A boxed future borrowing the local transaction, as sqlx's own `Connection::transaction`
/// takes: `|tx| Box::pin(async move { ... })`.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

/// A producer of two-phase messages on one database: its check resource is registered at the
/// TC, so the TC can ask this service (any instance of it) whether a message's local
/// transaction committed.
pub struct Outbox<DB: OutboxDatabase> {
    client: Client,
    pool: sqlx::Pool<DB>,
    check_resource_id: String,
    table: String,
    timeout: Duration,
}

impl<DB: OutboxDatabase> Clone for Outbox<DB> {
    fn clone(&self) -> Self {
        Outbox {
            client: self.client.clone(),
            pool: self.pool.clone(),
            check_resource_id: self.check_resource_id.clone(),
            table: self.table.clone(),
            timeout: self.timeout,
        }
    }
}

impl<DB: OutboxDatabase> std::fmt::Debug for Outbox<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("database", &DB::NAME)
            .field("check_resource_id", &self.check_resource_id)
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Sets an [`Outbox`] up: table name and default timeout, then [`OutboxBuilder::start`].
#[derive(Debug)]
#[must_use = "an outbox builder does nothing until `start` is awaited"]
pub struct OutboxBuilder<DB: OutboxDatabase> {
    client: Client,
    pool: sqlx::Pool<DB>,
    check_resource_id: String,
    table: String,
    timeout: Duration,
}

impl<DB: OutboxDatabase> OutboxBuilder<DB> {
    /// The producer table (default `ferrata_outbox`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How long the TC waits for a message's report before it asks the check (default
    /// [`DEFAULT_TIMEOUT`]); [`MessageBuilder::timeout`] overrides it per message.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the check resource with the TC (RegisterRM, now and on every reconnect).
    pub async fn start(self) -> Result<Outbox<DB>, OutboxError> {
        check_table_name(&self.table)?;
        let outbox = Outbox {
            client: self.client,
            pool: self.pool,
            check_resource_id: self.check_resource_id,
            table: self.table,
            timeout: self.timeout,
        };
        let check = Check {
            pool: outbox.pool.clone(),
            table: outbox.table.clone(),
        };
        outbox
            .client
            .register_resource(outbox.check_resource_id.clone(), check)
            .await?;
        Ok(outbox)
    }
}

impl<DB: OutboxDatabase> Outbox<DB> {
    /// A producer with the default table and timeout; registers `check_resource_id`, which
    /// every instance of the producing service should use (the TC asks any of them).
    pub async fn new(
        client: Client,
        pool: sqlx::Pool<DB>,
        check_resource_id: impl Into<String>,
    ) -> Result<Self, OutboxError> {
        Outbox::builder(client, pool, check_resource_id)
            .start()
            .await
    }

    pub fn builder(
        client: Client,
        pool: sqlx::Pool<DB>,
        check_resource_id: impl Into<String>,
    ) -> OutboxBuilder<DB> {
        OutboxBuilder {
            client,
            pool,
            check_resource_id: check_resource_id.into(),
            table: DEFAULT_PRODUCER_TABLE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Creates the producer table if it does not exist.
    pub async fn create_table(&self) -> Result<(), OutboxError> {
        let ddl = producer_ddl::<DB>(&self.table)?;
        let mut conn = (self.pool.acquire().await).map_err(|e| self.db_error("connect", e))?;
        DB::execute_raw(&mut conn, &ddl)
            .await
            .map_err(|e| self.db_error("create table", e))
    }

    /// A message on `topic` (the global transaction is named `$Outbox_<topic>`), with no call
    /// yet.
    pub fn message(&self, topic: &str) -> MessageBuilder<'_, DB> {
        MessageBuilder {
            outbox: self,
            topic: topic.to_owned(),
            calls: Vec::new(),
            timeout: self.timeout,
        }
    }

    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn db_error(&self, operation: &'static str, source: sqlx::Error) -> OutboxError {
        OutboxError::Database {
            operation,
            table: self.table.clone(),
            source,
        }
    }
}

/// One call of a message: the consumer's resource id and what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    resource_id: String,
    payload: String,
}

/// A message being composed: its calls, then [`MessageBuilder::prepare`] or
/// [`MessageBuilder::send`].
#[derive(Debug)]
#[must_use = "a message does nothing until it is prepared or sent"]
pub struct MessageBuilder<'o, DB: OutboxDatabase> {
    outbox: &'o Outbox<DB>,
    topic: String,
    calls: Vec<Call>,
    timeout: Duration,
}

impl<'o, DB: OutboxDatabase> MessageBuilder<'o, DB> {
    /// Adds a call: `payload` is handed to the handler of `resource_id` in some consumer.
    pub fn call(mut self, resource_id: impl Into<String>, payload: impl Into<String>) -> Self {
        self.calls.push(Call {
            resource_id: resource_id.into(),
            payload: payload.into(),
        });
        self
    }

    /// Adds a call with `payload` serialised as JSON.
    pub fn call_json(
        self,
        resource_id: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self, OutboxError> {
        let resource_id = resource_id.into();
        match serde_json::to_string(payload) {
            Ok(json) => Ok(self.call(resource_id, json)),
            Err(source) => Err(OutboxError::Payload {
                resource_id,
                source,
            }),
        }
    }

    /// How long the TC waits for this message's report before it asks the check.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the message at the TC: begins `$Outbox_<topic>`, registers the check branch
    /// first, then one delivery branch per call. Nothing is delivered yet. On failure the
    /// global transaction is rolled back.
    pub async fn prepare(self) -> Result<PreparedMessage<DB>, OutboxError> {
        let outbox = self.outbox;
        let name = format!("{NAME_PREFIX}{}", self.topic);
        let global = outbox.client.begin(self.timeout, &name).await?;
        let xid = global.xid().to_owned();
        let check = BranchRegistration::new(
            xid.clone(),
            BranchType::Tcc,
            outbox.check_resource_id.clone(),
        );
        let mut registrations = vec![check];
        registrations.extend(self.calls.into_iter().map(|call| {
            BranchRegistration::new(xid.clone(), BranchType::Tcc, call.resource_id)
                .application_data(call.payload)
        }));
        // In order: the TC takes the lowest branch id as the check.
        for registration in registrations {
            if let Err(error) = outbox.client.branch_register(registration).await {
                if let Err(rollback) = global.rollback().await {
                    tracing::warn!(%xid, %rollback, "rollback of a message that failed to prepare failed; the TC drops it at its timeout");
                }
                return Err(error.into());
            }
        }
        tracing::debug!(%xid, topic = %self.topic, "message prepared");
        Ok(PreparedMessage {
            outbox: outbox.clone(),
            global,
            xid,
        })
    }

    /// Prepares the message, runs `work` in a new local transaction, records the message in
    /// it, commits, and reports to the TC. The message is delivered if and only if the local
    /// transaction commits: an error from `work`, from recording or from the commit rolls
    /// the message back. (Should the commit fail with its outcome unknown, the message
    /// follows what the database did: the TC asks the check.)
    pub async fn send<T, E, F>(self, work: F) -> Result<T, SendError<E>>
    where
        F: for<'t> FnOnce(&'t mut sqlx::Transaction<'static, DB>) -> TxFuture<'t, Result<T, E>>,
    {
        let message = self.prepare().await?;
        let pool = message.outbox.pool.clone();
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(source) => {
                let error = message.outbox.db_error("begin", source);
                message.abort_quietly().await;
                return Err(error.into());
            }
        };
        let value = match work(&mut tx).await {
            Ok(value) => value,
            Err(error) => {
                rollback_quietly(tx, &message.xid).await;
                message.abort_quietly().await;
                return Err(SendError::Business(error));
            }
        };
        if let Err(error) = message.record(&mut tx).await {
            rollback_quietly(tx, &message.xid).await;
            message.abort_quietly().await;
            return Err(error.into());
        }
        if let Err(source) = tx.commit().await {
            let error = message.outbox.db_error("commit", source);
            message.abort_quietly().await;
            return Err(error.into());
        }
        // Committed: the message will be delivered whatever the report's fate.
        if let Err(error) = message.submit().await {
            tracing::warn!(%error, "the message's report failed; the TC delivers it after asking the check");
        }
        Ok(value)
    }
}

async fn rollback_quietly<DB: OutboxDatabase>(tx: sqlx::Transaction<'static, DB>, xid: &str) {
    if let Err(error) = tx.rollback().await {
        // Dropping the connection rolls back just the same.
        tracing::warn!(%xid, %error, "local rollback failed");
    }
}

/// A message registered at the TC and not delivered: record it in the local transaction
/// ([`PreparedMessage::record`]), then [`PreparedMessage::submit`] after the commit or
/// [`PreparedMessage::abort`] after a rollback. Dropped without either, it is reported rolled
/// back in the background; the TC then asks the check, so a committed record still wins.
#[derive(Debug)]
#[must_use = "a prepared message must be submitted or aborted"]
pub struct PreparedMessage<DB: OutboxDatabase> {
    outbox: Outbox<DB>,
    global: GlobalTransaction,
    xid: String,
}

impl<DB: OutboxDatabase> PreparedMessage<DB> {
    /// The message's global transaction id (also the key of its producer row).
    pub fn xid(&self) -> &str {
        &self.xid
    }

    /// Inserts the message's row, state `committed`, in the caller's local transaction: if
    /// that transaction commits, the message is delivered. [`OutboxError::AlreadyResolved`]
    /// means the TC's check got there first and dropped the message: roll back.
    pub async fn record(&self, tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), OutboxError> {
        let table = &self.outbox.table;
        match DB::insert_committed(&mut **tx, table, &self.xid).await {
            Ok(()) => Ok(()),
            Err(error) if is_duplicate_key::<DB>(&error) => Err(OutboxError::AlreadyResolved {
                xid: self.xid.clone(),
            }),
            Err(source) => Err(self.outbox.db_error("record message", source)),
        }
    }

    /// Reports the local commit: the TC delivers at once (and retries failed deliveries). An
    /// error only means the report was lost; after its timeout the TC asks the check, which
    /// finds the committed row, and delivers all the same. `Ok` carries the TC's status
    /// (`Committed`, or `CommitRetrying` while a consumer is failing).
    pub async fn submit(self) -> Result<GlobalStatus, OutboxError> {
        match self.global.commit().await {
            Ok(status) => Ok(status),
            Err(ferrata::Error::TransactionTimeout { status, .. }) => {
                // Too late to report: the TC resolves it through the check (deliver).
                tracing::debug!(xid = %self.xid, ?status, "message reported after its timeout; the check decides");
                Ok(status)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Reports that the local transaction rolled back (call it after the rollback): the TC
    /// asks the check, which now records the message as not sent, and drops it. `Ok` carries
    /// the TC's status (`Rollbacked` normally).
    pub async fn abort(self) -> Result<GlobalStatus, OutboxError> {
        match self.global.rollback().await {
            Ok(status) => Ok(status),
            // The check found the record committed after all: the message is delivered.
            Err(ferrata::Error::RollbackFailed { status, .. }) => Ok(status),
            Err(error) => Err(error.into()),
        }
    }

    async fn abort_quietly(self) {
        let xid = self.xid.clone();
        if let Err(error) = self.abort().await {
            tracing::warn!(%xid, %error, "rolling the message back failed; the TC drops it after its timeout");
        }
    }
}

/// The check branch's handler: the TC asks it, as a BranchRollback, whether the message's
/// local transaction committed.
struct Check<DB: OutboxDatabase> {
    pool: sqlx::Pool<DB>,
    table: String,
}

impl<DB: OutboxDatabase> Check<DB> {
    /// In one local transaction: insert the row as `rolledback` unless one exists, then read
    /// it. The primary key orders this against the producer's local transaction: whichever
    /// inserts first wins, the other waits for it and then sees its row.
    async fn resolve(&self, xid: &str) -> Result<State, OutboxError> {
        let db = |operation, source| OutboxError::Database {
            operation,
            table: self.table.clone(),
            source,
        };
        let mut tx = self.pool.begin().await.map_err(|e| db("begin", e))?;
        let state = DB::insert_rolled_back_or_read(&mut *tx, &self.table, xid)
            .await
            .map_err(|e| db("check message", e))?;
        tx.commit().await.map_err(|e| db("commit", e))?;
        // Only this crate writes the table; anything else is not ours to interpret.
        parse_state(state).ok_or_else(|| OutboxError::UnreadableRow {
            table: self.table.clone(),
            xid: xid.to_owned(),
        })
    }
}

impl<DB: OutboxDatabase> BranchHandler for Check<DB> {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        // The TC never commits a check branch; should one arrive, there is nothing to do.
        tracing::debug!(xid = %request.xid, "commit of a message's check branch; nothing to do");
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        match self.resolve(&request.xid).await {
            Ok(State::Committed) => {
                tracing::info!(xid = %request.xid, "message check: the local transaction committed; deliver");
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
            Ok(State::RolledBack) => {
                tracing::debug!(xid = %request.xid, "message check: not committed; dropped");
                BranchStatus::PhaseTwoRollbacked
            }
            Err(error) => {
                tracing::warn!(xid = %request.xid, %error, "message check failed; the TC asks again");
                BranchStatus::PhaseTwoRollbackFailedRetryable
            }
        }
    }
}
