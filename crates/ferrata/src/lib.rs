//! `ferrata`: the Rust SDK for Seata-protocol distributed transactions — a transaction manager
//! (begin/commit/rollback, scoped helper with Seata's propagation modes), a resource-manager
//! runtime ([`rm`]), task-local XID context ([`context`]) and XID propagation integrations.
//! TCC participants (with the `tcc_fence_log` fence) are the `ferrata-tcc` crate; the guide
//! (`docs/guide/sdk.md`) starts with one.
//!
//! ```no_run
//! use std::time::Duration;
//! use ferrata::{Client, ClientConfig, TransactionOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::builder("order-service")
//!     .tc_addresses(["127.0.0.1:8091"])
//!     .build()?;
//! let client = Client::connect(config).await?;
//! let order_id = client
//!     .in_global_transaction(TransactionOptions::new("create-order"), |tx| async move {
//!         // Calls made here carry tx.xid (task-local) to participants.
//!         println!("in {}", tx.xid);
//!         Ok::<_, std::io::Error>(42)
//!     })
//!     .await?;
//! # let _ = order_id;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod context;
pub mod error;
pub mod integrations;
pub mod rm;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tm;
mod transport;

use std::sync::Arc;

pub use config::{ClientConfig, ClientConfigBuilder, Credentials, RegistryConfig};
pub use error::{ConfigError, Error, Operation, Role};
pub use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode};
/// The registry backends' settings ([`registry::EtcdConfig`], ...) and lookups
/// ([`registry::Discovery`]), for [`ClientConfigBuilder::registry`].
pub use ferrata_registry as registry;
pub use rm::{
    BranchHandler, BranchRegistration, BranchReport, BranchRequest, LockQuery, UndoLogDelete,
};
pub use tm::{
    GlobalTransaction, Propagation, TransactionError, TransactionOptions, TxInfo, TxRole,
};
pub use transport::TransportStats;

/// The `reqwest` (0.13) the `reqwest` integration is built against.
#[cfg(feature = "reqwest")]
pub use reqwest;
/// The `reqwest-middleware` (0.5) [`integrations::reqwest::XidPropagation`] plugs into: build
/// the HTTP client with this one (or the same minor version), since two versions make two
/// incompatible middleware traits.
#[cfg(feature = "reqwest")]
pub use reqwest_middleware;

use ferrata_proto::{Message, ResultInfo};
use tokio::sync::watch;

use crate::rm::RmRuntime;
use crate::transport::{Pool, Settings, Stats};

/// A connection to a TC cluster acting as both TM and RM (on separate connections, as Java
/// does). Cheap to clone; the connections close when the last clone is dropped or on
/// [`Client::shutdown`].
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) tm: Arc<Pool>,
    pub(crate) rm: Arc<Pool>,
    pub(crate) rm_runtime: Arc<RmRuntime>,
    stats: Arc<Stats>,
    /// Dropping it (with the last client) stops every connection supervisor.
    shutdown: watch::Sender<bool>,
}

