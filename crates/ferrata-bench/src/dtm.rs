//! The dtm-saga workload: sagas submitted to a DTM server (v1.19 HTTP API: `GET
//! /api/dtmsvr/newGid`, `POST /api/dtmsvr/submit`) whose two steps are no-op endpoints served by
//! the generator itself, so a transaction ends when DTM has called both actions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::routing::any;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::schedule::Pacer;
use crate::stats::{Recorder, Stats, Window, kind};

/// Saga steps per transaction (each an action with its compensation).
pub const STEPS: u32 = 2;
/// What a DTM branch answers for success (status 200 and no FAILURE/ONGOING in the body).
const SUCCESS_BODY: &str = r#"{"dtm_result":"SUCCESS"}"#;

#[derive(Debug, Clone)]
pub struct DtmConfig {
    /// The DTM server's base URL, e.g. `http://127.0.0.1:36789`.
    pub dtm_url: String,
    /// Concurrent submitters (closed loop) or lanes (open loop), one HTTP connection each.
    pub connections: usize,
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    /// Ask DTM to answer the submit only after the saga finished (`wait_result`).
    pub wait_result: bool,
    /// Address for the branch endpoints (port 0: any).
    pub branch_listen: SocketAddr,
}

/// `http://host:port` split into what a connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmEndpoint {
    pub authority: String,
    pub host: String,
    pub port: u16,
}

/// Parses the DTM base URL; only plain HTTP without a path is accepted.
pub fn parse_dtm_url(url: &str) -> anyhow::Result<DtmEndpoint> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad DTM URL {url}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("DTM URL must start with http:// (got {url})");
    }
    if !matches!(uri.path(), "" | "/") {
        bail!("DTM URL must not have a path (the API is under /api/dtmsvr): {url}");
    }
    let authority = uri
        .authority()
        .with_context(|| format!("DTM URL has no host: {url}"))?;
    Ok(DtmEndpoint {
        authority: authority.to_string(),
        host: authority.host().trim_matches(['[', ']']).to_owned(),
        port: authority.port_u16().unwrap_or(80),
    })
}

/// The body of `POST /api/dtmsvr/submit` for a saga of [`STEPS`] steps against `branches`.
pub fn submit_body(gid: &str, branches: &str, wait_result: bool) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = (0..STEPS)
        .map(|_| {
            serde_json::json!({
                "action": format!("{branches}/saga/action"),
                "compensate": format!("{branches}/saga/compensate"),
            })
        })
        .collect();
    // DTM indexes payloads by step, so there must be one per step; a non-empty payload also
    // makes DTM call the branches with POST.
    let payloads: Vec<String> = (0..STEPS).map(|_| r#"{"amount":30}"#.to_owned()).collect();
    serde_json::json!({
        "gid": gid,
        "trans_type": "saga",
        "steps": steps,
        "payloads": payloads,
        "protocol": "http",
        "wait_result": wait_result,
    })
}

/// Pulls the gid out of a `newGid` answer (`{"gid": "...", "dtm_result": "SUCCESS"}`).
pub fn parse_new_gid(body: &[u8]) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct NewGid {
        gid: String,
    }
    let parsed: NewGid = serde_json::from_slice(body).context("newGid answer is not JSON")?;
    if parsed.gid.is_empty() {
        bail!("newGid returned an empty gid");
    }
    Ok(parsed.gid)
}

/// Which sagas wait for their branches, shared by the submitters and the branch endpoints.
#[derive(Debug, Default)]
pub struct Tracker {
    waiting: Mutex<HashMap<String, Waiter>>,
    pub compensations: AtomicU64,
    pub actions: AtomicU64,
}

#[derive(Debug)]
struct Waiter {
    remaining: u32,
    done: oneshot::Sender<Instant>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts waiting for `steps` action calls of `gid`; the receiver gets the time of the last.
    pub fn expect(&self, gid: &str, steps: u32) -> oneshot::Receiver<Instant> {
        let (done, rx) = oneshot::channel();
        self.lock().insert(
            gid.to_owned(),
            Waiter {
                remaining: steps,
                done,
            },
        );
        rx
    }

    pub fn forget(&self, gid: &str) {
        self.lock().remove(gid);
    }

