//! Session stores on a shared database, for several ferrata-server nodes: [`SqlStore`] over
//! PostgreSQL or MySQL/MariaDB (sqlx), in Seata's own db-mode tables (`global_table`,
//! `branch_table`, `lock_table`, `distributed_lock`), so a database seata-server used works as
//! it is. Operations are in `ops` (one by one) and `batch` (set-based; on PostgreSQL one read
//! and one write statement a batch, `batch/postgres`), reads in `read`, SQL per
//! database in `dialect`, transactions (one begun ahead of each batch) in `tx`.

mod batch;
mod dialect;
#[cfg(feature = "mysql")]
mod mysql;
mod ops;
#[cfg(feature = "postgres")]
mod postgres;
mod read;
mod tx;

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrata_core::{Record, SessionTable, StoredTransaction, TransactionId};
use ferrata_proto::GlobalStatus;
use ferrata_store::{
    LeaseOutcome, OpOutcome, RowKey, RowLock, SessionStore, StoreError, StoreLimits, StoreOp,
};
use sqlx::pool::PoolOptions;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::tx::Tx;

pub use dialect::SqlDatabase;

/// How many times a transaction the database rolled back to break a deadlock (or a lost
/// insert race) is run again before the error reaches the caller.
pub const DEADLOCK_ATTEMPTS: u32 = 8;

/// A transaction begun ahead of a batch that waited this long (at most half the
/// abandoned-transaction timeout) is rolled back for a new one: the database may have ended
/// the idle session. Pooled connections, by contrast, are pinged before every use (sqlx's
/// default): one handed back by a task the store's runtime ran only later may look fresh.
const BEGUN_AHEAD_MAX: Duration = Duration::from_secs(1);

/// [`BEGUN_AHEAD_MAX`] for `config`.
fn begun_ahead_max(config: &SqlStoreConfig) -> Duration {
    config
        .abandoned_transaction_timeout
        .map_or(BEGUN_AHEAD_MAX, |timeout| {
            (timeout / 2).min(BEGUN_AHEAD_MAX)
        })
}

/// `distributed_lock` row that holds the next id no node has reserved.
pub(crate) const NEXT_ID_KEY: &str = "FerrataNextId";

/// Ferrata's one table beside Seata's: the XID prefix (`host:port`) of every node, so that a
/// node can reach the one driving a transaction. seata-server ignores it.
pub(crate) const NODE_TABLE: &str = "ferrata_node";

/// Where the store is and how it behaves.
#[derive(Debug, Clone)]
pub struct SqlStoreConfig {
    /// `postgres://user:password@host:port/database` or `mysql://…`.
    pub url: String,
    /// The PostgreSQL schema or MySQL database that holds the tables (created when missing);
    /// `None`: the connection's default.
    pub schema: Option<String>,
    /// Create Seata's tables when they are missing (`CREATE TABLE IF NOT EXISTS`).
    pub create_tables: bool,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    /// Recover only the transactions whose XID starts with `prefix:` — this node's, when
    /// several nodes share the database; `None`: every transaction.
    pub xid_prefix: Option<String>,
    /// The coordinator's `rollback_retry_timeout_unlock` (see
    /// [`ferrata_core::lock::status_holds_locks`]).
    pub rollback_retry_timeout_unlock: bool,
    /// Read the stored sessions on opening; off for a second handle on a database whose
    /// sessions another handle recovered (the server's lease keeper).
    pub recover: bool,
    /// The database ends a session of this store that stays idle inside a transaction this
    /// long (rounded up to seconds on MySQL, where it bounds any idle session), releasing its
    /// row locks: a node cut off mid-transaction must not block the others for hours.
    pub abandoned_transaction_timeout: Option<Duration>,
}

impl SqlStoreConfig {
    pub fn new(url: impl Into<String>) -> SqlStoreConfig {
        SqlStoreConfig {
            url: url.into(),
            schema: None,
            create_tables: true,
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            xid_prefix: None,
            rollback_retry_timeout_unlock: false,
            recover: true,
            abandoned_transaction_timeout: None,
        }
    }
}

