//! Coordinator policy: XID shape, id worker, retry backoff, undo-log cleanup, and the limits
//! that keep one client from growing the coordinator's memory without bound.

/// Seata's TC port, where clients look for the coordinator unless told otherwise.
pub const SEATA_PORT: u16 = 8091;

const DAY_MS: i64 = 86_400_000;

/// A token bucket (Seata's `server.ratelimit.bucketTokenNumPerSecond`, `bucketTokenMaxNum`,
/// `bucketTokenInitialNum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub tokens_per_second: u32,
    pub max_tokens: u32,
    pub initial_tokens: u32,
}

/// Where a coordinator's transaction and branch ids come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdSource {
    /// Seata's snowflake layout with `worker_id`, its blocks logged as `Record::IdReserve`:
    /// one node on its own store.
    #[default]
    Snowflake,
    /// Ranges a shared store reserves for this node ([`crate::Effect::ReserveIds`] asks for
    /// them, [`crate::Coordinator::add_id_range`] hands them over): unique across nodes with no
    /// worker id to configure.
    StoreRanges,
}

/// Whether this coordinator is the only writer of its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreSharing {
    /// Its own store (the embedded log): every write it asks for is applied.
    #[default]
    Exclusive,
    /// A database other nodes write too: writes that decide a transaction or join it are
    /// conditioned on its status still being Begin ([`crate::Effect::PersistIf`]), and what
    /// the store refuses comes back through [`crate::Coordinator::store_refused`].
    Shared,
}

/// Settings of the coordinator core. Times are milliseconds. [`CoordinatorConfig::default`] is
/// the one place these defaults are written; the server's configuration starts from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `host:port` clients use to reach this TC; XIDs are `{xid_prefix}:{transactionId}`.
    pub xid_prefix: String,
    /// Where ids come from.
    pub id_source: IdSource,
    /// Whether other nodes write the store too.
    pub store_sharing: StoreSharing,
    /// Snowflake worker id (with [`IdSource::Snowflake`]).
    pub worker_id: u16,
    /// Give up commit retries once a transaction is older than this; `None` = never.
    pub max_commit_retry_timeout_ms: Option<i64>,
    /// Give up rollback retries once a transaction is older than this; `None` = never.
    pub max_rollback_retry_timeout_ms: Option<i64>,
    /// First retry of a failed phase 2 after this long; doubled per failed pass.
    pub retry_backoff_initial_ms: i64,
    /// Upper bound of the retry backoff.
    pub retry_backoff_max_ms: i64,
    /// Release the locks of a transaction whose rollback retries timed out.
    pub rollback_retry_timeout_unlock: bool,
    /// Seata's `server.xaerNotaRetryTimeout`: an XA branch whose database no longer knows its
    /// XA id (statuses 11/12) counts as done once the transaction is older than its timeout
    /// plus the larger of this and its timeout.
    pub xaer_nota_retry_timeout_ms: i64,
    /// Reject branch registrations whose application data is longer (UTF-8 bytes).
    pub application_data_limit: Option<usize>,
    /// Reject branch registrations and lock queries whose lock key is longer (bytes).
    pub max_lock_key_bytes: usize,
    /// Reject branch registrations and lock queries that name more distinct rows.
    pub max_rows_per_branch: usize,
    /// Reject branch registrations beyond this many branches in one global transaction.
    pub max_branches_per_transaction: usize,
    /// Reject GlobalBegin while this many global transactions are open.
    pub max_sessions: usize,
    /// Reject GlobalBegin with a longer timeout (milliseconds).
    pub max_transaction_timeout_ms: i64,
    /// Seata 2.4's `server.ratelimit.*`: a token bucket on GlobalBegin; `None` = off.
    pub begin_rate_limit: Option<RateLimit>,
    /// Seata's `server.enableParallelHandleBranch`: phase 2 visits the branches of different
    /// resources concurrently (branches of one resource stay in order).
    pub parallel_phase2: bool,
    /// First undo-log cleanup request after start.
    pub undo_log_delete_initial_delay_ms: i64,
    /// Period of undo-log cleanup requests; `None` sends none.
    pub undo_log_delete_period_ms: Option<i64>,
    /// Days of undo log the RMs keep.
    pub undo_log_save_days: i16,
}

impl Default for CoordinatorConfig {
    fn default() -> CoordinatorConfig {
        CoordinatorConfig {
            xid_prefix: format!("127.0.0.1:{SEATA_PORT}"),
            id_source: IdSource::Snowflake,
            store_sharing: StoreSharing::Exclusive,
            worker_id: 0,
            max_commit_retry_timeout_ms: None,
            max_rollback_retry_timeout_ms: None,
            retry_backoff_initial_ms: 1_000,
            retry_backoff_max_ms: 30_000,
            rollback_retry_timeout_unlock: false,
            xaer_nota_retry_timeout_ms: 60_000,
            // Seata's `server.applicationDataLimit`.
            application_data_limit: Some(64_000),
            // 1 MiB: about 100,000 eight-character keys.
            max_lock_key_bytes: 1 << 20,
            max_rows_per_branch: 100_000,
            max_branches_per_transaction: 10_000,
            max_sessions: 1_000_000,
            max_transaction_timeout_ms: DAY_MS,
            begin_rate_limit: None,
            parallel_phase2: false,
            undo_log_delete_initial_delay_ms: 180_000,
            undo_log_delete_period_ms: Some(DAY_MS),
            undo_log_save_days: 7,
        }
    }
}
