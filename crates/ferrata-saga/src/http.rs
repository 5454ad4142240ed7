//! The engine's pictures over HTTP (feature `axum`): `GET /machines/{name}.svg` and
//! `GET /instances/{id}.svg`, for ferrata-server's console (`admin.saga_pictures`) or any page
//! that shows them with `<img>`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::engine::SagaEngine;

/// Routes serving the engine's pictures; nest it where the console's `admin.saga_pictures` URL
/// points (`Router::new().nest("/saga", ferrata_saga::http::router(engine))`).
pub fn router(engine: SagaEngine) -> axum::Router {
    axum::Router::new()
        .route("/machines/{file}", get(machine))
        .route("/instances/{file}", get(instance))
        .with_state(engine)
}

async fn machine(State(engine): State<SagaEngine>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return not_found();
    };
    match engine.machine_svg(name) {
        Some(svg) => picture(svg),
        None => not_found(),
    }
}

async fn instance(State(engine): State<SagaEngine>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".svg") else {
        return not_found();
    };
    match engine.instance_svg(id).await {
        Ok(Some(svg)) => picture(svg),
        Ok(None) => not_found(),
        Err(error) => {
            tracing::warn!(%error, "saga picture: cannot read the instance");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the saga store cannot be read",
            )
                .into_response()
        }
    }
}

fn picture(svg: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // The picture draws; it never runs or loads anything.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such machine or instance").into_response()
}
