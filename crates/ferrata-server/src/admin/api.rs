//! The admin API's JSON endpoints (`/api/v1/…`, described in `openapi.json`): reads of the
//! transactions, locks, clients and server this TC holds, and operators' actions, each
//! authenticated by its bearer token and written to the audit log (`ferrata::audit`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferrata_core::{
    AdminAction, BranchId, BranchSession, Event, GlobalSession, LockFilter, Phase2Kind, Reply,
    TransactionFilter, TxError,
};
use ferrata_proto::{GlobalStatus, TransactionExceptionCode as Code};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::AdminState;
use crate::engine::{AdminQuery, CoreCommand, Route};

/// How long a read waits for the core thread.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an action waits for its outcome (a commit or rollback waits for its phase 2).
const ACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Items per page unless asked otherwise.
const DEFAULT_PAGE: usize = 50;

/// The OpenAPI description of these endpoints.
const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> axum::Router<Arc<AdminState>> {
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/server", get(server))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/locks", get(locks))
        .route("/api/v1/transactions", get(transactions))
        .route(
            "/api/v1/transactions/{xid}",
            get(transaction).delete(delete_transaction),
        )
        .route("/api/v1/transactions/{xid}/{verb}", post(phase2_action))
        .route(
            "/api/v1/transactions/{xid}/branches/{branch_id}/resolve",
            post(resolve_branch),
        )
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/cluster", get(cluster_nodes))
        .route("/api/v1/cluster/transactions", get(cluster_transactions))
}

/// An error answer: `{"error": "…"}` with its status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Who is asking: `Ok(None)` for an anonymous read allowed because no token is configured.
fn operator(
    state: &AdminState,
    headers: &HeaderMap,
    acting: bool,
) -> Result<Option<String>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if state.operators.is_empty() {
        if acting {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "no admin token is configured, so no action is allowed: add [[admin.tokens]] \
                 (ferrata-server hash-token) and restart"
                    .to_owned(),
            ));
        }
        return Ok(None);
    }
    match bearer.and_then(|token| state.operators.identify(token)) {
        Some(name) => Ok(Some(name.to_owned())),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required: send Authorization: Bearer <token>".to_owned(),
        )),
    }
}

fn serving(state: &AdminState) -> Result<&super::Serving, ApiError> {
    state.serving.get().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the TC is still recovering its sessions".to_owned(),
        )
    })
}

/// Asks the core thread a question and waits (bounded) for its answer.
async fn ask<T>(
    state: &AdminState,
    query: impl FnOnce(oneshot::Sender<T>) -> AdminQuery,
) -> Result<T, ApiError> {
    let engine = &serving(state)?.engine;
    let (answer, answered) = oneshot::channel();
    let unavailable = || {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the core thread did not answer (stopping or overloaded)".to_owned(),
        )
    };
    if !engine.submit(CoreCommand::AdminRead(query(answer))).await {
        return Err(unavailable());
    }
    match tokio::time::timeout(READ_TIMEOUT, answered).await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(unavailable()),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn whoami(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    let who = operator(&state, &headers, false)?;
    Ok(Json(json!({ "operator": who, "can_act": who.is_some() })).into_response())
}

async fn server(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    operator(&state, &headers, false)?;
    let info = &state.info;
    let ready = state.ready.load(std::sync::atomic::Ordering::Acquire);
    let (connections, queued) = match state.serving.get() {
        Some(serving) => (serving.registry.connection_count(), serving.engine.queued()),
        None => (0, 0),
    };
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "node": info.node,
        "listen": info.listen,
        "admin_listen": info.admin_listen,
        "store": info.store,
        "started_at_ms": info.started_at_ms,
        "uptime_ms": crate::engine::now_ms().saturating_sub(info.started_at_ms),
        "ready": ready,
        "connections": connections,
        "command_queue_depth": queued,
        "saga_pictures": info.saga_pictures,
    }))
    .into_response())
}