    /// An action endpoint was called for `gid` at `at`.
    pub fn action(&self, gid: &str, at: Instant) {
        self.actions.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.lock();
        let finished = match waiting.get_mut(gid) {
            Some(waiter) => {
                waiter.remaining = waiter.remaining.saturating_sub(1);
                waiter.remaining == 0
            }
            // A retry after we stopped waiting, or another client's saga.
            None => false,
        };
        if finished && let Some(waiter) = waiting.remove(gid) {
            let _ = waiter.done.send(at);
        }
    }
}

#[derive(Debug, Deserialize)]
struct BranchQuery {
    #[serde(default)]
    gid: String,
}

async fn action(
    State(tracker): State<Arc<Tracker>>,
    Query(query): Query<BranchQuery>,
    _body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    tracker.action(&query.gid, Instant::now());
    ([(header::CONTENT_TYPE, "application/json")], SUCCESS_BODY)
}

async fn compensate(
    State(tracker): State<Arc<Tracker>>,
    _body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    tracker.compensations.fetch_add(1, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "application/json")], SUCCESS_BODY)
}

/// Serves the saga branches on `listener` (`/saga/action`, `/saga/compensate`, any method).
pub fn branch_router(tracker: Arc<Tracker>) -> Router {
    Router::new()
        .route("/saga/action", any(action))
        .route("/saga/compensate", any(compensate))
        .with_state(tracker)
}

/// One keep-alive HTTP/1.1 connection to DTM, reopened when it breaks.
#[derive(Debug)]
pub struct HttpClient {
    addr: SocketAddr,
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpClient {
    pub fn new(addr: SocketAddr, authority: String) -> HttpClient {
        HttpClient {
            addr,
            authority,
            sender: None,
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = self.try_request(method, path, body).await;
        if result.is_err() {
            // The connection's state is unknown: start afresh next time.
            self.sender = None;
        }
        result
    }

    async fn try_request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("cannot connect to DTM at {}", self.addr))?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                self.sender.insert(sender)
            }
        };
        sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Runs the dtm-saga workload.
pub async fn run(config: DtmConfig) -> anyhow::Result<Stats> {
    let endpoint = parse_dtm_url(&config.dtm_url)?;
    let dtm_addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
        .await
        .with_context(|| format!("cannot resolve {}", endpoint.host))?
        .next()
        .with_context(|| format!("{} resolves to nothing", endpoint.host))?;
    if !dtm_addr.ip().is_loopback() {
        bail!("the DTM server must be on this machine (loopback), got {dtm_addr}");
    }
    let tracker = Arc::new(Tracker::default());
    let listener = TcpListener::bind(config.branch_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.branch_listen))?;
    let branches = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, branch_router(tracker.clone())).into_future());

    let lanes = config.connections.max(1);
    let origin = Instant::now();
    let window = Window::new(origin, config.warmup, config.duration);
    let config = Arc::new(config);
    let mut workers = JoinSet::new();
    for lane in 0..lanes {
        let worker = Worker {
            client: HttpClient::new(dtm_addr, endpoint.authority.clone()),
            tracker: tracker.clone(),
            branches: branches.clone(),
            pacer: config
                .rate
                .map(|rate| Pacer::new(origin, rate, lanes, lane, window.end)),
            rec: Recorder::new(window),
            config: config.clone(),
        };
        workers.spawn(worker.run());
    }
    let mut stats = Stats::default();
    while let Some(joined) = workers.join_next().await {
        stats.merge(&joined.context("DTM worker failed")?);
    }
    server.abort();
    for _ in 0..tracker.compensations.load(Ordering::Relaxed) {
        // Our actions never fail, so a compensation means DTM saw a failure or timeout.
        stats.error("compensation_called");
    }
    Ok(stats)
}

struct Worker {
    client: HttpClient,
    tracker: Arc<Tracker>,
    branches: String,
    pacer: Option<Pacer>,
    rec: Recorder,
    config: Arc<DtmConfig>,
}

