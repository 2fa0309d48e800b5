//! `/api/v1/orgs/{org_id}/labels`: the organization's labels (admins manage them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{OrgScope, PathIds, ValidJson};
use super::inbox::LabelBody;
use super::orgs::Items;
use crate::app::labels;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
}

#[utoipa::path(get, path = "/orgs/{org_id}/labels", tag = "labels",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Items<LabelBody>)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<Json<Items<LabelBody>>> {
    let labels = labels::list(&state.app, &access).await?;
    Ok(Items::from_iter(labels))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    /// 1 to 50 characters, unique in the organization.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 50
    )]
    name: String,
    /// `#rrggbb`
    #[schema(pattern = r"^#[0-9a-fA-F]{6}$", example = "#1a7f37")]
    color: Option<String>,
}

/// Creates a label (admins and the owner).
#[utoipa::path(post, path = "/orgs/{org_id}/labels", tag = "labels",
    params(("org_id" = Uuid, Path)),
    request_body = NewLabel,
    responses((status = 201, body = LabelBody), (status = 403, body = ProblemSchema),
              (status = 409, body = ProblemSchema), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<NewLabel>,
) -> ApiResult<(StatusCode, Json<LabelBody>)> {
    let label = labels::create(&state.app, &access, &body.name, body.color.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(label.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelChange {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 50
    )]
    name: Option<String>,
    /// `#rrggbb`, or null to remove the color.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>, pattern = r"^#[0-9a-fA-F]{6}$")]
    color: Option<Option<String>>,
}

/// Renames or recolors a label (admins and the owner).
#[utoipa::path(patch, path = "/orgs/{org_id}/labels/{label_id}", tag = "labels",
    params(("org_id" = Uuid, Path), ("label_id" = Uuid, Path)),
    request_body = LabelChange,
    responses((status = 200, body = LabelBody), (status = 403, body = ProblemSchema),
              (status = 404, body = ProblemSchema), (status = 409, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidJson(body): ValidJson<LabelChange>,
) -> ApiResult<Json<LabelBody>> {
    let id = ids.get("label_id")?;
    let label = labels::update(
        &state.app,
        &access,
        id,
        body.name.as_deref(),
        body.color.as_ref().map(|c| c.as_deref()),
    )
    .await?;
    Ok(Json(label.into()))
}

/// Deletes a label; it comes off every conversation (admins and the owner).
#[utoipa::path(delete, path = "/orgs/{org_id}/labels/{label_id}", tag = "labels",
    params(("org_id" = Uuid, Path), ("label_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<StatusCode> {
    labels::delete(&state.app, &access, ids.get("label_id")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