fn cluster_of(state: &AdminState) -> Result<&super::ClusterView, ApiError> {
    state.cluster.get().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "this TC is not part of a cluster: its sessions are in its own log (store.url unset)"
                .to_owned(),
        )
    })
}

/// Runs a read of the shared database off the async threads (the store blocks).
async fn read_store<T: Send + 'static>(
    state: &Arc<AdminState>,
    read: impl FnOnce(&dyn ferrata_store::SessionStore) -> Result<T, ferrata_store::StoreError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    cluster_of(state)?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let view = state.cluster.get().expect("checked above");
        let store = view.store.lock().unwrap_or_else(|p| p.into_inner());
        read(store.get())
    })
    .await
    .map_err(|error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
    .map_err(|error| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the shared database: {error}"),
        )
    })
}

fn driver_json(view: &super::ClusterView, own: &str, prefix: &str) -> Value {
    match view.drivers.of(prefix) {
        crate::cluster::Driver::Here => json!(own),
        crate::cluster::Driver::At(node) => json!(node),
    }
}

/// The nodes of the cluster and which node drives the transactions each began.
async fn cluster_nodes(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    operator(&state, &headers, false)?;
    let (announced, prefixes) =
        read_store(&state, |store| Ok((store.nodes()?, store.xid_prefixes()?))).await?;
    let view = cluster_of(&state)?;
    let own = state.info.node.clone();
    let mut names: std::collections::BTreeSet<String> = announced.into_iter().collect();
    names.extend(prefixes.iter().cloned());
    names.insert(own.clone());
    let nodes: Vec<Value> = names
        .iter()
        .map(|node| {
            json!({
                "node": node,
                "this_node": *node == own,
                "has_transactions": prefixes.contains(node),
                "driven_by": driver_json(view, &own, node),
            })
        })
        .collect();
    Ok(Json(json!({ "this_node": own, "nodes": nodes })).into_response())
}

