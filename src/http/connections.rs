//! `/api/v1/orgs/{org_id}/connections`. Responses never carry a token: a short fingerprint of
//! the access token at most.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use snorq_connectors::Platform;
use uuid::Uuid;

use super::AppState;
use super::error::ApiResult;
use super::extract::{OrgScope, PathId, ValidJson};
use super::orgs::Items;
use crate::app::connections::{self, ConnectionChanges, Credentials, NewConnection};
use crate::domain::{ConnectionStatus, Invalid};
use crate::store::Connection;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org_id}/connections", get(list).post(create))
        .route(
            "/orgs/{org_id}/connections/{connection_id}",
            get(show).patch(update).delete(disconnect),
        )
}

#[derive(Serialize)]
struct ConnectionBody {
    id: Uuid,
    organization_id: Uuid,
    platform: Platform,
    platform_user_id: String,
    name: Option<String>,
    status: ConnectionStatus,
    token_fingerprint: Option<String>,
    has_refresh_token: bool,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
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
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

// No Debug on bodies that carry tokens: nothing may print them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    platform: Platform,
    platform_user_id: String,
    name: Option<String>,
    access_token: String,
    refresh_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
}

/// Tells `"name": null` (clear it) from a missing `name` (leave it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<axum::Json<Items<ConnectionBody>>> {
    Ok(Items::from_iter(connections::list(&state.app, &access).await?))
}

async fn create(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionBody>)> {
    let new = NewConnection {
        platform: body.platform,
        platform_user_id: body.platform_user_id,
        name: body.name,
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

async fn show(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ConnectionBody>> {
    Ok(axum::Json(
        connections::get(&state.app, &access, id).await?.into(),
    ))
}

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

async fn disconnect(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    connections::disconnect(&state.app, &access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
