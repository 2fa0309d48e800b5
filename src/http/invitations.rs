//! `/api/v1/orgs/{org_id}/invitations` (admins invite by email) and `/api/v1/me/invitations`
//! (the invited person accepts or declines). No answer here says whether an email has an
//! account.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{Authenticated, OrgScope, PathIds, ValidJson};
use super::orgs::{Items, OrgBody};
use crate::app::invitations;
use crate::domain::Role;
use crate::store::Invitation;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations, invite))
        .routes(routes!(revoke_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(accept_invitation))
        .routes(routes!(decline_invitation))
}

#[derive(Serialize, utoipa::ToSchema)]
struct InvitationBody {
    id: Uuid,
    organization_id: Uuid,
    organization_name: String,
    email: String,
    role: Role,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    /// Unanswered by then, the invitation lapses and its seat is free again.
    expires_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationBody {
    fn from(i: Invitation) -> Self {
        InvitationBody {
            id: i.id,
            organization_id: i.organization_id,
            organization_name: i.organization_name,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    /// Who to invite; they accept once signed in with this email.
    #[schema(
        format = "email",
        min_length = 3,
        max_length = 254,
        example = "ana@example.com"
    )]
    email: String,
    /// `admin` or `member` (the default).
    #[serde(default = "member")]
    #[schema(value_type = InviteRole)]
    role: Role,
}

/// The roles an invitation can give.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum InviteRole {
    Admin,
    Member,
}

fn member() -> Role {
    Role::Member
}

/// Pending invitations of the organization (admins).
#[utoipa::path(get, path = "/orgs/{org_id}/invitations", tag = "invitations", operation_id = "list_invitations",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = Items<InvitationBody>),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 403, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn list_invitations(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
) -> ApiResult<axum::Json<Items<InvitationBody>>> {
    Ok(Items::from_iter(invitations::pending(&state.app, &access).await?))
}

/// Invites someone by email (admins). The answer is the same whether or not the email has an
/// account; the invited person accepts through `POST /me/invitations/{id}/accept`. Pending
/// invitations hold a seat: 409 `plan_limit` when members and invitations fill the plan.
#[utoipa::path(post, path = "/orgs/{org_id}/invitations", tag = "invitations", operation_id = "invite",
    params(("org_id" = Uuid, Path)), request_body = InviteBody,
    responses((status = 201, body = InvitationBody),
              (status = 400, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 403, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 409, body = ProblemSchema, content_type = "application/problem+json",
               description = "a member or invited already (`conflict`), or no seat left (`plan_limit`)"),
              (status = 415, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 422, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn invite(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidJson(body): ValidJson<InviteBody>,
) -> ApiResult<(StatusCode, axum::Json<InvitationBody>)> {
    let invitation = invitations::invite(&state.app, &access, &body.email, body.role).await?;
    Ok((StatusCode::CREATED, axum::Json(invitation.into())))
}

/// Withdraws a pending invitation (admins).
#[utoipa::path(delete, path = "/orgs/{org_id}/invitations/{invitation_id}", tag = "invitations",
    operation_id = "revoke_invitation",
    params(("org_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 403, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn revoke_invitation(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<StatusCode> {
    invitations::revoke(&state.app, &access, ids.get("invitation_id")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invitations addressed to the caller's email.
#[utoipa::path(get, path = "/me/invitations", tag = "invitations", operation_id = "my_invitations",
    responses((status = 200, body = Items<InvitationBody>),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn my_invitations(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> ApiResult<axum::Json<Items<InvitationBody>>> {
    Ok(Items::from_iter(invitations::mine(&state.app, &session).await?))
}

/// Accepts an invitation addressed to the caller: the organization, with the caller's new role.
#[utoipa::path(post, path = "/me/invitations/{invitation_id}/accept", tag = "invitations",
    operation_id = "accept_invitation",
    params(("invitation_id" = Uuid, Path)),
    responses((status = 200, body = OrgBody),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 409, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn accept_invitation(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
    PathIds(ids): PathIds,
) -> ApiResult<axum::Json<OrgBody>> {
    let membership = invitations::accept(&state.app, &session, ids.get("invitation_id")?).await?;
    Ok(axum::Json(membership.into()))
}

/// Declines an invitation addressed to the caller.
#[utoipa::path(post, path = "/me/invitations/{invitation_id}/decline", tag = "invitations",
    operation_id = "decline_invitation",
    params(("invitation_id" = Uuid, Path)),
    responses((status = 204),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn decline_invitation(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
    PathIds(ids): PathIds,
) -> ApiResult<StatusCode> {
    invitations::decline(&state.app, &session, ids.get("invitation_id")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