/// A session store in Seata's db-mode tables. Blocking, like every [`SessionStore`]: it runs
/// its own single-threaded runtime, so call it from a plain thread (the server's writer).
#[derive(Debug)]
pub struct SqlStore<DB: sqlx::Database> {
    runtime: tokio::runtime::Runtime,
    pool: sqlx::Pool<DB>,
    rollback_retry_timeout_unlock: bool,
    /// See [`SqlStoreConfig::xid_prefix`].
    xid_prefix: Option<String>,
    /// The last `gmt_create` given to a branch, in microseconds: branches of one batch get
    /// distinct, increasing times, which is the order they are read back in.
    last_micros: i64,
    /// The transaction the last batch's commit began for the next batch (see
    /// [`Tx::commit_and_begin`]), on a connection kept out of the pool meanwhile.
    ahead: Option<Tx<DB>>,
    /// How long a transaction begun ahead is used (well within the database's
    /// abandoned-transaction timeout); `None`: none is begun ahead, as the database cannot
    /// commit and begin in one request (MySQL) or the pool has a single connection, which
    /// reads need.
    begin_ahead_for: Option<Duration>,
}

impl<DB: sqlx::Database> Drop for SqlStore<DB> {
    fn drop(&mut self) {
        // A pooled connection hands itself back through a task of the runtime.
        let _inside = self.runtime.enter();
        self.ahead = None;
    }
}

fn database_error(context: impl Into<String>, source: sqlx::Error) -> StoreError {
    StoreError::Database {
        context: context.into(),
        source: Box::new(source),
    }
}

/// Whether sqlx's error is one that running the whole transaction again can cure.
fn is_retryable<DB: SqlDatabase>(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => DB::is_retryable(db.as_ref()),
        _ => false,
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) of epoch microseconds, for timestamp parameters.
pub(crate) fn timestamp(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or_default());
    let text = humantime::format_rfc3339_micros(at).to_string();
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl<DB> SqlStore<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Connects, creates Seata's tables if asked and missing, and reads every stored session.
    pub fn open(config: SqlStoreConfig) -> Result<(SqlStore<DB>, SessionTable), StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io {
                context: "cannot start the database store's runtime".to_owned(),
                source: e,
            })?;
        let pool = runtime.block_on(Self::connect(&config))?;
        let store = SqlStore {
            runtime,
            pool,
            rollback_retry_timeout_unlock: config.rollback_retry_timeout_unlock,
            xid_prefix: config.xid_prefix.clone(),
            last_micros: 0,
            ahead: None,
            begin_ahead_for: (DB::COMMIT_AND_BEGIN.is_some() && config.max_connections >= 2)
                .then(|| begun_ahead_max(&config)),
        };
        let table = if config.recover {
            store.runtime.block_on(store.load_all())?
        } else {
            SessionTable::new()
        };
        tracing::info!(
            database = DB::DISPLAY_NAME,
            transactions = table.len(),
            "database session store opened"
        );
        Ok((store, table))
    }

    async fn connect(config: &SqlStoreConfig) -> Result<sqlx::Pool<DB>, StoreError> {
        let context = format!("cannot connect to the {} session store", DB::DISPLAY_NAME);
        if let (Some(schema), true) = (&config.schema, config.create_tables) {
            check_schema_name(schema)?;
            let mut conn = <DB::Connection as sqlx::Connection>::connect(&config.url)
                .await
                .map_err(|e| database_error(context.clone(), e))?;
            (&mut conn)
                .execute(DB::create_schema(schema).as_str())
                .await
                .map_err(|e| database_error("cannot create the store's schema", e))?;
        }
        let mut options = PoolOptions::<DB>::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.connect_timeout);
        let mut session: Vec<String> = DB::session_setup()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if let Some(schema) = &config.schema {
            check_schema_name(schema)?;
            session.push(DB::use_schema(schema));
        }
        if let Some(timeout) = config.abandoned_transaction_timeout {
            session.push(DB::abandoned_transaction_timeout(timeout));
            // Close idle connections before the database does (MySQL bounds any idle one).
            options = options.idle_timeout(timeout / 2);
        }
        if !session.is_empty() {
            let session = std::sync::Arc::new(session);
            options = options.after_connect(move |conn, _| {
                let session = session.clone();
                Box::pin(async move {
                    for statement in session.iter() {
                        conn.execute(statement.as_str()).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&config.url)
            .await
            .map_err(|e| database_error(context, e))?;
        if config.create_tables {
            create_tables(&pool).await?;
        }
        Ok(pool)
    }

    /// A `gmt_create` later than every one this store gave before.
    fn next_micros(&mut self) -> i64 {
        self.last_micros = now_micros().max(self.last_micros + 1);
        self.last_micros
    }

    /// Takes the lease `name` for `holder` (also from `previous`), in a transaction of its own.
    fn lease(
        &mut self,
        name: &str,
        holder: &str,
        previous: Option<&str>,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        check_lease_name("lease name", name)?;
        check_lease_name("lease holder", holder)?;
        let pool = self.pool.clone();
        self.with_retries("cannot take a lease in the session store", async || {
            let mut tx = Tx::begin(&pool).await?;
            let outcome =
                ops::Sql::<DB>::try_lease(&mut tx, name, holder, previous, ttl_ms, now_ms).await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// Runs `attempt` (one whole database transaction) again while the database rolls it back
    /// to break a deadlock, at most [`DEADLOCK_ATTEMPTS`] times.
    fn with_retries<T>(
        &self,
        what: &str,
        mut attempt: impl AsyncFnMut() -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.runtime.block_on(attempt()) {
                Ok(value) => return Ok(value),
                Err(error) if tries < DEADLOCK_ATTEMPTS && is_retryable::<DB>(&error) => {
                    tracing::debug!(%error, tries, "{what}: the database rolled back; running it again");
                    // Nodes that collided back off by different amounts before the next try.
                    let jitter = u64::from(now_micros().unsigned_abs() as u32 % 1_000);
                    std::thread::sleep(Duration::from_micros((1_000 << tries.min(6)) + jitter));
                }
                Err(error) => return Err(database_error(what.to_owned(), error)),
            }
        }
    }
}

/// Opens the store on the database `config.url` names (`postgres://`, `postgresql://`,
/// `mysql://` or `mariadb://`, each when its feature is on).
pub fn open(config: SqlStoreConfig) -> Result<(Box<dyn SessionStore>, SessionTable), StoreError> {
    let scheme = config.url.split("://").next().unwrap_or_default();
    match scheme {
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let (store, table) = SqlStore::<sqlx::Postgres>::open(config)?;
            Ok((Box::new(store), table))
        }
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => {
            let config = SqlStoreConfig {
                // sqlx's MySQL driver knows only the mysql scheme; MariaDB speaks it.
                url: config.url.replacen("mariadb://", "mysql://", 1),
                ..config
            };
            let (store, table) = SqlStore::<sqlx::MySql>::open(config)?;
            Ok((Box::new(store), table))
        }
        _ => Err(StoreError::Invalid(format!(
            "store URL scheme {scheme:?} is not supported by this build: use postgres:// or \
             mysql:// (mariadb://), with the matching cargo feature"
        ))),
    }
}

/// Schema names go into DDL text, so only plain identifiers are accepted.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "store schema name {schema:?} must be letters, digits and '_' (at most 63, not starting with a digit)"
        )))
    }
}