impl Worker {
    async fn run(mut self) -> Stats {
        let end = self.rec.window.end;
        loop {
            let intended = match &mut self.pacer {
                Some(pacer) => match pacer.next_due() {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        pacer.take_due(due);
                        due
                    }
                    None => break,
                },
                None => Instant::now(),
            };
            if intended >= end {
                break;
            }
            if self.pacer.is_some() {
                self.rec.request(kind::START_LAG, intended, Instant::now());
            }
            if let Err(kind) = self.transaction(intended).await {
                self.rec.error(kind, Instant::now());
            }
        }
        self.rec.stats
    }

    /// One saga, from its (intended) start to the last action call.
    async fn transaction(&mut self, intended: Instant) -> Result<(), &'static str> {
        let timeout = self.config.request_timeout;
        let sent = Instant::now();
        let asked = tokio::time::timeout(
            timeout,
            self.client
                .request(Method::GET, "/api/dtmsvr/newGid", Bytes::new()),
        )
        .await;
        let now = Instant::now();
        let gid = match asked {
            Err(_) => return Err("timeout_new_gid"),
            Ok(Err(_)) => return Err("new_gid_failed"),
            Ok(Ok((status, body))) if status == StatusCode::OK => {
                parse_new_gid(&body).map_err(|_| "new_gid_failed")?
            }
            Ok(Ok(_)) => return Err("new_gid_failed"),
        };
        self.rec.request(kind::NEW_GID, sent, now);

        let done = self.tracker.expect(&gid, STEPS);
        let body = submit_body(&gid, &self.branches, self.config.wait_result).to_string();
        let sent = Instant::now();
        let submitted = tokio::time::timeout(
            timeout,
            self.client
                .request(Method::POST, "/api/dtmsvr/submit", Bytes::from(body)),
        )
        .await;
        let now = Instant::now();
        let failure = match submitted {
            Err(_) => Some("timeout_submit"),
            Ok(Err(_)) => Some("submit_failed"),
            // DTM's clients treat anything but 200, or a FAILURE result, as failed.
            Ok(Ok((status, body))) if status != StatusCode::OK || contains(&body, b"FAILURE") => {
                Some("submit_failed")
            }
            Ok(Ok(_)) => None,
        };
        if let Some(kind) = failure {
            self.tracker.forget(&gid);
            return Err(kind);
        }
        self.rec.request(kind::SUBMIT, sent, now);
        match tokio::time::timeout(timeout, done).await {
            Ok(Ok(finished)) => {
                self.rec.transaction(intended, finished);
                Ok(())
            }
            _ => {
                self.tracker.forget(&gid);
                Err("timeout_completion")
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtm_url_is_parsed_and_checked() {
        let endpoint = parse_dtm_url("http://127.0.0.1:36789").expect("valid");
        assert_eq!(endpoint.host, "127.0.0.1");
        assert_eq!(endpoint.port, 36789);
        assert_eq!(endpoint.authority, "127.0.0.1:36789");
        assert_eq!(parse_dtm_url("http://localhost").expect("valid").port, 80);
        assert!(parse_dtm_url("https://127.0.0.1:36789").is_err());
        assert!(parse_dtm_url("http://127.0.0.1:36789/api/dtmsvr").is_err());
        assert_eq!(parse_dtm_url("http://[::1]:9/").expect("v6").host, "::1");
    }

    #[test]
    fn submit_body_is_a_two_step_saga_with_a_payload_per_step() {
        let body = submit_body("gid-1", "http://127.0.0.1:5000", false);
        assert_eq!(body["gid"], "gid-1");
        assert_eq!(body["trans_type"], "saga");
        assert_eq!(body["wait_result"], false);
        let steps = body["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0]["action"], "http://127.0.0.1:5000/saga/action");
        assert_eq!(
            steps[1]["compensate"],
            "http://127.0.0.1:5000/saga/compensate"
        );
        assert_eq!(body["payloads"].as_array().expect("payloads").len(), 2);
    }

    #[test]
    fn new_gid_answers_are_parsed() {
        assert_eq!(
            parse_new_gid(br#"{"dtm_result":"SUCCESS","gid":"KJHG5fx"}"#).expect("gid"),
            "KJHG5fx"
        );
        assert!(parse_new_gid(br#"{"gid":""}"#).is_err());
        assert!(parse_new_gid(b"nope").is_err());
    }

    #[test]
    fn tracker_completes_after_every_action_once() {
        let tracker = Tracker::default();
        let mut done = tracker.expect("g", 2);
        let t1 = Instant::now();
        tracker.action("g", t1);
        assert!(done.try_recv().is_err(), "one of two actions");
        let t2 = t1 + Duration::from_millis(3);
        tracker.action("g", t2);
        assert_eq!(done.try_recv().ok(), Some(t2));
        // Late retries and unknown gids are answered but change nothing.
        tracker.action("g", t2);
        tracker.action("other", t2);
        assert_eq!(tracker.actions.load(Ordering::Relaxed), 4);
        let forgotten = tracker.expect("h", 1);
        tracker.forget("h");
        drop(forgotten);
        assert!(tracker.lock().is_empty());
    }
}
