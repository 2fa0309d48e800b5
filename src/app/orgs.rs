//! Organizations and their members, with role checks (docs/architecture.md, "Roles"): OWNER
//! everything, ADMIN members and connections, MEMBER read and reply. Someone outside the
//! organization gets `NotFound`, never a hint that it exists.

use uuid::Uuid;

use crate::domain::{self, Email, OrgName, Plan, Role, Slug};
use crate::store::{
    Member, Membership, NewOrganization, Organization, OrganizationUpdate, Session, StoreError,
};

use super::{App, AppError, AppResult};

/// The caller's standing in one organization, established once per request.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    pub user_id: Uuid,
    pub membership: Membership,
    /// The hash of the credential that established it, so that a long request (a live-event
    /// stream) can check that it still holds. `None` for the service's own in-process use (the
    /// demo's agent), which nothing revokes.
    pub token_hash: Option<String>,
}

impl OrgAccess {
    pub fn org_id(&self) -> Uuid {
        self.membership.organization.id
    }

    pub fn role(&self) -> Role {
        self.membership.role
    }

    /// `Forbidden` unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.role() >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(match role {
                Role::Owner => "only the organization's owner may do this",
                Role::Admin => "only an admin or the owner may do this",
                Role::Member => "members only",
            }))
        }
    }
}

/// Looks up the caller's membership. Tokens scoped to another organization, and non-members,
/// get `NotFound`.
pub async fn access(app: &App, bearer: &str, org_id: Uuid) -> AppResult<OrgAccess> {
    access_by_hash(app, crate::crypto::tokens::hash_token(bearer), org_id).await
}