impl Client {
    /// Connects to the TC addresses of the configured group and registers as TM and RM.
    /// Fails fast with [`Error::Unreachable`] when no address accepts a connection, or
    /// [`Error::RegistrationRejected`] when the TC refuses the client. Afterwards, connections
    /// that drop are re-established in the background.
    ///
    /// With registries configured ([`ClientConfig::registries`]), the addresses are those the
    /// registries list for the group's cluster, asked again every
    /// [`ClientConfig::registry_refresh`]: TCs that appear are connected, TCs that are no longer
    /// listed are dropped, and requests go to any connected TC when the one they would use died.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let (discovery, addresses) = if config.discovers() {
            let (discovery, cluster, addresses) = discover(&config).await?;
            (Some((discovery, cluster)), addresses)
        } else {
            (None, config.tc_addresses()?.1)
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let rm_runtime = Arc::new(RmRuntime::new(config.handler_concurrency.max(1)));
        let tm = Pool::start(
            &addresses,
            Settings::new(&config, Role::Tm),
            stats.clone(),
            None,
            &shutdown_rx,
        );
        let rm = Pool::start(
            &addresses,
            Settings::new(&config, Role::Rm),
            stats.clone(),
            Some(rm_runtime.clone()),
            &shutdown_rx,
        );
        let client = Client {
            inner: Arc::new(Inner {
                config,
                tm,
                rm,
                rm_runtime,
                stats,
                shutdown,
            }),
        };
        if let Some((discovery, cluster)) = discovery {
            tokio::spawn(follow_registries(
                discovery,
                cluster,
                client.inner.config.registry_refresh,
                [
                    Arc::downgrade(&client.inner.tm),
                    Arc::downgrade(&client.inner.rm),
                ],
                shutdown_rx,
            ));
        }
        client.inner.tm.pick(None).await?;
        client.inner.rm.pick(None).await?;
        Ok(client)
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Closes every TC connection now; later calls fail with [`Error::Shutdown`].
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// Counters of frames sent, merged batches, heartbeats and reconnects.
    pub fn transport_stats(&self) -> TransportStats {
        self.inner.stats.snapshot()
    }

    pub(crate) async fn tm_call(
        &self,
        operation: Operation,
        xid: Option<&str>,
        message: Message,
    ) -> Result<Message, Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Shutdown);
        }
        self.inner.tm.call(operation, xid, message).await
    }

    pub(crate) async fn rm_call(
        &self,
        operation: Operation,
        xid: Option<&str>,
        message: Message,
    ) -> Result<Message, Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Shutdown);
        }
        self.inner.rm.call(operation, xid, message).await
    }
}

/// The registries of `config`, the group's cluster and the TCs they list for it now.
async fn discover(
    config: &ClientConfig,
) -> Result<(ferrata_registry::Discovery, String, Vec<String>), Error> {
    let cluster = config.cluster()?;
    let discovery = ferrata_registry::Discovery::connect(&config.registries).map_err(|error| {
        Error::Config(ConfigError::Registry {
            reason: error.to_string(),
        })
    })?;
    let unreachable = |reason: String| Error::Unreachable {
        role: Role::Tm,
        addresses: format!("cluster {cluster:?} in {}", discovery.kinds().join(", ")),
        reason,
    };
    let addresses = discovery
        .lookup(&cluster)
        .await
        .map_err(|error| unreachable(format!("no registry answered: {error}")))?;
    if addresses.is_empty() {
        return Err(unreachable("the registries list no TC for it".to_owned()));
    }
    Ok((discovery, cluster, addresses))
}

/// Asks the registries for `cluster`'s TCs every `every` and updates both pools, until shutdown.
async fn follow_registries(
    discovery: ferrata_registry::Discovery,
    cluster: String,
    every: std::time::Duration,
    pools: [std::sync::Weak<Pool>; 2],
    mut shutdown: watch::Receiver<bool>,
) {
    let every = every.max(std::time::Duration::from_millis(10));
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match discovery.lookup(&cluster).await {
            Ok(addresses) if !addresses.is_empty() => {
                failing = false;
                for pool in &pools {
                    match pool.upgrade() {
                        Some(pool) => pool.set_addresses(&addresses),
                        None => return,
                    }
                }
            }
            Ok(_) => tracing::debug!(%cluster, "the registries list no TC; keeping the known ones"),
            Err(error) => {
                if !failing {
                    tracing::warn!(%cluster, %error, "registry lookup failed; keeping the known TCs");
                }
                failing = true;
            }
        }
    }
}

/// Turns a response's result block into `Result`.
pub(crate) trait ResultExt {
    fn into_result(self, operation: Operation) -> Result<(), Error>;
}

impl ResultExt for ResultInfo {
    fn into_result(self, operation: Operation) -> Result<(), Error> {
        if self.is_success() {
            Ok(())
        } else {
            Err(Error::from_result(operation, self.exception_code, self.msg))
        }
    }
}

pub(crate) fn unexpected(operation: Operation, message: &Message) -> Error {
    Error::Protocol {
        operation,
        detail: format!("got a {}", message.name()),
    }
}
