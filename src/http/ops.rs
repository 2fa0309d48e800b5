//! Operational endpoints: liveness, readiness, Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::AppState;
use super::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// The database answers; 503 otherwise, so a load balancer stops sending traffic here.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    match state.app.store.ping().await {
        Ok(()) => Ok(axum::Json(
            json!({ "status": "ready", "database": state.app.store.backend() }),
        )),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not reachable",
            ))
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
