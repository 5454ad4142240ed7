//! `participant` mode: a TCC participant (action `rust-tcc-action`, no fence) behind an axum
//! server with [`XidLayer`], so a caller in any language joins it to its global transaction by
//! sending the `TX_XID` header.
//!
//! | Route | Does |
//! |---|---|
//! | `POST /try` | runs the action's try under the inbound XID; the body is kept in the action context as `probe`; answers `{"xid","branch_id"}` (400 without `TX_XID`, 500 when the try fails) |
//! | `GET /calls` | every confirm/cancel the TC delivered, in arrival order: `[{"xid","branch_id","action","phase":"commit"\|"rollback","probe"}]` |
//!
//! The SDK client connects and registers the resource before the port is bound, so once the
//! port answers, the TC knows the resource.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferrata::Client;
use ferrata::context::current_xid;
use ferrata::integrations::tower::XidLayer;
use ferrata_tcc::{TccAction, TccContext, TccParticipant, TccResource};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The action name, which is the TCC resource id registered with the TC.
pub const ACTION: &str = "rust-tcc-action";
/// The action context: the body of `POST /try` under the key `probe`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Probe {
    probe: Option<String>,
}

/// One phase-two call as the participant received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseCall {
    pub xid: String,
    pub branch_id: i64,
    /// The action name, i.e. the resource id of the branch.
    pub action: String,
    /// `commit` (confirm) or `rollback` (cancel).
    pub phase: &'static str,
    /// The `probe` value of the action context the TC handed back, if any.
    pub probe: Option<String>,
}

/// The phase-two calls seen so far, shared by the participant and the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<PhaseCall>>>);

impl Calls {
    fn lock(&self) -> MutexGuard<'_, Vec<PhaseCall>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, phase: &'static str, ctx: &TccContext<Probe>) {
        let call = PhaseCall {
            xid: ctx.xid.clone(),
            branch_id: ctx.branch_id,
            action: ctx.action_name.clone(),
            phase,
            probe: ctx.params.probe.clone(),
        };
        tracing::info!(?call, "phase two");
        self.lock().push(call);
    }

    /// A copy of every call, in arrival order.
    pub fn snapshot(&self) -> Vec<PhaseCall> {
        self.lock().clone()
    }
}

/// The participant: the try reserves nothing, confirm and cancel only record themselves. Both
/// succeed every time they are called, so a duplicate delivery shows up as a second call.
#[derive(Debug)]
struct RecordingAction {
    calls: Calls,
}

impl TccParticipant for RecordingAction {
    type Local = ();
    /// The probe text from the request body.
    type Args = String;
    /// The branch id the TC assigned.
    type Output = i64;
    type Params = Probe;
    type Error = std::convert::Infallible;

    fn action_name(&self) -> &str {
        ACTION
    }

    fn params(&self, probe: &String) -> Probe {
        Probe {
            probe: Some(probe.clone()),
        }
    }

    async fn prepare(
        &self,
        _: &mut (),
        ctx: &mut TccContext<Probe>,
        _probe: String,
    ) -> Result<i64, Self::Error> {
        tracing::info!(xid = %ctx.xid, branch_id = ctx.branch_id, "try");
        Ok(ctx.branch_id)
    }

    async fn confirm(&self, _: &mut (), ctx: &TccContext<Probe>) -> Result<(), Self::Error> {
        self.calls.record("commit", ctx);
        Ok(())
    }

    async fn cancel(&self, _: &mut (), ctx: &TccContext<Probe>) -> Result<(), Self::Error> {
        self.calls.record("rollback", ctx);
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct AppState {
    action: TccAction<RecordingAction>,
    calls: Calls,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `POST /try`: phase one under the XID that [`XidLayer`] bound from `TX_XID`, awaited right in
/// the handler.
async fn try_action(State(state): State<AppState>, probe: String) -> Response {
    let Some(xid) = current_xid() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "no TX_XID header: call me inside a global transaction"}),
        );
    };
    match state.action.call(probe).await {
        Ok(branch_id) => {
            json_response(StatusCode::OK, &json!({"xid": xid, "branch_id": branch_id}))
        }
        Err(error) => {
            tracing::warn!(%xid, %error, "try failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"xid": xid, "error": error.to_string()}),
            )
        }
    }
}

/// `GET /calls`.
async fn list_calls(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &state.calls.snapshot())
}

/// Connects to the TC, registers the resource, then serves HTTP on `listen` until SIGTERM or
/// Ctrl-C.
pub async fn run(tc: &str, listen: SocketAddr) -> anyhow::Result<()> {
    let client = Client::connect(crate::client_config(
        "ferrata-interop-peer-participant",
        tc,
    )?)
    .await
    .with_context(|| format!("connecting to the TC at {tc}"))?;
    let calls = Calls::default();
    let action = TccResource::new(RecordingAction {
        calls: calls.clone(),
    })
    .register(&client)
    .await
    .context("registering the TCC resource")?;

    let state = AppState { action, calls };
    let app = axum::Router::new()
        .route("/try", post(try_action))
        .route("/calls", get(list_calls))
        .with_state(state)
        .layer(XidLayer::new());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, tc, action = ACTION, "participant ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    client.shutdown();
    tracing::info!("participant stopped");
    Ok(())
}

/// Resolves on SIGTERM (how the Java harness stops processes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /calls` is read by the Java suite: field names and phase names are its contract.
    #[test]
    fn calls_are_listed_as_the_java_suite_reads_them() {
        let calls = Calls::default();
        let ctx = TccContext::from_application_data(
            "127.0.0.1:8091:7",
            8,
            ACTION,
            r#"{"actionContext":{"probe":"p-1","actionName":"rust-tcc-action"}}"#,
        )
        .expect("context");
        calls.record("commit", &ctx);
        let empty = TccContext::from_application_data("", 0, "", "").expect("empty context");
        calls.record("rollback", &empty);
        let json = serde_json::to_value(calls.snapshot()).expect("json");
        assert_eq!(
            json,
            json!([
                {"xid": "127.0.0.1:8091:7", "branch_id": 8, "action": ACTION, "phase": "commit", "probe": "p-1"},
                {"xid": "", "branch_id": 0, "action": "", "phase": "rollback", "probe": null},
            ])
        );
    }
}