async fn create_tables<DB>(pool: &sqlx::Pool<DB>) -> Result<(), StoreError>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let context = "cannot create Seata's db-mode tables";
    let mut tx = pool.begin().await.map_err(|e| database_error(context, e))?;
    if let Some(lock) = DB::schema_lock() {
        (&mut *tx)
            .execute(lock)
            .await
            .map_err(|e| database_error(context, e))?;
    }
    for statement in DB::schema() {
        (&mut *tx)
            .execute(statement.as_str())
            .await
            .map_err(|e| database_error(context, e))?;
    }
    tx.commit().await.map_err(|e| database_error(context, e))
}

impl<DB> SessionStore for SqlStore<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn apply(&mut self, ops: &[StoreOp], outcomes: &mut Vec<OpOutcome>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let base = self.next_micros();
        // Reserve one microsecond per op so every branch of the batch gets its own time.
        self.last_micros = base + i64::try_from(ops.len()).unwrap_or(i64::MAX / 2);
        let start = outcomes.len();
        let unlock = self.rollback_retry_timeout_unlock;
        let pool = self.pool.clone();
        let fresh_for = self.begin_ahead_for;
        let mut ahead = self.ahead.take();
        let (done, next) =
            self.with_retries("cannot apply operations to the session store", async || {
                let mut tx = match ahead.take() {
                    Some(tx) if fresh_for.is_some_and(|age| tx.begun_within(age)) => tx,
                    Some(stale) => {
                        // Idle for a while: the database may have ended its session.
                        drop(stale.rollback().await);
                        Tx::begin(&pool).await?
                    }
                    None => Tx::begin(&pool).await?,
                };
                let done = match ops::Sql::<DB>::apply_batch(&mut tx, ops, base, unlock).await? {
                    batch::Fast::Applied(outcomes) => outcomes,
                    batch::Fast::OpByOp(why) => {
                        tracing::debug!(why, ops = ops.len(), "a batch applied op by op");
                        tx.rollback().await?;
                        tx = Tx::begin(&pool).await?;
                        let mut locked = ops::LockedGlobals::new();
                        let mut batch = Vec::with_capacity(ops.len());
                        for (index, op) in ops.iter().enumerate() {
                            let micros = base + i64::try_from(index).unwrap_or_default();
                            batch.push(
                                ops::Sql::<DB>::apply_op(&mut tx, &mut locked, op, micros, unlock)
                                    .await?,
                            );
                        }
                        batch
                    }
                };
                match (fresh_for, DB::COMMIT_AND_BEGIN) {
                    (Some(_), Some(statements)) => {
                        tx.commit_and_begin(statements).await?;
                        Ok((done, Some(tx)))
                    }
                    _ => {
                        tx.commit().await?;
                        Ok((done, None))
                    }
                }
            })?;
        self.ahead = next;
        outcomes.truncate(start);
        outcomes.extend(done);
        Ok(())
    }

    fn limits(&self) -> StoreLimits {
        DB::limits()
    }

    fn transaction(&self, id: TransactionId) -> Result<Option<StoredTransaction>, StoreError> {
        let found = self
            .runtime
            .block_on(self.load(read::Filter::Id(id), None))?;
        Ok(found.into_iter().next())
    }

    fn transactions_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: usize,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        if statuses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        self.runtime
            .block_on(self.load(read::Filter::Statuses(statuses), Some(limit)))
    }

    fn lock_holders(&self, rows: &[RowKey]) -> Result<Vec<RowLock>, StoreError> {
        self.runtime.block_on(self.holders(rows))
    }

    fn xid_prefixes(&self) -> Result<Vec<String>, StoreError> {
        self.runtime.block_on(self.prefixes())
    }

    fn transactions_of_node(&self, prefix: &str) -> Result<Vec<StoredTransaction>, StoreError> {
        let mut found = self
            .runtime
            .block_on(self.load(read::Filter::XidPrefix(prefix), None))?;
        // LIKE 'prefix:%' also matches a longer prefix that starts the same way.
        found.retain(|tx| ferrata_core::xid_prefix(&tx.global.xid) == prefix);
        Ok(found)
    }

    fn announce_node(&mut self, prefix: &str) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.with_retries(
            "cannot announce this node in the session store",
            async || {
                let mut conn = pool.acquire().await?;
                let sql = format!(
                    "INSERT INTO {NODE_TABLE} (xid_prefix) VALUES (?) {}",
                    DB::on_conflict_skip("xid_prefix")
                );
                ops::Sql::<DB>::execute(&mut conn, &sql, vec![prefix.into()]).await?;
                Ok(())
            },
        )
    }

    fn nodes(&self) -> Result<Vec<String>, StoreError> {
        self.runtime.block_on(self.node_prefixes())
    }

    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.lease(name, holder, None, ttl_ms, now_ms)
    }

    fn take_lease_from(
        &mut self,
        name: &str,
        holder: &str,
        previous: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.lease(name, holder, Some(previous), ttl_ms, now_ms)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, StoreError> {
        check_lease_name("lease name", name)?;
        check_lease_name("lease holder", holder)?;
        let pool = self.pool.clone();
        self.with_retries("cannot release a lease in the session store", async || {
            let mut tx = Tx::begin(&pool).await?;
            let released = ops::Sql::<DB>::release_lease(&mut tx, name, holder).await?;
            tx.commit().await?;
            Ok(released)
        })
    }

    fn reserve_ids(&mut self, count: i64) -> Result<Range<i64>, StoreError> {
        let pool = self.pool.clone();
        self.with_retries("cannot reserve ids in the session store", async || {
            let mut tx = Tx::begin(&pool).await?;
            let range = ops::Sql::<DB>::reserve_ids(&mut tx, count).await?;
            tx.commit().await?;
            Ok(range)
        })
    }

    /// The database reclaims space itself; `live` is the state it already holds.
    fn compact(&mut self, _live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Lease names and holders live in `distributed_lock`'s 20-character columns.
fn check_lease_name(what: &str, value: &str) -> Result<(), StoreError> {
    let limit = 20;
    if value.is_empty() || value.chars().count() > limit || value.trim() != value {
        return Err(StoreError::Invalid(format!(
            "{what} {value:?} must be 1 to {limit} characters without surrounding spaces (distributed_lock's columns)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000000");
        assert_eq!(
            timestamp(1_700_000_000_123_456),
            "2023-11-14 22:13:20.123456"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema_name("ferrata_1").is_ok());
        for bad in ["", "1abc", "a-b", "a\"b", "a;drop", &"x".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
