//! Operational endpoints: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{Problem, ProblemSchema};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// A small page for whoever opens the service in a browser: where everything is.
#[utoipa::path(get, path = "/", tag = "ops", responses((status = 200, content_type = "text/html", description = "links to the dashboard, the API docs and the health checks")))]
async fn root() -> impl IntoResponse {
    axum::response::Html(concat!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Snorq</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>",
        "<h1>Snorq</h1><p>This is a Snorq service: an inbox for WhatsApp, Messenger and TikTok conversations.</p>",
        "<ul><li><a href=\"/dashboard\">Dashboard</a> (sign in as an owner or admin)</li>",
        "<li><a href=\"/docs\">API documentation</a> (<a href=\"/api/v1/openapi.json\">OpenAPI document</a>)</li>",
        "<li><a href=\"/healthz\">/healthz</a> (the process is up) and <a href=\"/readyz\">/readyz</a> (the database answers)</li>",
        "<li><a href=\"/metrics\">/metrics</a> (Prometheus)</li></ul>"
    ))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// The database answers; 503 otherwise, so a load balancer stops sending traffic here.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "`{\"status\": \"ready\", \"database\": \"postgres\"}`"),
              (status = 503, body = ProblemSchema)))]
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

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
