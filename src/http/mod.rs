//! The HTTP surface: one router per resource, cross-cutting layers in one place.

mod auth;
mod connections;
mod dashboard;
pub mod error;
mod extract;
mod middleware;
mod ops;
mod orgs;
mod sends;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::App;
use error::Problem;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub metrics: PrometheusHandle,
}

/// Limits that apply to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

pub fn router(state: AppState, limits: Limits) -> Router {
    let api = Router::new()
        .merge(auth::router())
        .merge(orgs::router())
        .merge(connections::router())
        .merge(sends::router());
    let router = Router::new()
        .nest("/api/v1", api)
        .merge(webhooks::router())
        .merge(dashboard::router())
        .merge(ops::router())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state);
    middleware::apply(router, limits.request_timeout)
}