/// Every transaction in the shared database (all nodes'), with the node that drives it.
async fn cluster_transactions(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<TransactionQuery>,
) -> ApiResult {
    operator(&state, &headers, false)?;
    let statuses = match statuses(query.status.as_deref())? {
        none if none.is_empty() => GlobalStatus::ALL.to_vec(),
        some => some,
    };
    let limit = query
        .limit
        .unwrap_or(DEFAULT_PAGE)
        .min(ferrata_core::coordinator::admin::MAX_PAGE);
    let offset = query.offset.unwrap_or(0);
    // The database is read in transaction-id order up to the end of the page.
    let read = (offset + limit).min(10 * ferrata_core::coordinator::admin::MAX_PAGE);
    let min_age_ms = min_age_ms(query.min_age.as_deref())?;
    let stored = read_store(&state, move |store| {
        store.transactions_by_status(&statuses, read)
    })
    .await?;
    let view = cluster_of(&state)?;
    let own = state.info.node.clone();
    let now = crate::engine::now_ms();
    let matching: Vec<&ferrata_core::StoredTransaction> = stored
        .iter()
        .filter(|t| {
            let global = &t.global;
            query
                .application
                .as_ref()
                .is_none_or(|a| *a == global.application_id)
                && query
                    .group
                    .as_ref()
                    .is_none_or(|g| *g == global.transaction_service_group)
                && query
                    .xid
                    .as_ref()
                    .is_none_or(|x| global.xid.contains(x.as_str()))
                && min_age_ms.is_none_or(|age| now.saturating_sub(global.begin_time_ms) >= age)
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|t| {
            let mut item = transaction_json(&t.global, t.branches.len(), now);
            let node = ferrata_core::xid_prefix(&t.global.xid).to_owned();
            item["driven_by"] = driver_json(view, &own, &node);
            item["node"] = json!(node);
            item
        })
        .collect();
    Ok(
        Json(json!({ "total": total, "offset": offset, "limit": limit, "items": items }))
            .into_response(),
    )
}

/// Cumulative counts since start, summed over applications and groups, for the console's
/// charts (rates are differences between two reads).
async fn stats(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    operator(&state, &headers, false)?;
    let snapshot = ask(&state, AdminQuery::Counts).await?;
    let serving = serving(&state)?;
    let mut begun = 0;
    let mut active = 0;
    let mut ended: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (_, _, counts) in snapshot.transactions.iter() {
        begun += counts.begun;
        active += counts.active;
        for (status, total) in &counts.ended {
            *ended.entry(format!("{status:?}")).or_default() += total;
        }
    }
    let requests: Vec<Value> = crate::meters::meters()
        .request_totals()
        .into_iter()
        .map(
            |(kind, count, total_us)| json!({ "type": kind, "count": count, "total_us": total_us }),
        )
        .collect();
    Ok(Json(json!({
        "at_ms": crate::engine::now_ms(),
        "begun": begun,
        "active": active,
        "ended": ended,
        "sessions": snapshot.sessions,
        "branches": snapshot.branches,
        "locked_rows": snapshot.locked_rows,
        "connections": serving.registry.connection_count(),
        "command_queue_depth": serving.engine.queued(),
        "requests": requests,
    }))
    .into_response())
}

async fn clients(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> ApiResult {
    operator(&state, &headers, false)?;
    let clients = serving(&state)?.registry.clients();
    Ok(Json(json!({ "total": clients.len(), "items": clients })).into_response())
}

#[derive(Debug, Deserialize)]
struct TransactionQuery {
    /// Comma-separated status names (`Begin,CommitRetrying`) or codes.
    status: Option<String>,
    application: Option<String>,
    group: Option<String>,
    xid: Option<String>,
    /// Begun at least this long ago (`30s`, `5m`).
    min_age: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// A status by its name (any case) or its code.
pub fn parse_status(text: &str) -> Option<GlobalStatus> {
    let text = text.trim();
    if let Ok(code) = text.parse::<u8>() {
        return GlobalStatus::from_code(code);
    }
    GlobalStatus::ALL
        .iter()
        .copied()
        .find(|status| format!("{status:?}").eq_ignore_ascii_case(text))
}

/// `status`: names or codes, comma-separated; empty when not given.
fn statuses(list: Option<&str>) -> Result<Vec<GlobalStatus>, ApiError> {
    list.unwrap_or("")
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            parse_status(s).ok_or_else(|| {
                bad_request(format!(
                    "unknown status {s:?}: use a GlobalStatus name such as Begin or \
                     CommitRetrying, or its code"
                ))
            })
        })
        .collect()
}

/// `min_age` (`30s`, `5m`) in milliseconds.
fn min_age_ms(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let age = humantime::parse_duration(text)
        .map_err(|error| bad_request(format!("min_age {text:?}: {error} (use 30s, 5m, 2h)")))?;
    Ok(Some(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
}

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

async fn transactions(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<TransactionQuery>,
) -> ApiResult {
    operator(&state, &headers, false)?;
    let statuses = statuses(query.status.as_deref())?;
    let min_age_ms = min_age_ms(query.min_age.as_deref())?;
    let filter = TransactionFilter {
        statuses,
        application_id: query.application,
        group: query.group,
        xid_contains: query.xid,
        min_age_ms,
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(DEFAULT_PAGE),
    };
    let (offset, limit) = (
        filter.offset,
        filter.limit.min(ferrata_core::coordinator::admin::MAX_PAGE),
    );
    let page = ask(&state, |answer| AdminQuery::Transactions(filter, answer)).await?;
    let now = crate::engine::now_ms();
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|t| transaction_json(&t.global, t.branches, now))
        .collect();
    Ok(
        Json(json!({ "total": page.total, "offset": offset, "limit": limit, "items": items }))
            .into_response(),
    )
}

fn transaction_json(global: &GlobalSession, branches: usize, now_ms: i64) -> Value {
    json!({
        "xid": global.xid,
        "transaction_id": global.transaction_id.0,
        "status": format!("{:?}", global.status),
        "status_code": global.status.code(),
        "application_id": global.application_id,
        "group": global.transaction_service_group,
        "name": global.transaction_name,
        "timeout_ms": global.timeout_ms,
        "begin_time_ms": global.begin_time_ms,
        "age_ms": now_ms.saturating_sub(global.begin_time_ms),
        "branches": branches,
    })
}

fn branch_json(branch: &BranchSession, in_flight: bool) -> Value {
    json!({
        "branch_id": branch.branch_id.0,
        "resource_id": branch.resource_id,
        "branch_type": branch.branch_type.name(),
        "status": format!("{:?}", branch.status),
        "status_code": branch.status.code(),
        "lock_key": branch.lock_key,
        "client_id": branch.client_id,
        "application_data": branch.application_data,
        "phase2_in_flight": in_flight,
    })
}

fn event_json(at_ms: i64, event: &Event) -> Value {
    let kind = |kind: Phase2Kind| match kind {
        Phase2Kind::Commit => "commit",
        Phase2Kind::Rollback => "rollback",
    };
    match event {
        Event::Recovered { status } => {
            json!({ "at_ms": at_ms, "event": "recovered", "status": format!("{status:?}") })
        }
        Event::Status(status) => {
            json!({ "at_ms": at_ms, "event": "status", "status": format!("{status:?}") })
        }
        Event::BranchRegistered { branch_id } => {
            json!({ "at_ms": at_ms, "event": "branch-registered", "branch_id": branch_id.0 })
        }
        Event::Phase2Sent { branch_id, kind: k } => {
            json!({ "at_ms": at_ms, "event": "phase2-sent", "branch_id": branch_id.0, "phase2": kind(*k) })
        }
        Event::Phase2Answered { branch_id, outcome } => {
            let answer = match outcome {
                ferrata_core::BranchOutcome::Status(status) => format!("{status:?}"),
                ferrata_core::BranchOutcome::Unreachable => "Unreachable".to_owned(),
            };
            json!({ "at_ms": at_ms, "event": "phase2-answered", "branch_id": branch_id.0, "answer": answer })
        }
        Event::Operator { operator, action } => {
            json!({ "at_ms": at_ms, "event": "operator", "operator": operator, "action": action })
        }
    }
}

async fn transaction(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(xid): Path<String>,
) -> ApiResult {
    operator(&state, &headers, false)?;
    let wanted = xid.clone();
    let detail = ask(&state, |answer| AdminQuery::Transaction(wanted, answer))
        .await?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("{xid} is not held by this TC (ended, or driven by another node)"),
            )
        })?;
    let now = crate::engine::now_ms();
    Ok(Json(json!({
        "transaction": transaction_json(&detail.global, detail.branches.len(), now),
        "branches": detail.branches.iter().map(|b| branch_json(b, detail.in_flight.contains(&b.branch_id))).collect::<Vec<_>>(),
        "history": detail.history.entries().iter().map(|e| event_json(e.at_ms, &e.event)).collect::<Vec<_>>(),
        "history_dropped": detail.history.dropped(),
        "failed_passes": detail.failed_passes,
        "retry_at_ms": detail.retry_at_ms,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct LockQuery {
    resource: Option<String>,
    table: Option<String>,
    xid: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn locks(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<LockQuery>,
) -> ApiResult {
    operator(&state, &headers, false)?;
    let transaction_id = match &query.xid {
        None => None,
        Some(xid) => Some(
            ferrata_core::transaction_id_of(xid)
                .ok_or_else(|| bad_request(format!("{xid:?} is not an XID (host:port:id)")))?,
        ),
    };
    let filter = LockFilter {
        resource_id: query.resource,
        table: query.table,
        transaction_id,
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(DEFAULT_PAGE),
    };
    let page = ask(&state, |answer| AdminQuery::Locks(filter, answer)).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|lock| {
            json!({
                "resource_id": lock.resource_id,
                "table": lock.table,
                "pk": lock.pk,
                "xid": lock.xid,
                "transaction_id": lock.transaction_id.0,
                "branch_id": lock.branch_id.0,
                "since_ms": lock.since_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "total": page.total, "items": items })).into_response())
}

/// Runs an operator's action through the core and answers with its outcome.
async fn act(
    state: &AdminState,
    headers: &HeaderMap,
    peer: SocketAddr,
    xid: String,
    action: AdminAction,
) -> ApiResult {
    let Some(operator) = operator(state, headers, true)? else {
        return Err(ApiError(StatusCode::FORBIDDEN, "no operator".to_owned()));
    };
    let engine = &serving(state)?.engine;
    let (answer, answered) = oneshot::channel();
    let command = CoreCommand::Admin {
        route: Route::admin(answer, action.reply_kind()),
        operator: operator.clone(),
        xid: xid.clone(),
        action,
    };
    if !engine.submit(command).await {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the TC is stopping".to_owned(),
        ));
    }
    let outcome = tokio::time::timeout(ACTION_TIMEOUT, answered).await;
    let (status, body, result) = match outcome {
        Ok(Ok(Reply::Failed { error, .. })) => {
            let TxError { code, message } = error;
            let status = if code == Code::GlobalTransactionNotExist
                || code == Code::BranchTransactionNotExist
            {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            (
                status,
                json!({ "error": message }),
                format!("refused: {message}"),
            )
        }
        Ok(Ok(reply)) => {
            let after = match reply {
                Reply::GlobalCommit { status }
                | Reply::GlobalRollback { status }
                | Reply::GlobalStatus { status } => status,
                _ => GlobalStatus::UnKnown,
            };
            (
                StatusCode::OK,
                json!({ "xid": xid, "action": action.name(), "status": format!("{after:?}") }),
                format!("done: {after:?}"),
            )
        }
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "the TC stopped before answering" }),
            "no answer".to_owned(),
        ),
        Err(_) => (
            StatusCode::ACCEPTED,
            json!({ "xid": xid, "action": action.name(), "status": "pending", "note": "still in phase 2 after 60 s; read the transaction to follow it" }),
            "pending".to_owned(),
        ),
    };
    tracing::warn!(target: "ferrata::audit", %operator, %peer, action = action.name(), %xid, branch_id = ?branch_of(action), %result, "admin action");
    Ok((status, Json(body)).into_response())
}

