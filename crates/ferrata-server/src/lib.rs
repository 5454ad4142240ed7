//! `ferrata-server`: the TC runtime. It recovers the coordinator from its store (the embedded
//! log, or a database in Seata's db-mode schema), accepts Seata clients, and runs until asked
//! to shut down.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod engine;
pub mod meters;
pub mod peers;
pub mod phase2;
mod refusals;
pub mod registry;
pub mod response;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use ferrata_core::{Coordinator, SessionTable};
use ferrata_store::{
    FileSystem, LogStore, LogStoreConfig, OsFileSystem, Preallocation, RepairReport, SessionStore,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

pub use config::{Cli, CliCommand, Config, ConfigError};

use crate::connection::Shared;
use crate::phase2::Phase2Sender;
use crate::registry::Registry;

/// Serves clients on `listener` until `shutdown` completes or the store fails; then stops
/// accepting, lets the engine make every accepted change durable, and closes connections.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with_file_system(listener, config, Arc::new(OsFileSystem), shutdown).await
}

/// [`run`] with the session log on `file_system` (tests use a fault-injecting one).
pub async fn run_with_file_system(
    listener: TcpListener,
    config: Config,
    file_system: Arc<dyn FileSystem>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let bound = listener
        .local_addr()
        .context("listener has no local address")?;
    let started = std::time::Instant::now();
    // Bound before recovery, so that readiness says "recovering" meanwhile.
    let admin_listener = match config.admin.enabled {
        true => Some(admin::bind(config.admin.listen).await?),
        false => None,
    };
    let admin_bound = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let xid_prefix = format!("{}:{}", config.xid_host(bound), bound.port());
    let admin_state = admin::AdminState::new(
        admin::operators::Operators::new(&config.admin.tokens)?,
        admin::ServerInfo {
            node: xid_prefix.clone(),
            listen: bound.to_string(),
            admin_listen: admin_bound.map(|a| a.to_string()),
            store: store_name(&config),
            started_at_ms: engine::now_ms(),
            saga_pictures: config
                .admin
                .saga_pictures
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_owned()),
            saga_pictures_origin: config.admin.saga_pictures_origin().map(str::to_owned),
        },
    );
    let _admin_tasks = admin_listener.map(|listener| {
        [
            admin::serve(listener, admin_state.clone()),
            admin::keep_meters(),
        ]
        .map(tokio_util::task::AbortOnDropHandle::new)
    });
    auth::warn_if_open(&config.auth, "server.listen", bound);
    let tls_listener = match &config.tls {
        Some(tls) => {
            let acceptor = tls::acceptor(tls)?;
            let listener = TcpListener::bind(tls.listen)
                .await
                .with_context(|| format!("cannot listen for TLS on {}", tls.listen))?;
            let tls_bound = listener
                .local_addr()
                .context("TLS listener has no address")?;
            auth::warn_if_open(&config.auth, "tls.listen", tls_bound);
            tracing::info!(tls_listen = %tls_bound, mutual = tls.client_ca.is_some(), "TLS listener bound");
            Some((listener, acceptor))
        }
        None => None,
    };
    let Opened {
        store,
        table,
        first_ids,
        leases,
    } = open_store(&config, file_system, &xid_prefix).await?;
    let recovered = table.len();
    let coordinator_config = config.coordinator_config(xid_prefix);
    let sharing = coordinator_config.store_sharing;
    let mut coordinator = Coordinator::recover(coordinator_config, table, engine::now_ms());
    let recovered_locks = coordinator.stats().locked_rows;
    if let Some(range) = first_ids {
        coordinator.add_id_range(range);
    }
    let registry = Arc::new(Registry::default());
    let (engine_handle, commands) = engine::channel(engine::COMMAND_QUEUE_CAPACITY);
    let phase2 = Phase2Sender::start(
        registry.clone(),
        engine_handle.clone(),
        tokio::runtime::Handle::current(),
        config.coordinator.branch_request_timeout,
    );
    let (fatal_tx, mut fatal_rx) = watch::channel(None::<String>);
    let fatal_tx = Arc::new(fatal_tx);
    let on_fatal = |fatal_tx: Arc<watch::Sender<Option<String>>>| {
        move |message: String| {
            tracing::error!("{message}");
            let _ = fatal_tx.send(Some(message));
        }
    };
    let threads = engine::start(
        coordinator,
        store,
        sharing,
        commands,
        phase2.clone(),
        Box::new(on_fatal(fatal_tx.clone())),
    )
    .context("cannot start engine threads")?;
    let (lease_keeper, peers) = match leases {
        Some(ClusterStores {
            node,
            peers: known_peers,
            leases,
            checks,
            admin_reads,
        }) => {
            let drivers = Arc::new(cluster::Drivers::new(node.prefix.clone(), known_peers));
            admin_state.cluster(admin_reads, drivers.clone());
            let (keeper, first_pass) = cluster::LeaseKeeper::start(
                leases,
                node,
                engine_handle.clone(),
                drivers.clone(),
                Arc::new(on_fatal(fatal_tx)),
            )
            .context("cannot start the lease keeper thread")?;
            // Transactions no live node drives (a lapsed node's, or a seata-server's that this
            // database held) are adopted before the first request is served.
            let _ = first_pass.await;
            let signing = config
                .auth
                .enabled
                .then(|| {
                    config
                        .auth
                        .keys
                        .iter()
                        .find(|key| key.application_id == peers::PEER_APPLICATION_ID)
                        .map(|key| (key.access_key.clone(), key.secret_key.clone()))
                })
                .flatten();
            if config.auth.enabled && signing.is_none() {
                tracing::warn!(
                    "[auth] has no access key for application {}: other nodes refuse this \
                     node's links, so requests it would forward fail",
                    peers::PEER_APPLICATION_ID
                );
            }
            let peers = peers::Peers::new(
                drivers,
                checks,
                phase2.clone(),
                config.server.reported_version.clone(),
                signing,
                config.coordinator.branch_request_timeout,
                config.limits.max_frame_bytes,
            );
            let peers = Arc::new(peers);
            phase2.set_peers(&peers);
            (Some(keeper), Some(peers))
        }
        None => (None, None),
    };
    admin_state.serving(engine_handle.clone(), registry.clone());
    tracing::info!(
        listen = %bound,
        admin_listen = %admin_bound.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        store = %store_name(&config),
        recovered_sessions = recovered,
        recovered_locks,
        startup_ms = started.elapsed().as_millis() as u64,
        "ferrata-server ready"
    );
    let registration = discovery::start(&config, bound)?;
    let shared = Arc::new(Shared {
        auth: auth::Authenticator::new(&config.auth),
        registry,
        engine: engine_handle.clone(),
        next_conn_id: AtomicU64::new(1),
        config,
        peers,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(shared.config.limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let failure = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            _ = fatal_rx.changed() => break fatal_rx.borrow().clone(),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let Some(permit) = connection_slot(&slots, peer, shared.config.limits.max_connections) else {
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                let stop = stop_rx.clone();
                // serve() runs in the connection's own span (id and peer).
                connections.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let (reader, writer) = stream.into_split();
                    connection::serve(reader, writer, peer, shared, stop).await;
                    drop(permit);
                });
            }
            accepted = accept_tls(tls_listener.as_ref()) => {
                let (stream, peer, acceptor) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "TLS accept failed");
                        continue;
                    }
                };
                let Some(permit) = connection_slot(&slots, peer, shared.config.limits.max_connections) else {
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                let stop = stop_rx.clone();
                let span = tracing::info_span!("tls", %peer);
                connections.spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        // The handshake runs in the connection's task, bounded like a silent client.
                        let idle = shared.config.limits.idle_timeout;
                        match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let (reader, writer) = tokio::io::split(tls);
                                connection::serve(reader, writer, peer, shared, stop).await;
                            }
                            Ok(Err(error)) => tracing::warn!(%peer, %error, "TLS handshake failed; closing"),
                            Err(_) => tracing::warn!(%peer, "TLS handshake timed out; closing"),
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    };
    tracing::info!("shutting down: no new connections; flushing the log");
    admin_state.stopping();
    drop(listener);
    let stopping = async {
        // Out of the registries first, so that clients pick another TC for new transactions.
        discovery::stop(registration, &shared.config).await;
        drop(tls_listener);
        engine_handle.submit(engine::CoreCommand::Shutdown).await;
        tokio::task::spawn_blocking(move || {
            let joined = threads.join();
            // Everything accepted is durable: other nodes may adopt what is left at once.
            if let Some(keeper) = lease_keeper {
                keeper.stop();
            }
            joined
        })
        .await
    };
    let joined = match &failure {
        None => stopping.await.context("engine join task failed")?,
        // After a failure the store may never answer again (a database cut off) and the engine
        // may be stuck waiting for it: nothing more is acknowledged either way, so stop
        // without it.
        Some(message) => match tokio::time::timeout(FATAL_STOP_WAIT, stopping).await {
            Ok(joined) => joined.context("engine join task failed")?,
            Err(_) => anyhow::bail!(
                "{message} (stopped without waiting for the store, which did not answer within \
                 {FATAL_STOP_WAIT:?})"
            ),
        },
    };
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    if let Some(message) = failure {
        anyhow::bail!(message);
    }
    joined.map_err(anyhow::Error::msg)?;
    tracing::info!("ferrata-server stopped");
    Ok(())
}

