//! The engine: machines and services registered by name, runs that start, forward-recover or
//! compensate instances, and the TC link (GlobalBegin/GlobalReport, and the branch -1 requests
//! through which the TC drives recovery).

mod error;
mod run;
mod tc;
mod values;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};

pub use error::{
    CONNECTION_REFUSED, MAX_ERROR_MESSAGE_BYTES, SUB_MACHINE_FAILED, SUB_MACHINE_UNKNOWN,
    SagaError, ServiceError,
};

use crate::model::{ExecutionStatus, StateMachine};
use crate::store::{DefinitionRecord, StateLogStore};

/// Seata's default tenant (`tenantId`).
pub const DEFAULT_TENANT: &str = "000001";

/// Seata's default timeout of a Saga's global transaction (`transOperationTimeout`, 30 min).
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Most elements a Loop state runs over: a larger collection fails the state rather than
/// writing an unbounded number of rows.
pub const MAX_LOOP_ELEMENTS: usize = 10_000;

/// Longest business key: the saga tables' `business_key` column is VARCHAR(48).
pub const MAX_BUSINESS_KEY_CHARS: usize = 48;

/// Longest instance id: the `id` / `parent_id` columns are VARCHAR(128), which bounds how deep
/// sub-machines nest (each level adds `:` and a row id to its parent's id).
pub const MAX_INSTANCE_ID_CHARS: usize = 128;

/// Most states one run executes (forward and compensation together), so a machine whose
/// Choices loop forever fails instead of running forever.
pub const MAX_STEPS: usize = 100_000;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A service method: JSON arguments in, a JSON result or a [`ServiceError`] out.
pub(crate) type Service =
    Arc<dyn Fn(Vec<Value>) -> BoxFuture<Result<Value, ServiceError>> + Send + Sync>;

/// How an instance ended (or stands, for one still unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct SagaOutcome {
    /// The machine instance id: the global transaction's XID when a TC is used.
    pub instance_id: String,
    pub status: ExecutionStatus,
    /// Set once compensation ran.
    pub compensation_status: Option<ExecutionStatus>,
    /// The context at the end: start parameters plus every Output.
    pub context: Map<String, Value>,
    /// The error or Fail state that ended it.
    pub error: Option<String>,
}

/// Settings of an engine; [`SagaEngineBuilder`] sets them.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub tenant_id: String,
    pub app_name: String,
    pub transaction_timeout: Duration,
}

