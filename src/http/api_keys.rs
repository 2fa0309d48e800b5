//! `/api/v1/orgs/{org_id}/api-keys`: organization API keys (BUSINESS plan; admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{OrgScope, PathIds, ValidJson};
use super::orgs::Items;
use crate::app::api_keys;
use crate::store::ApiKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyBody {
    id: Uuid,
    name: Option<String>,
    /// The admin who created it; the key acts with that member's role.
    created_by: Uuid,
    created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyBody {
    fn from(k: ApiKey) -> Self {
        ApiKeyBody {
            id: k.id,
            name: k.name,
            created_by: k.user_id,
            created_at: k.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyBody {
    #[serde(flatten)]
    key: ApiKeyBody,
    /// The key: use it as `Authorization: Bearer <key>` on this organization's routes. Shown
    /// once; only its hash is stored.
    token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for (1 to 100 characters).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 100
    )]
    name: String,
}

/// Live API keys of the organization.
#[utoipa::path(get, path = "/orgs/{org_id}/api-keys", tag = "api keys",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Items<ApiKeyBody>), (status = 402, body = ProblemSchema),
              (status = 403, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<Json<Items<ApiKeyBody>>> {
    Ok(Items::from_iter(api_keys::list(&state.app, &access).await?))
}

/// Creates a key (BUSINESS plan: 402 `plan_limit` otherwise).
#[utoipa::path(post, path = "/orgs/{org_id}/api-keys", tag = "api keys",
    params(("org_id" = Uuid, Path)),
    request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKeyBody), (status = 402, body = ProblemSchema),
              (status = 403, body = ProblemSchema), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKeyBody>)> {
    let created = api_keys::create(&state.app, &access, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyBody {
            key: created.key.into(),
            token: created.token.expose().to_owned(),
        }),
    ))
}

/// Revokes a key.
#[utoipa::path(delete, path = "/orgs/{org_id}/api-keys/{key_id}", tag = "api keys",
    params(("org_id" = Uuid, Path), ("key_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<StatusCode> {
    api_keys::revoke(&state.app, &access, ids.get("key_id")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
