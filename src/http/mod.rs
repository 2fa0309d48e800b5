//! The HTTP surface: one router per resource, cross-cutting layers in one place.

mod api_keys;
mod auth;
mod connections;
mod cookies;
mod dashboard;
pub mod error;
mod events;
mod extract;
mod inbox;
mod invitations;
mod labels;
mod middleware;
mod oauth;
pub mod openapi;
mod ops;
mod orgs;
mod schema;
mod sends;
mod strict_json;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

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
    let (routes, api) = documented_routes().split_for_parts();
    let api = openapi::finish(api);
    let router = routes
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", api))
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

/// Every route with its OpenAPI operation.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(auth::router())
        .merge(orgs::router())
        .merge(invitations::router())
        .merge(connections::router())
        .merge(sends::router())
        .merge(inbox::router())
        .merge(labels::router())
        .merge(events::router())
        .merge(api_keys::router());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .merge(webhooks::router())
        .merge(oauth::router())
        .merge(dashboard::router())
        .merge(ops::router())
}
