//! `/oauth/{platform}/...`: where platforms send the browser back after consent, and Meta's
//! deauthorize callback. No bearer token here: the signed, single-use state (callback) and the
//! signed request (deauthorize) are the credentials.

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{PathPlatform, RawBody};
use crate::app::connection_health;
use crate::app::oauth::{self, CallbackParams};

/// A deauthorize form is a few hundred bytes.
const MAX_CALLBACK_BYTES: usize = 16 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(callback))
        .routes(routes!(deauthorize))
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
}

/// The platform's redirect after consent: exchanges the code, stores the tokens encrypted,
/// creates or updates the connections, then redirects (303) to the configured return URL with
/// `status=connected&connection_ids=...` or `status=error&error=<reason>`. A state that is
/// missing, forged, expired or already used, or a browser without the `snorq_connect` cookie
/// of the one that started the flow, answers 400 `invalid_state` and stores nothing.
#[utoipa::path(get, path = "/oauth/{platform}/callback", tag = "oauth",
    params(("platform" = String, Path, description = "whatsapp, facebook or tiktok"),
           ("code" = Option<String>, Query), ("state" = String, Query), ("error" = Option<String>, Query),
           ("waba_id" = Option<String>, Query, description = "WhatsApp Embedded Signup"),
           ("phone_number_id" = Option<String>, Query, description = "WhatsApp Embedded Signup")),
    responses((status = 303, description = "to the return URL"), (status = 400, body = ProblemSchema),
              (status = 404, body = ProblemSchema)))]
async fn callback(
    State(state): State<AppState>,
    PathPlatform(platform): PathPlatform,
    headers: axum::http::HeaderMap,
    Query(params): Query<CallbackParams>,
) -> ApiResult<Response> {
    let browser = super::cookies::cookie(&headers, oauth::BROWSER_COOKIE);
    let outcome = oauth::callback(&state.app, platform, params, browser.as_deref()).await?;
    let location = oauth::return_url(&state.app, platform, &outcome);
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// Meta's deauthorize callback (form field `signed_request`, HMAC-SHA256 with the app
/// secret): the connections the user granted, or the Page's, are disconnected.
#[utoipa::path(post, path = "/oauth/{platform}/deauthorize", tag = "oauth",
    params(("platform" = String, Path, description = "whatsapp or facebook")),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "signed_request=..."),
    responses((status = 200, description = "how many connections were disconnected"),
              (status = 401, body = ProblemSchema), (status = 404, body = ProblemSchema), (status = 503, body = ProblemSchema)))]
async fn deauthorize(
    State(state): State<AppState>,
    PathPlatform(platform): PathPlatform,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let disconnected = connection_health::deauthorize(&state.app, platform, &body).await?;
    Ok(axum::Json(json!({ "disconnected": disconnected })))
}
