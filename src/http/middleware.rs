//! Cross-cutting layers: request ids, tracing spans, metrics, timeouts, panics.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response, StatusCode};
use axum::middleware::{Next, from_fn};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::Problem;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the router in the cross-cutting layers, outermost first.
pub fn apply(router: Router, timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
            }))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(from_fn(record_metrics))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout)),
    )
}

/// Counts requests and their latency by method, route template and status.
async fn record_metrics(request: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("request handler panicked");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
}