/// [`access`] for a credential known by its hash: a stream asks again whether the caller may
/// still read the organization (membership, role, session and key all still live).
pub async fn access_by_hash(app: &App, token_hash: String, org_id: Uuid) -> AppResult<OrgAccess> {
    let (session, membership) = app
        .store
        .session_in_org(&token_hash, domain::now(), org_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if session
        .token_organization_id
        .is_some_and(|scoped| scoped != org_id)
    {
        return Err(AppError::NotFound);
    }
    let membership = membership.ok_or(AppError::NotFound)?;
    // An API key stops working when the organization leaves the BUSINESS plan.
    if session.token_organization_id.is_some() && membership.organization.plan != Plan::Business {
        return Err(AppError::PlanRequired(super::api_keys::PLAN_MESSAGE));
    }
    Ok(OrgAccess {
        user_id: session.user.id,
        membership,
        token_hash: Some(token_hash),
    })
}

/// Creates an organization owned by `owner_id`; with no slug, one is derived from the name
/// (with a random suffix when the plain one is taken).
pub async fn create(
    app: &App,
    owner_id: Uuid,
    name: &str,
    slug: Option<&str>,
    plan: Plan,
) -> AppResult<Membership> {
    let name = OrgName::parse(name)?;
    let (base, explicit) = match slug {
        Some(slug) => (Slug::parse(slug)?, true),
        None => (Slug::from_name(&name), false),
    };
    let mut attempt = base.clone();
    for _ in 0..4 {
        let result = app
            .store
            .insert_organization(&NewOrganization {
                id: domain::new_id(),
                name: name.as_str().to_owned(),
                slug: attempt.as_str().to_owned(),
                plan,
                owner_id,
                created_at: domain::now(),
            })
            .await;
        match result {
            Ok(organization) => {
                tracing::info!(org_id = %organization.id, "organization created");
                return Ok(Membership {
                    organization,
                    role: Role::Owner,
                });
            }
            Err(StoreError::Conflict(crate::store::Constraint::OrganizationSlug)) if !explicit => {
                attempt = base.with_suffix(&random_suffix());
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::conflict(
        "could not find a free slug; choose one",
        Some("slug"),
    ))
}

fn random_suffix() -> String {
    let id = Uuid::new_v4().simple().to_string();
    id[..6].to_owned()
}

pub async fn list(app: &App, session: &Session) -> AppResult<Vec<Membership>> {
    let mut memberships = app.store.memberships(session.user.id).await?;
    if let Some(scoped) = session.token_organization_id {
        memberships.retain(|m| m.organization.id == scoped);
    }
    Ok(memberships)
}

pub struct OrgChanges<'a> {
    pub name: Option<&'a str>,
    pub slug: Option<&'a str>,
}

/// Renames an organization or changes its slug (ADMIN or OWNER).
pub async fn update(app: &App, access: &OrgAccess, changes: OrgChanges<'_>) -> AppResult<Membership> {
    access.require(Role::Admin)?;
    let update = OrganizationUpdate {
        name: changes
            .name
            .map(OrgName::parse)
            .transpose()?
            .map(|n| n.as_str().to_owned()),
        slug: changes
            .slug
            .map(Slug::parse)
            .transpose()?
            .map(|s| s.as_str().to_owned()),
        plan: None,
        updated_at: Some(domain::now()),
    };
    let organization = app.store.update_organization(access.org_id(), &update).await?;
    Ok(Membership {
        organization,
        role: access.role(),
    })
}

/// Changes an organization's plan; operators only (`snorq admin`), there is no billing here.
pub async fn set_plan(app: &App, org_id: Uuid, plan: Plan) -> AppResult<Organization> {
    let update = OrganizationUpdate {
        plan: Some(plan),
        updated_at: Some(domain::now()),
        ..OrganizationUpdate::default()
    };
    Ok(app.store.update_organization(org_id, &update).await?)
}

pub async fn members(app: &App, access: &OrgAccess) -> AppResult<Vec<Member>> {
    Ok(app.store.members(access.org_id()).await?)
}

/// Adds a member without a caller's role check (the CLI). Seat limits still apply.
pub async fn add_member_as_operator(app: &App, org_id: Uuid, email: &str, role: Role) -> AppResult<Member> {
    if role == Role::Owner {
        return Err(crate::domain::Invalid::new(
            "role",
            "a new member cannot be the owner; add them, then transfer ownership",
        )
        .into());
    }
    let email = Email::parse(email)?;
    let user = app
        .store
        .user_credentials(&email.normalized())
        .await?
        .ok_or_else(|| {
            crate::domain::Invalid::new("email", "no user has this email; they must sign up first")
        })?
        .user;
    Ok(app.store.add_member(org_id, user.id, role, domain::now()).await?)
}

/// Changes a member's role. Setting `owner` transfers ownership (owner only; the previous owner
/// becomes an admin). The owner's own role changes only through such a transfer.
pub async fn set_role(app: &App, access: &OrgAccess, user_id: Uuid, role: Role) -> AppResult<Member> {
    let target = app
        .store
        .member(access.org_id(), user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if role == Role::Owner {
        access.require(Role::Owner)?;
        if target.role == Role::Owner {
            return Ok(target);
        }
        app.store
            .transfer_ownership(access.org_id(), access.user_id, user_id, domain::now())
            .await?;
        tracing::info!(org_id = %access.org_id(), %user_id, "ownership transferred");
        return app
            .store
            .member(access.org_id(), user_id)
            .await?
            .ok_or(AppError::NotFound);
    }
    access.require(Role::Admin)?;
    if target.role == Role::Owner {
        return Err(AppError::conflict(
            "the owner's role changes only by transferring ownership to another member",
            Some("role"),
        ));
    }
    Ok(app.store.set_member_role(access.org_id(), user_id, role).await?)
}

/// Removes a member (ADMIN or OWNER), or lets a member leave. The owner cannot be removed.
pub async fn remove_member(app: &App, access: &OrgAccess, user_id: Uuid) -> AppResult<()> {
    if user_id != access.user_id {
        access.require(Role::Admin)?;
    }
    let target = app
        .store
        .member(access.org_id(), user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if target.role == Role::Owner {
        return Err(AppError::conflict(
            "the owner cannot be removed; transfer ownership first",
            None,
        ));
    }
    if app.store.remove_member(access.org_id(), user_id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}
