//! `ferrata-server`: the TC runtime. It recovers the coordinator from the embedded store,
//! accepts Seata clients, and runs until asked to shut down.

pub mod auth;
pub mod config;
pub mod connection;
pub mod discovery;
pub mod engine;
pub mod phase2;
pub mod registry;
pub mod response;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use ferrata_core::Coordinator;
use ferrata_store::{
    FileSystem, LogStore, LogStoreConfig, OsFileSystem, Preallocation, RepairReport,
};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

pub use config::{Cli, Config, ConfigError};

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
    let (store, table) =
        LogStore::open_with(store_config(&config), file_system).with_context(|| {
            format!(
                "cannot open the session store in {}",
                config.store.data_dir.display()
            )
        })?;
    let recovered = table.len();
    let xid_prefix = format!("{}:{}", config.xid_host(bound), bound.port());
    let coordinator = Coordinator::recover(
        config.coordinator_config(xid_prefix),
        table,
        engine::now_ms(),
    );
    let registry = Arc::new(Registry::default());
    let (engine_handle, commands) = engine::channel(engine::COMMAND_QUEUE_CAPACITY);
    let phase2 = Phase2Sender::start(
        registry.clone(),
        engine_handle.clone(),
        tokio::runtime::Handle::current(),
        config.coordinator.branch_request_timeout,
    );
    let (fatal_tx, mut fatal_rx) = watch::channel(None::<String>);
    let threads = engine::start(
        coordinator,
        Box::new(store),
        commands,
        phase2,
        Box::new(move |message| {
            let _ = fatal_tx.send(Some(message));
        }),
    )
    .context("cannot start engine threads")?;
    tracing::info!(
        listen = %bound,
        data_dir = %config.store.data_dir.display(),
        recovered_sessions = recovered,
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
    drop(listener);
    // Out of the registries first, so that clients pick another TC for new transactions.
    discovery::stop(registration, &shared.config).await;
    drop(tls_listener);
    engine_handle.submit(engine::CoreCommand::Shutdown).await;
    let joined = tokio::task::spawn_blocking(move || threads.join())
        .await
        .context("engine join task failed")?;
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
