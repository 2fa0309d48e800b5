//! What the job dashboard shows and may do, for one signed-in user: the organizations they
//! administer (ADMIN or OWNER), and for operators (configured emails) also the webhooks that
//! reached no organization.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Timelike, Utc};
use uuid::Uuid;

use crate::domain::{self, Role};
use crate::store::{
    Connection, HourlyOutcome, Membership, ReplayFilter, SendChange, SendFilter, SendRecord, Session,
    WebhookSummary,
};

use super::ingest::{self, ReplayReport};
use super::sends::{self, BulkRetry, SendPage};
use super::{App, AppError, AppResult};

/// The signed-in user's reach in the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardScope {
    pub user_name: String,
    pub organizations: Vec<Membership>,
    pub operator: bool,
}

impl DashboardScope {
    pub fn organization_ids(&self) -> Vec<Uuid> {
        self.organizations.iter().map(|m| m.organization.id).collect()
    }

    pub fn organization_name(&self, id: Uuid) -> &str {
        self.organizations
            .iter()
            .find(|m| m.organization.id == id)
            .map_or("?", |m| m.organization.name.as_str())
    }

    /// The organizations in scope, narrowed to one when asked (and allowed).
    pub fn narrowed(&self, organization: Option<Uuid>) -> Vec<Uuid> {
        match organization {
            Some(id) => self.organization_ids().into_iter().filter(|o| *o == id).collect(),
            None => self.organization_ids(),
        }
    }