/// Runs state machines. Cheap to clone.
#[derive(Clone)]
pub struct SagaEngine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SagaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaEngine")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .field("tc", &self.inner.client.is_some())
            .finish()
    }
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub store: Arc<dyn StateLogStore>,
    pub client: Option<ferrata::Client>,
    /// name → (definition row id, machine)
    pub machines: RwLock<HashMap<String, (String, Arc<StateMachine>)>>,
    pub services: RwLock<HashMap<(String, String), Service>>,
    /// One run at a time per instance: the TC's recovery waits for a run still in progress.
    pub instance_locks: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Builds a [`SagaEngine`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct SagaEngineBuilder {
    store: Arc<dyn StateLogStore>,
    client: Option<ferrata::Client>,
    tenant_id: String,
    app_name: Option<String>,
    transaction_timeout: Duration,
    create_tables: bool,
}

impl SagaEngine {
    /// An engine keeping its instances in `store` (e.g. a [`crate::store::SqlStateLogStore`]).
    pub fn builder(store: impl StateLogStore) -> SagaEngineBuilder {
        SagaEngineBuilder {
            store: Arc::new(store),
            client: None,
            tenant_id: DEFAULT_TENANT.to_owned(),
            app_name: None,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
            create_tables: true,
        }
    }
}

impl SagaEngineBuilder {
    /// Runs every instance as a Saga global transaction of this TC client, and answers the TC's
    /// recovery requests on its `<applicationId>#<txServiceGroup>` resource.
    pub fn client(mut self, client: ferrata::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// `tenant_id` of the rows (Seata's default `000001`).
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = tenant_id.into();
        self
    }

    /// `app_name` of the definition rows (default: the client's application id, else `ferrata`).
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// Timeout of each Saga's global transaction (default 30 minutes, as Seata).
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Whether `start` creates missing tables (default true).
    pub fn create_tables(mut self, create: bool) -> Self {
        self.create_tables = create;
        self
    }

    /// Creates the tables if asked and registers the TC resource.
    pub async fn start(self) -> Result<SagaEngine, SagaError> {
        if self.create_tables {
            self.store.create_tables().await?;
        }
        let app_name = self.app_name.unwrap_or_else(|| {
            self.client
                .as_ref()
                .map(|c| c.config().application_id.clone())
                .unwrap_or_else(|| "ferrata".to_owned())
        });
        let engine = SagaEngine {
            inner: Arc::new(Inner {
                config: EngineConfig {
                    tenant_id: self.tenant_id,
                    app_name,
                    transaction_timeout: self.transaction_timeout,
                },
                store: self.store,
                client: self.client,
                machines: RwLock::new(HashMap::new()),
                services: RwLock::new(HashMap::new()),
                instance_locks: StdMutex::new(HashMap::new()),
            }),
        };
        if let Some(client) = &engine.inner.client {
            let config = client.config();
            let resource = format!("{}#{}", config.application_id, config.tx_service_group);
            client
                .register_resource(resource, tc::RecoveryHandler::new(&engine))
                .await?;
        }
        Ok(engine)
    }
}

impl SagaEngine {
    /// Registers a service method that ServiceTasks call by `ServiceName` and `ServiceMethod`.
    /// Its arguments are the evaluated `Input` list; its result is `#root` of `Output` and
    /// `Status`. It may be called again for the same step (Retry, forward recovery), so it
    /// should be idempotent.
    pub fn register_service<F, Fut>(&self, service_name: &str, method: &str, service: F)
    where
        F: Fn(Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ServiceError>> + Send + 'static,
    {
        let service: Service = Arc::new(move |args| Box::pin(service(args)));
        write(&self.inner.services).insert((service_name.to_owned(), method.to_owned()), service);
    }

    /// Registers a machine under its name, recording its JSON in the definitions table (a new
    /// row when the content changed). Instances already running keep the definition they
    /// started with.
    pub async fn register_machine(&self, machine: StateMachine) -> Result<(), SagaError> {
        machine.validate()?;
        // Document order kept: the first matching Status entry wins.
        let content = crate::json::to_json_string(&machine);
        let config = &self.inner.config;
        let store = &self.inner.store;
        let existing = store
            .latest_definition(&machine.name, &config.tenant_id, &config.app_name)
            .await?;
        let id = match existing {
            Some(row) if row.content == content => row.id,
            _ => {
                let row = DefinitionRecord {
                    id: new_id(),
                    name: machine.name.clone(),
                    tenant_id: config.tenant_id.clone(),
                    app_name: config.app_name.clone(),
                    version: machine.version.clone(),
                    comment: machine.comment.clone(),
                    recover_strategy: machine.recover_strategy.as_str().to_owned(),
                    content,
                };
                store.insert_definition(&row).await?;
                row.id
            }
        };
        write(&self.inner.machines).insert(machine.name.clone(), (id, Arc::new(machine)));
        Ok(())
    }

    /// Loads a machine from Seata's JSON and registers it.
    pub async fn register_json(&self, json: &str) -> Result<(), SagaError> {
        self.register_machine(crate::json::parse_state_machine(json)?)
            .await
    }

    /// Runs machine `name` from its start state with `params` as the context, to its end.
    /// With a TC client, the run is a global transaction reported at the end.
    pub async fn start(
        &self,
        name: &str,
        business_key: Option<&str>,
        params: Map<String, Value>,
    ) -> Result<SagaOutcome, SagaError> {
        run::start(self, name, business_key, params).await
    }

    /// Forward recovery: re-runs the failed or unknown state of instance `id` and continues.
    pub async fn forward(&self, id: &str) -> Result<SagaOutcome, SagaError> {
        run::forward(self, id).await
    }

    /// Compensates what instance `id` did, in reverse order.
    pub async fn compensate(&self, id: &str) -> Result<SagaOutcome, SagaError> {
        run::compensate(self, id).await
    }

    /// An instance as its rows say, with its states in execution order.
    pub async fn instance(
        &self,
        id: &str,
    ) -> Result<
        Option<(
            crate::store::MachineInstanceRecord,
            Vec<crate::store::StateInstanceRecord>,
        )>,
        SagaError,
    > {
        let Some(machine) = self.inner.store.machine(id).await? else {
            return Ok(None);
        };
        let states = self.inner.store.states(id).await?;
        Ok(Some((machine, states)))
    }

    /// A picture (SVG) of the registered machine `name`, for a console or a run-book.
    pub fn machine_svg(&self, name: &str) -> Option<String> {
        self.machine_by_name(name)
            .map(|(_, machine)| crate::svg::machine_svg(&machine))
    }

    /// A picture (SVG) of instance `id`: its machine as it started, with the states it ran
    /// (forward and compensation) coloured by how they ended.
    pub async fn instance_svg(&self, id: &str) -> Result<Option<String>, SagaError> {
        let Some((record, states)) = self.instance(id).await? else {
            return Ok(None);
        };
        let machine = run::definition_of(self, &record).await?;
        let path: Vec<crate::svg::PathStep> = states
            .iter()
            .map(|state| crate::svg::PathStep {
                state: state.name.clone(),
                status: state.status,
                compensation: state.compensated_for.is_some(),
            })
            .collect();
        Ok(Some(crate::svg::instance_svg(&machine, &path)))
    }

    pub(crate) fn service(&self, name: &str, method: &str) -> Option<Service> {
        read(&self.inner.services)
            .get(&(name.to_owned(), method.to_owned()))
            .cloned()
    }

    pub(crate) fn machine_by_name(&self, name: &str) -> Option<(String, Arc<StateMachine>)> {
        read(&self.inner.machines).get(name).cloned()
    }

    /// The lock that keeps two runs of one instance apart in this process.
    pub(crate) fn instance_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .instance_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds, so the map stays as small as the runs in flight.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(id.to_owned()).or_default().clone()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// A 32-character id, unique across processes: time, process id and a counter.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:016x}{:08x}{:08x}", std::process::id(), count as u32)
}
