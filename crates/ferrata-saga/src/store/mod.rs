//! Where a Saga's progress lives: definitions, machine instances and state instances as rows of
//! Seata's saga tables (`seata_state_machine_def`, `seata_state_machine_inst`,
//! `seata_state_inst`), behind the small [`StateLogStore`] trait.

use std::future::Future;
use std::pin::Pin;

use crate::model::ExecutionStatus;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod sql;

pub use sql::{SqlStateLogStore, StoreDatabase};

/// Boxed future of the store's methods (the trait is used as `dyn`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure: the database refused or could not be reached, or a row is not what this
/// engine writes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("saga store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("saga store: table prefix {0:?} is not a plain identifier")]
    BadTablePrefix(String),
    #[error("saga store: row {table}.{id} is malformed: {reason}")]
    Malformed {
        table: &'static str,
        id: String,
        reason: String,
    },
}

/// One row of `seata_state_machine_def`: a machine's JSON as it was registered.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionRecord {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub app_name: String,
    pub version: String,
    pub comment: Option<String>,
    pub recover_strategy: String,
    /// The machine in Seata's JSON language.
    pub content: String,
}

/// One row of `seata_state_machine_inst`. Its id is the global transaction's XID (or, for a
/// sub-machine, the parent's id and the calling state's id).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineInstanceRecord {
    pub id: String,
    pub machine_id: String,
    pub tenant_id: String,
    pub parent_id: Option<String>,
    pub business_key: Option<String>,
    /// The start parameters, a JSON object.
    pub start_params: String,
    /// The context when it ended (JSON object).
    pub end_params: Option<String>,
    pub status: ExecutionStatus,
    pub compensation_status: Option<ExecutionStatus>,
    pub running: bool,
    /// The error that ended it, as text.
    pub error: Option<String>,
}

/// One row of `seata_state_inst`: one execution of a task state (a forward run, a retry, or a
/// compensation).
#[derive(Debug, Clone, PartialEq)]
pub struct StateInstanceRecord {
    pub id: String,
    pub machine_instance_id: String,
    pub name: String,
    pub state_type: String,
    pub service_name: Option<String>,
    pub service_method: Option<String>,
    pub service_type: Option<String>,
    pub business_key: Option<String>,
    /// For a compensation: the forward state instance it undoes.
    pub compensated_for: Option<String>,
    /// For a forward-recovery re-run: the state instance it retries.
    pub retried_for: Option<String>,
    pub for_update: bool,
    /// The evaluated input (JSON).
    pub input: String,
    /// The service's result (JSON), once it returned.
    pub output: Option<String>,
    pub status: ExecutionStatus,
    /// The error it ended with, as JSON `{"kind": .., "message": ..}`.
    pub error: Option<String>,
}

/// The saga tables. Every write is its own committed statement, made before the engine moves
/// on, so a process that dies leaves rows that say how far it got.
pub trait StateLogStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates the three tables when they are missing.
    fn create_tables(&self) -> StoreFuture<'_, ()>;

    /// The newest definition of `name` for this tenant and application, if any.
    fn latest_definition<'a>(
        &'a self,
        name: &'a str,
        tenant_id: &'a str,
        app_name: &'a str,
    ) -> StoreFuture<'a, Option<DefinitionRecord>>;

    fn definition<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<DefinitionRecord>>;

    fn insert_definition<'a>(&'a self, definition: &'a DefinitionRecord) -> StoreFuture<'a, ()>;

    fn insert_machine<'a>(&'a self, machine: &'a MachineInstanceRecord) -> StoreFuture<'a, ()>;

    /// Writes status, compensation status, end params, error and the running flag.
    fn update_machine<'a>(&'a self, machine: &'a MachineInstanceRecord) -> StoreFuture<'a, ()>;

    fn machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineInstanceRecord>>;

    fn insert_state<'a>(&'a self, state: &'a StateInstanceRecord) -> StoreFuture<'a, ()>;

    /// Writes input, output, status and error of an existing row.
    fn update_state<'a>(&'a self, state: &'a StateInstanceRecord) -> StoreFuture<'a, ()>;

    /// A machine instance's state rows in execution order.
    fn states<'a>(
        &'a self,
        machine_instance_id: &'a str,
    ) -> StoreFuture<'a, Vec<StateInstanceRecord>>;
}

/// Seata's default table prefix (`seata_`): tables `seata_state_machine_def`, ...
pub const DEFAULT_TABLE_PREFIX: &str = "seata_";

/// Table prefixes are spliced into SQL text, so only plain identifiers are accepted.
pub(crate) fn check_table_prefix(prefix: &str) -> Result<(), StoreError> {
    let plain = prefix.len() <= 32
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !prefix.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(StoreError::BadTablePrefix(prefix.to_owned()))
    }
}
