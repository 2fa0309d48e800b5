//! `/api/v1/orgs` and `/api/v1/orgs/{org_id}/members`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{Authenticated, OrgScope, PathId, ValidJson};
use crate::app::orgs::{self, OrgChanges};
use crate::domain::{Plan, Role};
use crate::store::{Member, Membership};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
        .routes(routes!(members))
        .routes(routes!(update_member, remove_member))
}

/// An organization as seen by the caller, with the caller's role in it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgBody {
    id: Uuid,
    name: String,
    slug: String,
    plan: Plan,
    owner_id: Uuid,
    role: Role,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Membership> for OrgBody {
    fn from(m: Membership) -> Self {
        let o = m.organization;
        OrgBody {
            id: o.id,
            name: o.name,
            slug: o.slug,
            plan: o.plan,
            owner_id: o.owner_id,
            role: m.role,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct MemberBody {
    user_id: Uuid,
    email: String,
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        MemberBody {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            created_at: m.created_at,
        }
    }
}

/// A list response. These lists are bounded (a user's organizations, an organization's seats
/// and connections), so they come whole.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Items<T> {
    pub fn from_iter<S: Into<T>>(rows: impl IntoIterator<Item = S>) -> axum::Json<Self> {
        axum::Json(Items {
            items: rows.into_iter().map(Into::into).collect(),
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateOrgBody {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 100,
        example = "Acme Support"
    )]
    name: String,
    /// 2 to 48 of `a-z 0-9 -`; derived from the name when left out.
    #[schema(
        pattern = r"^\s*[a-z0-9][a-z0-9-]{0,46}[a-z0-9]\s*$",
        example = "acme-support"
    )]
    slug: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateOrgBody {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 100
    )]
    name: Option<String>,
    #[schema(pattern = r"^\s*[a-z0-9][a-z0-9-]{0,46}[a-z0-9]\s*$")]
    slug: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMemberBody {
    role: Role,
}

/// Creates an organization (FREE plan); the caller becomes its owner.
#[utoipa::path(post, path = "/orgs", tag = "organizations", request_body = CreateOrgBody,
    responses((status = 201, body = OrgBody), (status = 409, body = ProblemSchema), (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
    ValidJson(body): ValidJson<CreateOrgBody>,
) -> ApiResult<(StatusCode, axum::Json<OrgBody>)> {
    if session.token_organization_id.is_some() {
        return Err(
            crate::app::AppError::Forbidden("organization API keys cannot create organizations").into(),
        );
    }
    let created = orgs::create(
        &state.app,
        session.user.id,
        &body.name,
        body.slug.as_deref(),
        Plan::Free,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

/// The caller's organizations with the caller's role.
#[utoipa::path(get, path = "/orgs", tag = "organizations", responses((status = 200, body = Items<OrgBody>)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> ApiResult<axum::Json<Items<OrgBody>>> {
    Ok(Items::from_iter(orgs::list(&state.app, &session).await?))
}

#[utoipa::path(get, path = "/orgs/{org_id}", tag = "organizations", params(("org_id" = Uuid, Path)),
    responses((status = 200, body = OrgBody), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn show(OrgScope(access): OrgScope) -> axum::Json<OrgBody> {
    axum::Json(access.membership.into())
}

/// Renames the organization or changes its slug (admins and the owner).
#[utoipa::path(patch, path = "/orgs/{org_id}", tag = "organizations", params(("org_id" = Uuid, Path)), request_body = UpdateOrgBody,
    responses((status = 200, body = OrgBody), (status = 403, body = ProblemSchema), (status = 409, body = ProblemSchema)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<UpdateOrgBody>,
) -> ApiResult<axum::Json<OrgBody>> {
    let changes = OrgChanges {
        name: body.name.as_deref(),
        slug: body.slug.as_deref(),
    };
    Ok(axum::Json(
        orgs::update(&state.app, &access, changes).await?.into(),
    ))
}

#[utoipa::path(get, path = "/orgs/{org_id}/members", tag = "organizations", params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Items<MemberBody>), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn members(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<axum::Json<Items<MemberBody>>> {
    Ok(Items::from_iter(orgs::members(&state.app, &access).await?))
}

/// Changes a member's role; `owner` transfers ownership (owner only).
#[utoipa::path(patch, path = "/orgs/{org_id}/members/{user_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UpdateMemberBody,
    responses((status = 200, body = MemberBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema, description = "the owner's role changes only by a transfer")), security(("bearer" = [])))]
async fn update_member(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(user_id): PathId,
    ValidJson(body): ValidJson<UpdateMemberBody>,
) -> ApiResult<axum::Json<MemberBody>> {
    Ok(axum::Json(
        orgs::set_role(&state.app, &access, user_id, body.role)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/orgs/{org_id}/members/{user_id}", tag = "organizations",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema, description = "the owner cannot be removed")), security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(user_id): PathId,
) -> ApiResult<StatusCode> {
    orgs::remove_member(&state.app, &access, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
