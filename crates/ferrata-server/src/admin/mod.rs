//! The admin HTTP listener (axum; loopback by default, its own port): Prometheus metrics, the
//! liveness and readiness probes, the admin API and the web console. It is bound before recovery, so readiness can say
//! "recovering" while the store is read.

mod api;
mod console;
mod metrics;
pub mod operators;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::engine::EngineHandle;
use crate::registry::Registry;

/// How long a scrape waits for the core thread's counts.
const CORE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often recorded latency samples are folded into their histograms.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// What the admin endpoints read; the engine's parts arrive once recovery is done.
#[derive(Debug)]
pub struct AdminState {
    ready: AtomicBool,
    serving: OnceLock<Serving>,
    /// When Seata's summaries and timers were last read (they cover the time since).
    last_scrape: Mutex<Instant>,
    operators: operators::Operators,
    info: ServerInfo,
    /// On a shared database: the whole cluster's transactions, and who drives them.
    cluster: OnceLock<ClusterView>,
}

/// What the cluster endpoints read.
#[derive(Debug)]
pub struct ClusterView {
    store: Mutex<crate::cluster::DetachedStore>,
    drivers: Arc<crate::cluster::Drivers>,
}

/// What `/api/v1/server` says of this node besides its live counts.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// The XID prefix (`host:port`) naming this node.
    pub node: String,
    pub listen: String,
    pub admin_listen: Option<String>,
    /// The data directory or the database (no password).
    pub store: String,
    pub started_at_ms: i64,
    /// `admin.saga_pictures`: where the console finds pictures of saga instances.
    pub saga_pictures: Option<String>,
    /// Its origin, allowed as an image source by the console's content security policy.
    pub saga_pictures_origin: Option<String>,
}

#[derive(Debug)]
struct Serving {
    engine: EngineHandle,
    registry: Arc<Registry>,
}

impl AdminState {
    pub fn new(operators: operators::Operators, info: ServerInfo) -> Arc<AdminState> {
        Arc::new(AdminState {
            ready: AtomicBool::new(false),
            serving: OnceLock::new(),
            last_scrape: Mutex::new(Instant::now()),
            operators,
            info,
            cluster: OnceLock::new(),
        })
    }

    /// A node of a cluster: the cluster endpoints read `store` (the shared database).
    pub fn cluster(
        &self,
        store: Box<dyn ferrata_store::SessionStore>,
        drivers: Arc<crate::cluster::Drivers>,
    ) {
        let _ = self.cluster.set(ClusterView {
            store: Mutex::new(crate::cluster::DetachedStore::new(store)),
            drivers,
        });
    }

    /// Recovery is done and clients are served: ready from now on.
    pub fn serving(&self, engine: EngineHandle, registry: Arc<Registry>) {
        let _ = self.serving.set(Serving { engine, registry });
        self.ready.store(true, Ordering::Release);
    }

    /// Shutting down: no longer ready (load balancers and probes stop sending clients).
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::Release);
    }
}

/// Binds the admin listener, or says clearly why it cannot.
pub async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen for the admin API (metrics, health) on {address}: {error}; set \
             admin.listen (FERRATA_ADMIN__LISTEN, --admin-listen) to a free address, port 0 for \
             any, or admin.enabled = false"
        )
    })
}

/// Serves the admin endpoints on `listener` until the returned task is aborted.
pub fn serve(listener: TcpListener, state: Arc<AdminState>) -> tokio::task::JoinHandle<()> {
    let router = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(scrape))
        .merge(api::routes())
        .merge(console::routes())
        .with_state(state);
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, service).await {
            tracing::error!(%error, "the admin listener stopped");
        }
    })
}

/// Folds latency samples into histograms now and then, whether or not anyone scrapes.
pub fn keep_meters() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut every = tokio::time::interval(UPKEEP_PERIOD);
        loop {
            every.tick().await;
            crate::meters::meters().run_upkeep();
        }
    })
}

async fn live() -> &'static str {
    "live\n"
}

async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else if state.serving.get().is_none() {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    }
}

async fn scrape(State(state): State<Arc<AdminState>>) -> Response {
    let Some(serving) = state.serving.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "recovering\n").into_response();
    };
    // Read before this scrape's own command takes a place.
    let command_queue_depth = serving.engine.queued();
    let (answer, counts) = tokio::sync::oneshot::channel();
    let asked = serving
        .engine
        .submit(crate::engine::CoreCommand::Metrics(answer))
        .await;
    let snapshot = match tokio::time::timeout(CORE_ANSWER_TIMEOUT, counts).await {
        Ok(Ok(snapshot)) if asked => snapshot,
        _ => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the core thread did not answer (stopping or overloaded)\n",
            )
                .into_response();
        }
    };
    let window = {
        let mut last = state.last_scrape.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        std::mem::replace(&mut *last, now).elapsed()
    };
    let gauges = metrics::Gauges {
        command_queue_depth,
        connections: serving.registry.connections_by_role(),
    };
    let mut text = metrics::render(&snapshot, &gauges, window);
    text.push_str(&crate::meters::meters().render());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn readiness(state: &Arc<AdminState>) -> (StatusCode, String) {
        let response = ready(State(state.clone())).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_only_between_recovery_and_shutdown() {
        let state = AdminState::new(operators::Operators::default(), ServerInfo::default());
        assert_eq!(
            readiness(&state).await,
            (StatusCode::SERVICE_UNAVAILABLE, "recovering\n".to_owned())
        );
        let (engine, _commands) = crate::engine::channel(4);
        state.serving(engine, Arc::new(Registry::default()));
        assert_eq!(
            readiness(&state).await,
            (StatusCode::OK, "ready\n".to_owned())
        );
        state.stopping();
        assert_eq!(
            readiness(&state).await,
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_owned())
        );
    }
}
