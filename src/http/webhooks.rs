//! `/webhooks/{whatsapp,facebook,tiktok}`: Meta's GET handshake, and POSTs that answer 200 only
//! once the body and its events are committed (docs/architecture.md, "The flow of a webhook").

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde_json::json;
use snorq_connectors::verify::{self, SignatureError};
use snorq_connectors::{Platform, verify::meta_subscribe_handshake};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, Problem, ProblemSchema};
use super::extract::RawBody;
use crate::app::{AppError, ingest};
use crate::domain;
use crate::store::WebhookStatus;

/// Meta sends up to 3 MB; anything above 4 MiB is refused with 413.
pub const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whatsapp_handshake, whatsapp))
        .routes(routes!(facebook_handshake, facebook))
        .routes(routes!(tiktok))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// Meta's subscribe handshake for the WhatsApp webhook.
#[utoipa::path(get, path = "/webhooks/whatsapp", tag = "webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge"),
              (status = 403, body = ProblemSchema)))]
async fn whatsapp_handshake(
    state: State<AppState>,
    query: Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    handshake(state, query).await
}

/// Meta's subscribe handshake for the Messenger webhook.
#[utoipa::path(get, path = "/webhooks/facebook", tag = "webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, content_type = "text/plain", description = "the challenge"),
              (status = 403, body = ProblemSchema)))]
async fn facebook_handshake(
    state: State<AppState>,
    query: Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    handshake(state, query).await
}

/// WhatsApp Cloud API events, signed with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
/// with the app secret). 200 once stored and applied.
#[utoipa::path(post, path = "/webhooks/whatsapp", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header)),
    request_body(content = Object, description = "Meta's webhook body, as sent"),
    responses((status = 200, description = "stored and applied"), (status = 401, body = ProblemSchema),
              (status = 413, body = ProblemSchema), (status = 503, body = ProblemSchema)))]
async fn whatsapp(state: State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<impl IntoResponse> {
    receive(Platform::WhatsApp, state, headers, body).await
}

/// Messenger events, signed like WhatsApp's.
#[utoipa::path(post, path = "/webhooks/facebook", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header)),
    request_body(content = Object, description = "Meta's webhook body, as sent"),
    responses((status = 200, description = "stored and applied"), (status = 401, body = ProblemSchema),
              (status = 413, body = ProblemSchema), (status = 503, body = ProblemSchema)))]
async fn facebook(state: State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<impl IntoResponse> {
    receive(Platform::Facebook, state, headers, body).await
}

/// TikTok Business Messaging events, signed with `Tiktok-Signature: t=<unix>,s=<hex>`.
#[utoipa::path(post, path = "/webhooks/tiktok", tag = "webhooks",
    params(("Tiktok-Signature" = String, Header)),
    request_body(content = Object, description = "TikTok's webhook body, as sent"),
    responses((status = 200, description = "stored and applied"), (status = 401, body = ProblemSchema),
              (status = 413, body = ProblemSchema), (status = 503, body = ProblemSchema)))]
async fn tiktok(state: State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<impl IntoResponse> {
    receive(Platform::TikTok, state, headers, body).await
}

/// Meta's subscribe handshake: echo `hub.challenge` when the verify token matches.
async fn handshake(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let expected = state
        .app
        .settings
        .webhooks
        .meta_verify_token
        .as_ref()
        .map_or("", |t| t.expose_secret());
    match meta_subscribe_handshake(&query, expected) {
        Ok(challenge) => Ok(([(header::CONTENT_TYPE, "text/plain")], challenge)),
        Err(err) => {
            tracing::warn!(error = %err, "webhook subscribe handshake refused");
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "handshake_refused",
                err.to_string(),
            ))
        }
    }
}

fn rejected(platform: Platform, reason: &'static str) {
    metrics::counter!("webhooks_rejected_total", "platform" => platform.as_str(), "reason" => reason)
        .increment(1);
}

async fn receive(
    platform: Platform,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<impl IntoResponse> {
    let started = Instant::now();
    let received_at = domain::now();
    metrics::counter!("webhooks_received_total", "platform" => platform.as_str()).increment(1);
    // Fail closed: without a secret nothing can be verified, so nothing is accepted. 503 makes
    // the platform redeliver once the secret is configured.
    let Some(secret) = state.app.settings.webhooks.app_secret(platform) else {
        rejected(platform, "not_configured");
        tracing::error!(%platform, "webhook refused: no app secret configured for this platform");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            format!("no {platform} app secret is configured on this server"),
        ));
    };
    let signature = headers
        .get(verify::signature_header(platform))
        .and_then(|v| v.to_str().ok());
    let verified = verify::verify_signature(
        platform,
        secret.expose_secret().as_bytes(),
        signature,
        &body,
        received_at,
        state.app.settings.webhooks.tiktok_tolerance,
    );
    if let Err(err) = verified {
        let reason = match err {
            SignatureError::MissingSecret => "not_configured",
            SignatureError::MissingHeader => "missing_signature",
            SignatureError::MalformedHeader(_) => "malformed_signature",
            SignatureError::StaleTimestamp { .. } => "stale_timestamp",
            SignatureError::Mismatch => "bad_signature",
        };
        rejected(platform, reason);
        tracing::warn!(%platform, error = %err, "webhook signature rejected");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            err.to_string(),
        ));
    }

    let webhook = ingest::prepare(platform, body.to_vec(), received_at);
    let webhook_id = webhook.id;
    let outcome = state.app.ingestor.submit(webhook).await.inspect_err(|err| {
        let reason = if matches!(err, AppError::Busy { .. }) {
            "busy"
        } else {
            "unavailable"
        };
        rejected(platform, reason);
    })?;
    metrics::counter!("webhooks_applied_total", "platform" => platform.as_str(), "status" => outcome.status.as_db())
        .increment(1);
    if outcome.unroutable > 0 {
        metrics::counter!("webhook_events_unroutable_total", "platform" => platform.as_str())
            .increment(outcome.unroutable as u64);
        tracing::warn!(%platform, %webhook_id, reasons = ?outcome.reasons, "webhook has unroutable events; replay after connecting the account");
    }
    if outcome.status == WebhookStatus::Failed {
        tracing::warn!(%platform, %webhook_id, reasons = ?outcome.reasons, "webhook stored but not fully applied");
    }
    metrics::histogram!("webhook_ack_seconds", "platform" => platform.as_str())
        .record(started.elapsed().as_secs_f64());
    // 200 for everything stored: a redelivery would not fix an unparseable or unroutable body;
    // it is replayable from the database.
    Ok(axum::Json(json!({
        "id": webhook_id,
        "status": outcome.status.as_db().to_lowercase(),
        "events": outcome.events,
        "applied": outcome.applied,
    })))
}
