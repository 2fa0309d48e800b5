//! `/api/v1/orgs/{org_id}/connections`. Responses never carry a token: a short fingerprint of
//! the access token at most.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use snorq_connectors::Platform;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::cookies;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{OrgScope, PathId, PathPlatform, RawBody, ValidJson, parse_json};
use super::orgs::Items;
use crate::app::connections::{self, ConnectionChanges, Credentials, NewConnection};
use crate::app::{connection_health, oauth};
use crate::domain::{ConnectionStatus, Invalid};
use crate::store::Connection;
use axum::response::IntoResponse;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, disconnect))
        .routes(routes!(start_oauth))
        .routes(routes!(check))
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConnectionBody {
    id: Uuid,
    organization_id: Uuid,
    #[schema(value_type = String, example = "whatsapp")]
    platform: Platform,
    platform_user_id: String,
    name: Option<String>,
    status: ConnectionStatus,
    token_fingerprint: Option<String>,
    has_refresh_token: bool,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    /// Refreshes and checks failed in a row without a verdict on the token.
    failure_count: i32,
    last_checked_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Connection> for ConnectionBody {
    fn from(c: Connection) -> Self {
        ConnectionBody {
            id: c.id,
            organization_id: c.organization_id,
            platform: c.platform.0,
            platform_user_id: c.platform_user_id,
            name: c.name,
            status: c.status,
            token_fingerprint: c.token_fingerprint,
            has_refresh_token: c.refresh_token_enc.is_some(),
            access_token_expires_at: c.access_token_expires_at,
            refresh_token_expires_at: c.refresh_token_expires_at,
            last_error: c.last_error,
            failure_count: c.failure_count,
            last_checked_at: c.last_checked_at,
            last_refreshed_at: c.last_refreshed_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

// No Debug on bodies that carry tokens: nothing may print them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[schema(value_type = super::schema::PlatformName, example = "whatsapp")]
    platform: Platform,
    /// The phone_number_id, Page id or TikTok open_id.
    #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f]{1,128}$", example = "106540352242922")]
    platform_user_id: String,
    #[schema(max_length = 100)]
    name: Option<String>,
    /// WhatsApp only: the WhatsApp Business Account the number belongs to. Needed when this
    /// server has no WhatsApp app configured to look it up.
    #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f]{1,128}$", example = "102290129340398")]
    waba_id: Option<String>,
    #[schema(pattern = r"^[\x21-\x7e]{1,8192}$")]
    access_token: String,
    #[schema(pattern = r"^[\x21-\x7e]{1,8192}$")]
    refresh_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>, max_length = 100)]
    name: Option<Option<String>>,
    #[schema(pattern = r"^[\x21-\x7e]{1,8192}$")]
    access_token: Option<String>,
    #[schema(pattern = r"^[\x21-\x7e]{1,8192}$")]
    refresh_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/orgs/{org_id}/connections", tag = "connections", params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Items<ConnectionBody>), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<axum::Json<Items<ConnectionBody>>> {
    Ok(Items::from_iter(connections::list(&state.app, &access).await?))
}

/// Connects a platform account with a token you already have (admins; the token is stored
/// encrypted and never returned). The platform is asked first whether the token reaches that
/// account (WhatsApp: the number is in the token's WhatsApp Business Account; Facebook: the
/// token is the Page's own; TikTok: the token is the business account's); otherwise 422
/// `account_not_reached`, `token_rejected` or `waba_id_required`, and nothing is stored.
#[utoipa::path(post, path = "/orgs/{org_id}/connections", tag = "connections", params(("org_id" = Uuid, Path)), request_body = CreateBody,
    responses((status = 201, body = ConnectionBody), (status = 403, body = ProblemSchema), (status = 409, body = ProblemSchema),
              (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionBody>)> {
    let new = NewConnection {
        platform: body.platform,
        platform_user_id: body.platform_user_id,
        name: body.name,
        waba_id: body.waba_id,
        credentials: Credentials {
            access_token: body.access_token,
            refresh_token: body.refresh_token,
            access_token_expires_at: body.access_token_expires_at,
            refresh_token_expires_at: body.refresh_token_expires_at,
        },
    };
    let created = connections::create(&state.app, &access, new).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

#[utoipa::path(get, path = "/orgs/{org_id}/connections/{connection_id}", tag = "connections",
    params(("org_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 200, body = ConnectionBody), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ConnectionBody>> {
    Ok(axum::Json(
        connections::get(&state.app, &access, id).await?.into(),
    ))
}

/// Renames the connection or replaces its tokens (admins).
#[utoipa::path(patch, path = "/orgs/{org_id}/connections/{connection_id}", tag = "connections",
    params(("org_id" = Uuid, Path), ("connection_id" = Uuid, Path)), request_body = UpdateBody,
    responses((status = 200, body = ConnectionBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
    ValidJson(body): ValidJson<UpdateBody>,
) -> ApiResult<axum::Json<ConnectionBody>> {
    let credentials = match body.access_token {
        Some(access_token) => Some(Credentials {
            access_token,
            refresh_token: body.refresh_token,
            access_token_expires_at: body.access_token_expires_at,
            refresh_token_expires_at: body.refresh_token_expires_at,
        }),
        None if body.refresh_token.is_some()
            || body.access_token_expires_at.is_some()
            || body.refresh_token_expires_at.is_some() =>
        {
            return Err(crate::app::AppError::from(Invalid::new(
                "access_token",
                "required when changing a connection's credentials",
            ))
            .into());
        }
        None => None,
    };
    let changes = ConnectionChanges {
        name: body.name,
        credentials,
    };
    Ok(axum::Json(
        connections::update(&state.app, &access, id, changes)
            .await?
            .into(),
    ))
}

/// Disconnects the account: tokens are erased, history stays (admins).
#[utoipa::path(delete, path = "/orgs/{org_id}/connections/{connection_id}", tag = "connections",
    params(("org_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn disconnect(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    connections::disconnect(&state.app, &access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// Facebook only: connect just these Pages (default: every Page the user grants).
    #[schema(value_type = Option<Vec<super::schema::PageId>>, min_items = 1, max_items = 100)]
    page_ids: Option<Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct StartedBody {
    /// Send the browser here; the platform comes back to `/oauth/{platform}/callback`.
    authorize_url: String,
    /// Signed, single-use, bound to this organization and user; good for 10 minutes.
    state: String,
    expires_at: DateTime<Utc>,
}

/// Starts connecting an account through the platform's OAuth flow (admins). The flow is bound
/// to the browser that calls this: the response sets the `snorq_connect` cookie (HttpOnly,
/// path `/oauth`), and the callback refuses a browser without it (400 `invalid_state`), so a
/// consent link handed to someone else connects nothing. Call it from the browser that will
/// follow `authorize_url` (with credentials included). For WhatsApp Embedded Signup, the page
/// that runs the signup passes the `state`, the `code` and the reported `waba_id` and
/// `phone_number_id` to the callback.
#[utoipa::path(post, path = "/orgs/{org_id}/connections/oauth/{platform}/start", tag = "connections",
    params(("org_id" = Uuid, Path), ("platform" = String, Path, description = "whatsapp, facebook or tiktok")),
    request_body(content = Option<StartBody>, description = "optional"),
    responses((status = 200, body = StartedBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 422, body = ProblemSchema), (status = 503, body = ProblemSchema, description = "the platform's app is not configured")),
    security(("bearer" = [])))]
async fn start_oauth(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathPlatform(platform): PathPlatform,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<axum::response::Response> {
    // No body, or `null`: no options.
    let trimmed = body.trim_ascii();
    let body: StartBody = if trimmed.is_empty() || trimmed == b"null" {
        StartBody { page_ids: None }
    } else {
        parse_json(&body)?
    };
    let options = oauth::StartOptions {
        page_ids: body.page_ids,
    };
    let sent = cookies::cookie(&headers, oauth::BROWSER_COOKIE);
    let started = oauth::start(&state.app, &access, platform, options, sent.as_deref()).await?;
    let binding = cookies::set_cookie(
        oauth::BROWSER_COOKIE,
        &started.browser_binding,
        "/oauth",
        cookies::SameSite::Lax,
        3600,
        state.app.settings.security.cookie_secure,
    );
    let body = axum::Json(StartedBody {
        authorize_url: started.authorize_url,
        state: started.state,
        expires_at: started.expires_at,
    });
    Ok(([(axum::http::header::SET_COOKIE, binding)], body).into_response())
}

/// Asks the platform whether the token still works (Meta `debug_token`, TikTok `token_info`)
/// and updates the status (admins): valid makes it active, rejected expired.
#[utoipa::path(post, path = "/orgs/{org_id}/connections/{connection_id}/check", tag = "connections",
    params(("org_id" = Uuid, Path), ("connection_id" = Uuid, Path)),
    responses((status = 200, body = ConnectionBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema), (status = 503, body = ProblemSchema)), security(("bearer" = [])))]
async fn check(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ConnectionBody>> {
    Ok(axum::Json(
        connection_health::check(&state.app, &access, id).await?.into(),
    ))
}
