//! The web console: one page, its script and its style sheet, embedded in the binary and
//! served by the admin listener (`/console/`), talking only to the admin API of the same
//! origin (no CDN, no separate server; the content security policy allows nothing else).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AdminState;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// Same origin only (images also from `admin.saga_pictures`'s origin); no inline script or
/// style; not framed by other sites.
fn policy(state: &AdminState) -> String {
    let images = match &state.info.saga_pictures_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src {images}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

pub fn routes() -> axum::Router<Arc<AdminState>> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|State(state): State<Arc<AdminState>>| async move {
                asset(&state, "text/html; charset=utf-8", INDEX)
            }),
        )
        .route(
            "/console/app.js",
            get(|State(state): State<Arc<AdminState>>| async move {
                asset(&state, "text/javascript; charset=utf-8", SCRIPT)
            }),
        )
        .route(
            "/console/style.css",
            get(|State(state): State<Arc<AdminState>>| async move {
                asset(&state, "text/css; charset=utf-8", STYLE)
            }),
        )
}

fn asset(state: &AdminState, content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_SECURITY_POLICY, policy(state)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}
