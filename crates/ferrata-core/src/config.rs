//! Coordinator policy: XID shape, id worker, retry backoff and limits, undo-log cleanup.

/// Settings of the coordinator core. Times are milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `host:port` clients use to reach this TC; XIDs are `{xid_prefix}:{transactionId}`.
    pub xid_prefix: String,
    /// Snowflake worker id; nodes sharing a store need distinct ones.
    pub worker_id: u16,
    /// Give up commit retries once a transaction is older than this; negative = never.
    pub max_commit_retry_timeout_ms: i64,
    /// Give up rollback retries once a transaction is older than this; negative = never.
    pub max_rollback_retry_timeout_ms: i64,
    /// First retry of a failed phase 2 after this long; doubled per failed pass.
    pub retry_backoff_initial_ms: i64,
    /// Upper bound of the retry backoff.
    pub retry_backoff_max_ms: i64,
    /// Release the locks of a transaction whose rollback retries timed out.
    pub rollback_retry_timeout_unlock: bool,
    /// Reject branch registrations whose application data is longer (UTF-8 bytes).
    pub application_data_limit: Option<usize>,
    /// First undo-log cleanup request after start.
    pub undo_log_delete_initial_delay_ms: i64,
    /// Period of undo-log cleanup requests; negative disables them.
    pub undo_log_delete_period_ms: i64,
    /// Days of undo log the RMs keep.
    pub undo_log_save_days: i16,
}

impl Default for CoordinatorConfig {
    fn default() -> CoordinatorConfig {
        CoordinatorConfig {
            xid_prefix: "127.0.0.1:8091".to_owned(),
            worker_id: 0,
            max_commit_retry_timeout_ms: -1,
            max_rollback_retry_timeout_ms: -1,
            retry_backoff_initial_ms: 1_000,
            retry_backoff_max_ms: 30_000,
            rollback_retry_timeout_unlock: false,
            application_data_limit: None,
            undo_log_delete_initial_delay_ms: 180_000,
            undo_log_delete_period_ms: 86_400_000,
            undo_log_save_days: 7,
        }
    }
}