/// After a fatal error, how long stopping waits for the engine to flush before giving up.
const FATAL_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The next connection on the TLS listener, if there is one (else never ready).
async fn accept_tls(
    tls: Option<&(TcpListener, tokio_rustls::TlsAcceptor)>,
) -> std::io::Result<(
    tokio::net::TcpStream,
    std::net::SocketAddr,
    tokio_rustls::TlsAcceptor,
)> {
    match tls {
        Some((listener, acceptor)) => {
            let (stream, peer) = listener.accept().await?;
            Ok((stream, peer, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

/// Where the sessions live, for logs: the data directory or the database (no password).
fn store_name(config: &Config) -> String {
    match &config.store.url {
        Some(url) => config::redact_password(url),
        None => config.store.data_dir.display().to_string(),
    }
}

/// An opened store with what it recovered.
struct Opened {
    store: Box<dyn SessionStore>,
    table: SessionTable,
    /// The first id range, for a store that hands out ids (a shared database).
    first_ids: Option<std::ops::Range<i64>>,
    /// On a shared database: this node, whose lease was taken, and handles on the database for
    /// the lease keeper and for checking what other nodes ask of this one.
    leases: Option<ClusterStores>,
}

/// What a node on a shared database needs besides its store.
struct ClusterStores {
    node: cluster::Node,
    /// The other nodes announced when this one started.
    peers: Vec<String>,
    leases: Box<dyn SessionStore>,
    checks: Box<dyn SessionStore>,
    /// Reads of the whole cluster's transactions for the admin API.
    admin_reads: Box<dyn SessionStore>,
}

/// Opens the configured store and recovers the sessions it holds.
async fn open_store(
    config: &Config,
    file_system: Arc<dyn FileSystem>,
    xid_prefix: &str,
) -> anyhow::Result<Opened> {
    let Some(url) = &config.store.url else {
        let (store, table) =
            LogStore::open_with(store_config(config), file_system).with_context(|| {
                format!(
                    "cannot open the session store in {}",
                    config.store.data_dir.display()
                )
            })?;
        return Ok(Opened {
            store: Box::new(store),
            table,
            first_ids: None,
            leases: None,
        });
    };
    open_database_store(config, url.clone(), xid_prefix).await
}

#[cfg(feature = "database")]
async fn open_database_store(
    config: &Config,
    url: String,
    xid_prefix: &str,
) -> anyhow::Result<Opened> {
    let mut sql = ferrata_store_sql::SqlStoreConfig::new(url);
    // Other nodes drive their own transactions: recover only this node's.
    sql.xid_prefix = Some(xid_prefix.to_owned());
    sql.schema = config.store.schema.clone();
    sql.max_connections = config.store.database_connections;
    sql.rollback_retry_timeout_unlock = config.coordinator.rollback_retry_timeout_unlock;
    // A node cut off mid-transaction holds row locks until the database ends its session:
    // no longer than its lease, after which another node takes its transactions over.
    sql.abandoned_transaction_timeout =
        Some(std::time::Duration::from_millis(config.store.node_lease_ms));
    let lease_sql = ferrata_store_sql::SqlStoreConfig {
        max_connections: 2,
        recover: false,
        ..sql.clone()
    };
    let node = cluster::Node::new(
        xid_prefix.to_owned(),
        i64::try_from(config.store.node_lease_ms).unwrap_or(i64::MAX),
    );
    let name = store_name(config);
    // The store runs its own runtime: open (and later drop) it off this one.
    tokio::task::spawn_blocking(move || {
        let (mut lease_store, _) = ferrata_store_sql::open(lease_sql.clone())
            .with_context(|| format!("cannot open the session store at {name}"))?;
        let (check_store, _) = ferrata_store_sql::open(lease_sql.clone())
            .with_context(|| format!("cannot open the session store at {name}"))?;
        let (admin_reads, _) = ferrata_store_sql::open(lease_sql)
            .with_context(|| format!("cannot open the session store at {name}"))?;
        let peers = check_store
            .nodes()
            .with_context(|| format!("cannot read the nodes of the session store at {name}"))?;
        // Before recovering: a node that adopted this one's transactions must let go first.
        cluster::claim(lease_store.as_mut(), &node)?;
        let (mut store, table) = ferrata_store_sql::open(sql)
            .with_context(|| format!("cannot open the session store at {name}"))?;
        let first_ids = store
            .reserve_ids(ferrata_core::id::STORE_RANGE_IDS)
            .with_context(|| format!("cannot reserve ids in the session store at {name}"))?;
        Ok(Opened {
            store,
            table,
            first_ids: Some(first_ids),
            leases: Some(ClusterStores {
                peers: peers
                    .into_iter()
                    .filter(|peer| *peer != node.prefix)
                    .collect(),
                node,
                leases: lease_store,
                checks: check_store,
                admin_reads,
            }),
        })
    })
    .await
    .context("the database store's opening thread failed")?
}

#[cfg(not(feature = "database"))]
async fn open_database_store(
    _config: &Config,
    _url: String,
    _xid_prefix: &str,
) -> anyhow::Result<Opened> {
    anyhow::bail!(
        "store.url is set but this ferrata-server was built without the `database` feature; \
         rebuild with it (it is on by default) or leave store.url unset"
    )
}

fn store_config(config: &Config) -> LogStoreConfig {
    LogStoreConfig {
        dir: config.store.data_dir.clone(),
        segment_bytes: config.store.segment_bytes,
        compact_after_bytes: config.store.compact_after_bytes,
        fsync: config.store.fsync,
        preallocation: if config.store.preallocate {
            Preallocation::Background
        } else {
            Preallocation::Off
        },
        rollback_retry_timeout_unlock: config.coordinator.rollback_retry_timeout_unlock,
    }
}

/// `ferrata-server --repair`: salvages what it can from a session log that refuses to open
/// (damage before its tail), moving the damaged files aside; the server must be stopped.
pub fn repair(config: &Config) -> anyhow::Result<RepairReport> {
    LogStore::repair(store_config(config)).with_context(|| {
        format!(
            "cannot repair the session store in {}",
            config.store.data_dir.display()
        )
    })
}

/// `ferrata-server check-config`: what [`Config::load`] validated, plus what only the files
/// can tell (TLS certificates and keys, a data directory this user can write); a summary of
/// where the server would listen and store.
pub fn check_config(config: &Config) -> anyhow::Result<String> {
    if let Some(tls) = &config.tls {
        tls::acceptor(tls).context("tls: the certificate or key cannot be used")?;
    }
    if config.store.url.is_none() {
        let dir = &config.store.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("store.data_dir: cannot create {}", dir.display()))?;
        let probe = dir.join(".ferrata-check-config");
        std::fs::write(&probe, b"")
            .with_context(|| format!("store.data_dir: cannot write in {}", dir.display()))?;
        let _ = std::fs::remove_file(probe);
    }
    let admin = if config.admin.enabled {
        config.admin.listen.to_string()
    } else {
        "off".to_owned()
    };
    Ok(format!(
        "configuration OK: listen {}, store {}, admin {admin}{}",
        config.server.listen,
        store_name(config),
        config
            .tls
            .as_ref()
            .map_or_else(String::new, |tls| format!(", TLS {}", tls.listen)),
    ))
}

/// A place among the `limit` connections served at once, or `None` (logged) when all are taken.
fn connection_slot(
    slots: &Arc<Semaphore>,
    peer: std::net::SocketAddr,
    limit: usize,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let slot = slots.clone().try_acquire_owned().ok();
    if slot.is_none() {
        tracing::warn!(%peer, limit, "connection limit reached; refusing");
    }
    slot
}

/// Binds the configured address and serves until SIGINT or SIGTERM.
pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    run(listener, config, shutdown_signal()).await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