fn branch_of(action: AdminAction) -> Option<i64> {
    match action {
        AdminAction::ResolveBranch(BranchId(id)) => Some(id),
        _ => None,
    }
}

/// `retry`, `commit` or `rollback` of one transaction.
async fn phase2_action(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((xid, verb)): Path<(String, String)>,
) -> ApiResult {
    let action = match verb.as_str() {
        "retry" => AdminAction::RetryNow,
        "commit" => AdminAction::Commit,
        "rollback" => AdminAction::Rollback,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: use retry, commit or rollback"),
            ));
        }
    };
    act(&state, &headers, peer, xid, action).await
}

async fn resolve_branch(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((xid, branch_id)): Path<(String, i64)>,
) -> ApiResult {
    act(
        &state,
        &headers,
        peer,
        xid,
        AdminAction::ResolveBranch(BranchId(branch_id)),
    )
    .await
}

async fn delete_transaction(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(xid): Path<String>,
) -> ApiResult {
    act(&state, &headers, peer, xid, AdminAction::Delete).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_by_name_or_code() {
        assert_eq!(
            parse_status("commitretrying"),
            Some(GlobalStatus::CommitRetrying)
        );
        assert_eq!(parse_status("1"), Some(GlobalStatus::Begin));
        assert_eq!(parse_status("Nope"), None);
    }
}