    fn administers(&self, organization: Uuid) -> AppResult<()> {
        if self
            .organizations
            .iter()
            .any(|m| m.organization.id == organization)
        {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

/// `Forbidden` unless the user administers an organization or is an operator.
pub async fn scope(app: &App, session: &Session) -> AppResult<DashboardScope> {
    let organizations: Vec<Membership> = app
        .store
        .memberships(session.user.id)
        .await?
        .into_iter()
        .filter(|m| m.role >= Role::Admin)
        .collect();
    let operator = app
        .settings
        .operator_emails
        .iter()
        .any(|e| *e == session.user.email.to_lowercase());
    if organizations.is_empty() && !operator {
        return Err(AppError::Forbidden(
            "the dashboard is for organization owners and admins",
        ));
    }
    Ok(DashboardScope {
        user_name: session.user.name.clone(),
        organizations,
        operator,
    })
}

pub async fn sends_page(app: &App, filter: &SendFilter, cursor: Option<&str>) -> AppResult<SendPage> {
    sends::list(app, filter, cursor, Some(sends::MAX_PAGE)).await
}

/// One send of an organization the user administers, with its attempts.
pub async fn send_detail(
    app: &App,
    scope: &DashboardScope,
    organization: Uuid,
    id: Uuid,
) -> AppResult<(SendRecord, Vec<crate::store::SendAttempt>)> {
    scope.administers(organization)?;
    sends::get_with_attempts(app, organization, id).await
}

pub async fn retry(
    app: &App,
    scope: &DashboardScope,
    organization: Uuid,
    id: Uuid,
    confirm: bool,
) -> AppResult<SendRecord> {
    scope.administers(organization)?;
    sends::retry_one(app, organization, id, confirm).await
}

pub async fn discard(
    app: &App,
    scope: &DashboardScope,
    organization: Uuid,
    id: Uuid,
) -> AppResult<SendRecord> {
    scope.administers(organization)?;
    match app.store.discard_send(organization, id, domain::now()).await? {
        SendChange::Changed(record) => Ok(record),
        SendChange::WrongState(_) => Err(AppError::conflict(
            "only pending or failed sends can be discarded",
            None,
        )),
        SendChange::NotFound => Err(AppError::NotFound),
    }
}

pub async fn retry_matching(app: &App, filter: &SendFilter, confirm: bool) -> AppResult<BulkRetry> {
    sends::retry_matching(app, filter, confirm).await
}

/// Webhooks needing attention: the user's organizations', and every one for operators.
pub async fn webhooks(app: &App, scope: &DashboardScope) -> AppResult<Vec<WebhookSummary>> {
    let ids = scope.organization_ids();
    let organizations = (!scope.operator).then_some(ids.as_slice());
    Ok(app.store.webhooks_needing_attention(organizations, 200).await?)
}

/// Applies a stored webhook again (after the missing connection was added, or a fix).
pub async fn replay(app: &App, scope: &DashboardScope, id: Uuid) -> AppResult<ReplayReport> {
    let webhook = app.store.webhook_summary(id).await?.ok_or(AppError::NotFound)?;
    match webhook.organization_id {
        _ if scope.operator => {}
        Some(org) => scope.administers(org)?,
        None => return Err(AppError::NotFound),
    }
    let filter = ReplayFilter {
        id: Some(id),
        include_processed: true,
        ..ReplayFilter::default()
    };
    ingest::replay(app.store.as_ref(), &filter, |_| {}).await
}

/// A connection with its organization's name and its failed sends.
#[derive(Debug, Clone)]
pub struct ConnectionHealth {
    pub connection: Connection,
    pub organization: String,
    pub failed_sends: i64,
}

pub async fn connections(app: &App, scope: &DashboardScope) -> AppResult<Vec<ConnectionHealth>> {
    let ids = scope.organization_ids();
    let failed: HashMap<Uuid, i64> = app
        .store
        .failed_sends_by_connection(&ids)
        .await?
        .into_iter()
        .collect();
    let mut out = Vec::new();
    for membership in &scope.organizations {
        for connection in app.store.connections(membership.organization.id).await? {
            out.push(ConnectionHealth {
                failed_sends: failed.get(&connection.id).copied().unwrap_or(0),
                organization: membership.organization.name.clone(),
                connection,
            });
        }
    }
    Ok(out)
}

/// Provider calls of one hour, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourBucket {
    pub hour: DateTime<Utc>,
    pub sent: i64,
    pub retried: i64,
    pub failed: i64,
}

/// The last 24 hours of send outcomes, one bucket per hour, oldest first (empty hours
/// included).
pub async fn last_day(app: &App, scope: &DashboardScope) -> AppResult<Vec<HourBucket>> {
    let now = domain::now();
    let current = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let first = current - Duration::hours(23);
    let rows = app
        .store
        .hourly_outcomes(&scope.organization_ids(), first)
        .await?;
    Ok(buckets(first, &rows))
}

fn buckets(first: DateTime<Utc>, rows: &[HourlyOutcome]) -> Vec<HourBucket> {
    let mut out: Vec<HourBucket> = (0..24)
        .map(|i| HourBucket {
            hour: first + Duration::hours(i),
            ..HourBucket::default()
        })
        .collect();
    for row in rows {
        let Some(bucket) = out
            .iter_mut()
            .find(|b| b.hour.format("%Y-%m-%dT%H").to_string() == row.hour)
        else {
            continue;
        };
        match row.outcome.as_str() {
            "sent" => bucket.sent += row.count,
            "retry" => bucket.retried += row.count,
            _ => bucket.failed += row.count,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_land_in_their_hour_and_empty_hours_stay() {
        let first = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let row = |hour: &str, outcome: &str, count| HourlyOutcome {
            hour: hour.into(),
            outcome: outcome.into(),
            count,
        };
        let buckets = buckets(
            first,
            &[
                row("2026-11-21T10", "sent", 5),
                row("2026-11-21T10", "failed", 1),
                row("2026-11-22T09", "retry", 2),
                row("2026-11-20T09", "sent", 99),
            ],
        );
        assert_eq!(buckets.len(), 24);
        assert_eq!((buckets[0].sent, buckets[0].failed), (5, 1));
        assert_eq!(buckets[23].retried, 2);
        assert_eq!(buckets.iter().map(|b| b.sent).sum::<i64>(), 5);
    }
}
