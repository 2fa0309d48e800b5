//! `/dashboard`: the job dashboard. Server-rendered HTML (askama, compiled in), one embedded
//! stylesheet, no script and nothing loaded from elsewhere, so it works offline. Sign-in with
//! the same accounts as the API; owners and admins only.

mod session;
mod views;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use snorq_connectors::Platform;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::extract::ClientAddr;
use crate::app::dashboard::{self, DashboardScope};
use crate::app::{AppError, auth, sends};
use crate::store::{SendFilter, SendStatusFilter};
use session::{DashboardUser, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use views::{
    Chart, Choice, ConnectionRow, ConnectionsPage, Frame, LoginPage, OverviewPage, SendRow, SendsPage,
    WebhookRow, WebhooksPage, render,
};

const STYLE: &str = include_str!("style.css");
/// Rows counted for the overview tiles (one page of the sends list).
const TILE_PAGE: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(overview_slash))
        .routes(routes!(login_form, login))
        .routes(routes!(logout))
        .routes(routes!(style))
        .routes(routes!(sends))
        .routes(routes!(retry_matching))
        .routes(routes!(send))
        .routes(routes!(retry))
        .routes(routes!(discard))
        .routes(routes!(webhooks))
        .routes(routes!(replay))
        .routes(routes!(connections))
}

#[utoipa::path(get, path = "/dashboard/", tag = "dashboard", responses((status = 308, description = "to /dashboard")))]
async fn overview_slash() -> Redirect {
    Redirect::permanent("/dashboard")
}

#[utoipa::path(get, path = "/dashboard/assets/style.css", tag = "dashboard", responses((status = 200, content_type = "text/css", description = "the stylesheet")))]
async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

fn frame(user: &DashboardUser, nav: &'static str, notice: Option<String>) -> Frame {
    Frame {
        user: user.scope.user_name.clone(),
        csrf: user.csrf.clone(),
        nav,
        notice,
    }
}

/// An error on a page: the problem as a short page (never a stack of details).
fn error_page(err: AppError) -> Response {
    let message = match &err {
        AppError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    };
    // The API's status for the same error (and its logging of internal errors).
    let status = StatusCode::from_u16(super::error::Problem::from(err).status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = render(&views::MessagePage {
        title: "Something went wrong",
        message: &message,
    });
    *response.status_mut() = status;
    response
}

fn csrf_failed() -> Response {
    let mut response = render(&views::MessagePage {
        title: "Form expired",
        message: "This form was not sent from the current dashboard session. Go back, reload the page and try again.",
    });
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NoticeQuery {
    notice: Option<String>,
}

// --- sign-in ---

/// The sign-in form.
#[utoipa::path(get, path = "/dashboard/login", tag = "dashboard", responses((status = 200, content_type = "text/html", description = "the form")))]
async fn login_form(State(state): State<AppState>) -> Response {
    let csrf = session::new_login_csrf();
    login_page(&state, csrf, String::new(), None, StatusCode::OK)
}

fn login_page(
    state: &AppState,
    csrf: String,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let mut response = render(&LoginPage {
        csrf: csrf.clone(),
        email,
        error,
    });
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, secure(state)),
    );
    response
}

/// Whether the dashboard's cookies are `Secure` (`cookie_secure`, by default when `public_url`
/// is https).
fn secure(state: &AppState) -> bool {
    state.app.settings.security.cookie_secure
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

/// Signs in (form: email, password, csrf); sets the session cookie.
#[utoipa::path(post, path = "/dashboard/login", tag = "dashboard", responses((status = 303, description = "to the dashboard"), (status = 401, content_type = "text/html", description = "wrong email or password"), (status = 403, content_type = "text/html", description = "bad CSRF token")))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !session::same(&expected, &form.csrf) {
        return login_page(
            &state,
            session::new_login_csrf(),
            form.email,
            Some("The sign-in form expired; please try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    match auth::login_dashboard(&state.app, &form.email, &form.password, client).await {
        Ok(logged_in) => {
            let ttl = state.app.settings.session_ttl.num_seconds();
            let mut response = Redirect::to("/dashboard").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                session::set_cookie(SESSION_COOKIE, logged_in.token.expose(), ttl, secure(&state)),
            );
            headers.append(
                header::SET_COOKIE,
                session::set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure(&state)),
            );
            response
        }
        Err(err) => {
            let status = match err {
                AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            login_page(
                &state,
                session::new_login_csrf(),
                form.email,
                Some(err.to_string()),
                status,
            )
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CsrfForm {
    csrf: String,
}

/// Signs out.
#[utoipa::path(post, path = "/dashboard/logout", tag = "dashboard", responses((status = 303, description = "to the sign-in page")))]
async fn logout(
    State(state): State<AppState>,
    user: DashboardUser,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !user.check_csrf(&form.csrf) {
        return csrf_failed();
    }
    if let Err(err) = auth::logout(&state.app, &user.session).await {
        return error_page(err);
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, "", 0, secure(&state)),
    );
    response
}

// --- pages ---

/// Overview: failed and pending sends, the 24 h outcome chart, connections needing attention.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard", responses((status = 200, content_type = "text/html", description = "the page"), (status = 303, description = "to the sign-in page")))]
async fn overview(
    State(state): State<AppState>,
    user: DashboardUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    match overview_page(&state, &user, q.notice).await {
        Ok(page) => render(&page),
        Err(err) => error_page(err),
    }
}

async fn overview_page(
    state: &AppState,
    user: &DashboardUser,
    notice: Option<String>,
) -> Result<OverviewPage, AppError> {
    let app = &state.app;
    let scope = &user.scope;
    let tile = TILE_PAGE + 1;
    let failed = sends::count_up_to(app, &filter(scope, Some(SendStatusFilter::Failed)), tile).await?;
    let pending = sends::count_up_to(app, &filter(scope, Some(SendStatusFilter::Pending)), tile).await?;
    let webhooks = dashboard::webhooks(app, scope).await?.len();
    let unhealthy = dashboard::connections(app, scope)
        .await?
        .iter()
        .filter(|c| c.connection.status != crate::domain::ConnectionStatus::Active)
        .count();
    let buckets = dashboard::last_day(app, scope).await?;
    let frame = frame(user, "overview", notice);
    Ok(OverviewPage {
        user: frame.user,
        csrf: frame.csrf,
        nav: frame.nav,
        notice: frame.notice,
        failed,
        failed_text: views::count_text(failed, TILE_PAGE),
        pending_text: views::count_text(pending, TILE_PAGE),
        webhooks,
        unhealthy,
        total_sent: buckets.iter().map(|b| b.sent).sum(),
        total_retried: buckets.iter().map(|b| b.retried).sum(),
        total_failed: buckets.iter().map(|b| b.failed).sum(),
        chart: Chart::new(&buckets),
        organizations: scope
            .organizations
            .iter()
            .map(|m| {
                format!(
                    "{} ({})",
                    m.organization.name,
                    format!("{:?}", m.role).to_lowercase()
                )
            })
            .collect(),
        operator: scope.operator,
    })
}

fn filter(scope: &DashboardScope, status: Option<SendStatusFilter>) -> SendFilter {
    SendFilter {
        organizations: scope.organization_ids(),
        status,
        ..SendFilter::default()
    }
}

/// The sends list's filters, from the query string (or the bulk-retry form).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct SendsQuery {
    status: Option<String>,
    org: Option<String>,
    platform: Option<String>,
    error_code: Option<String>,
    /// One connection's sends (its id).
    connection: Option<String>,
    /// A failure reason, e.g. `auth` (sends refused for a dead token).
    reason: Option<String>,
    age: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

const AGES: [(&str, &str); 5] = [
    ("", "Any time"),
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("older7d", "Older than 7 days"),
];

impl SendsQuery {
    fn status(&self) -> &str {
        match self.status.as_deref() {
            Some("pending") => "pending",
            Some("all") => "all",
            _ => "failed",
        }
    }

    fn to_filter(&self, scope: &DashboardScope) -> SendFilter {
        let org = self.org.as_deref().and_then(|o| Uuid::parse_str(o).ok());
        let now = Utc::now();
        let (since, until) = match self.age.as_deref() {
            Some("1h") => (Some(now - chrono::Duration::hours(1)), None),
            Some("24h") => (Some(now - chrono::Duration::hours(24)), None),
            Some("7d") => (Some(now - chrono::Duration::days(7)), None),
            Some("older7d") => (None, Some(now - chrono::Duration::days(7))),
            _ => (None, None),
        };
        SendFilter {
            organizations: scope.narrowed(org),
            status: match self.status() {
                "pending" => Some(SendStatusFilter::Pending),
                "all" => None,
                _ => Some(SendStatusFilter::Failed),
            },
            platform: self.platform.as_deref().and_then(|p| p.parse::<Platform>().ok()),
            error_code: self.error_code.clone().filter(|c| !c.trim().is_empty()),
            connection_id: self.connection.as_deref().and_then(|c| Uuid::parse_str(c).ok()),
            reason: self.reason.clone().filter(|r| !r.trim().is_empty()),
            since,
            until,
        }
    }

    /// This page's URL with its filters (and another cursor).
    fn url(&self, cursor: Option<&str>) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        url.append_pair("status", self.status());
        for (key, value) in [
            ("org", &self.org),
            ("platform", &self.platform),
            ("error_code", &self.error_code),
            ("connection", &self.connection),
            ("reason", &self.reason),
            ("age", &self.age),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                url.append_pair(key, value);
            }
        }
        if let Some(cursor) = cursor {
            url.append_pair("cursor", cursor);
        }
        format!("/dashboard/sends?{}", url.finish())
    }
}

/// Failed or pending sends, with filters (organization, platform, error code, age).
#[utoipa::path(get, path = "/dashboard/sends", tag = "dashboard", responses((status = 200, content_type = "text/html", description = "the page"), (status = 303, description = "to the sign-in page")))]
async fn sends(State(state): State<AppState>, user: DashboardUser, Query(q): Query<SendsQuery>) -> Response {
    let filter = q.to_filter(&user.scope);
    let page = match dashboard::sends_page(&state.app, &filter, q.cursor.as_deref()).await {
        Ok(page) => page,
        Err(err) => return error_page(err),
    };
    let status = q.status().to_owned();
    let (nav, heading) = match status.as_str() {
        "pending" => ("pending", "Pending and retrying sends"),
        "all" => ("failed", "All sends"),
        _ => ("failed", "Failed sends"),
    };
    let frame = frame(&user, nav, q.notice.clone());
    let selected_org = q.org.clone().unwrap_or_default();
    let selected_platform = q.platform.clone().unwrap_or_default();
    let selected_age = q.age.clone().unwrap_or_default();
    render(&SendsPage {
        user: frame.user,
        csrf: frame.csrf,
        nav: frame.nav,
        notice: frame.notice,
        heading,
        org_options: user
            .scope
            .organizations
            .iter()
            .map(|m| Choice {
                value: m.organization.id.to_string(),
                label: m.organization.name.clone(),
                selected: m.organization.id.to_string() == selected_org,
            })
            .collect(),
        platform_options: [Platform::WhatsApp, Platform::Facebook, Platform::TikTok]
            .into_iter()
            .map(|p| Choice {
                value: p.as_str().to_owned(),
                label: p.as_str().to_owned(),
                selected: p.as_str() == selected_platform,
            })
            .collect(),
        age_options: AGES
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
                selected: *value == selected_age,
            })
            .collect(),
        rows: page
            .sends
            .into_iter()
            .map(|s| SendRow::new(s, &user.scope))
            .collect(),
        next_page: page.next_cursor.as_deref().map(|c| q.url(Some(c))),
        back: q.url(None),
        status,
        org: selected_org,
        platform: selected_platform,
        error_code: q.error_code.clone().unwrap_or_default(),
        connection: q.connection.clone().unwrap_or_default(),
        reason: q.reason.clone().unwrap_or_default(),
        age: selected_age,
    })
}

/// One send with its attempt log.
#[utoipa::path(get, path = "/dashboard/sends/{org_id}/{message_id}", tag = "dashboard", params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path)), responses((status = 200, content_type = "text/html", description = "the page"), (status = 303, description = "to the sign-in page")))]
async fn send(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((org_id, message_id)): Path<(String, String)>,
) -> Response {
    let (Ok(org_id), Ok(message_id)) = (Uuid::parse_str(&org_id), Uuid::parse_str(&message_id)) else {
        return error_page(AppError::NotFound);
    };
    let (record, attempts) = match dashboard::send_detail(&state.app, &user.scope, org_id, message_id).await {
        Ok(found) => found,
        Err(err) => return error_page(err),
    };
    render(&views::SendPage::new(
        frame(&user, "failed", None),
        record,
        attempts,
        &user.scope,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ActionForm {
    csrf: String,
    back: Option<String>,
    /// The agent accepts that a send whose outcome is unknown may arrive twice.
    confirm: Option<String>,
}

/// A checked confirmation box.
fn confirmed(value: Option<&str>) -> bool {
    value == Some("true")
}

/// Back to the page the action came from (only ever a dashboard page).
fn back_to(back: Option<&str>, notice: &str) -> Response {
    let base = back
        .filter(|b| b.starts_with("/dashboard/") && !b.starts_with("//"))
        .unwrap_or("/dashboard/sends?status=failed");
    let separator = if base.contains('?') { '&' } else { '?' };
    let notice: String = url::form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{base}{separator}notice={notice}")).into_response()
}

fn ids(org_id: &str, message_id: &str) -> Option<(Uuid, Uuid)> {
    Some((Uuid::parse_str(org_id).ok()?, Uuid::parse_str(message_id).ok()?))
}

/// What a row's button does.
#[derive(Clone, Copy)]
enum RowAction {
    Retry,
    Discard,
}

/// Retries a failed send.
#[utoipa::path(post, path = "/dashboard/sends/{org_id}/{message_id}/retry", tag = "dashboard", params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path)), responses((status = 303, description = "back to the page, with a notice"), (status = 403, content_type = "text/html", description = "bad CSRF token")))]
async fn retry(
    state: State<AppState>,
    user: DashboardUser,
    path: Path<(String, String)>,
    form: axum::Form<ActionForm>,
) -> Response {
    row_action(state, user, path, form, RowAction::Retry).await
}

/// Discards a send.
#[utoipa::path(post, path = "/dashboard/sends/{org_id}/{message_id}/discard", tag = "dashboard", params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path)), responses((status = 303, description = "back to the page, with a notice"), (status = 403, content_type = "text/html", description = "bad CSRF token")))]
async fn discard(
    state: State<AppState>,
    user: DashboardUser,
    path: Path<(String, String)>,
    form: axum::Form<ActionForm>,
) -> Response {
    row_action(state, user, path, form, RowAction::Discard).await
}

async fn row_action(
    State(state): State<AppState>,
    user: DashboardUser,
    Path((org_id, message_id)): Path<(String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
    action: RowAction,
) -> Response {
    if !user.check_csrf(&form.csrf) {
        return csrf_failed();
    }
    let Some((org_id, message_id)) = ids(&org_id, &message_id) else {
        return error_page(AppError::NotFound);
    };
    let (done, notice) = match action {
        RowAction::Retry => (
            dashboard::retry(
                &state.app,
                &user.scope,
                org_id,
                message_id,
                confirmed(form.confirm.as_deref()),
            )
            .await,
            "Retry queued: the platform will be called again.",
        ),
        RowAction::Discard => (
            dashboard::discard(&state.app, &user.scope, org_id, message_id).await,
            "Send discarded.",
        ),
    };
    match done {
        Ok(_) => back_to(form.back.as_deref(), notice),
        Err(err) => error_page(err),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct BulkForm {
    csrf: String,
    confirm: Option<String>,
    #[serde(flatten)]
    filter: SendsQuery,
}

/// Retries every failed send matching the filter.
#[utoipa::path(post, path = "/dashboard/sends/retry", tag = "dashboard", responses((status = 303, description = "back to the page, with a notice"), (status = 403, content_type = "text/html", description = "bad CSRF token")))]
async fn retry_matching(
    State(state): State<AppState>,
    user: DashboardUser,
    axum::Form(form): axum::Form<BulkForm>,
) -> Response {
    if !user.check_csrf(&form.csrf) {
        return csrf_failed();
    }
    let filter = SendFilter {
        status: Some(SendStatusFilter::Failed),
        ..form.filter.to_filter(&user.scope)
    };
    match dashboard::retry_matching(&state.app, &filter, confirmed(form.confirm.as_deref())).await {
        Ok(result) => {
            let more = if result.more {
                " More match: run it again."
            } else {
                ""
            };
            back_to(
                Some(&form.filter.url(None)),
                &format!("{} sends queued for retry.{more}", result.retried),
            )
        }
        Err(err) => error_page(err),
    }
}

/// Webhooks needing attention (unroutable, failed, partial).
#[utoipa::path(get, path = "/dashboard/webhooks", tag = "dashboard", responses((status = 200, content_type = "text/html", description = "the page"), (status = 303, description = "to the sign-in page")))]
async fn webhooks(
    State(state): State<AppState>,
    user: DashboardUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    match dashboard::webhooks(&state.app, &user.scope).await {
        Ok(rows) => {
            let frame = frame(&user, "webhooks", q.notice);
            render(&WebhooksPage {
                user: frame.user,
                csrf: frame.csrf,
                nav: frame.nav,
                notice: frame.notice,
                rows: rows
                    .into_iter()
                    .map(|w| WebhookRow::new(w, &user.scope))
                    .collect(),
            })
        }
        Err(err) => error_page(err),
    }
}

/// Applies a stored webhook again.
#[utoipa::path(post, path = "/dashboard/webhooks/{webhook_id}/replay", tag = "dashboard", params(("webhook_id" = Uuid, Path)), responses((status = 303, description = "back to the page, with a notice"), (status = 403, content_type = "text/html", description = "bad CSRF token")))]
async fn replay(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(webhook_id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !user.check_csrf(&form.csrf) {
        return csrf_failed();
    }
    let Ok(webhook_id) = Uuid::parse_str(&webhook_id) else {
        return error_page(AppError::NotFound);
    };
    match dashboard::replay(&state.app, &user.scope, webhook_id).await {
        Ok(report) => {
            let outcome = if report.processed > 0 {
                "applied"
            } else if report.unroutable > 0 {
                "still unroutable (is the account connected?)"
            } else {
                "still failing"
            };
            back_to(
                Some("/dashboard/webhooks"),
                &format!("Webhook replayed: {outcome}."),
            )
        }
        Err(err) => error_page(err),
    }
}

/// Connection health.
#[utoipa::path(get, path = "/dashboard/connections", tag = "dashboard", responses((status = 200, content_type = "text/html", description = "the page"), (status = 303, description = "to the sign-in page")))]
async fn connections(State(state): State<AppState>, user: DashboardUser) -> Response {
    match dashboard::connections(&state.app, &user.scope).await {
        Ok(rows) => {
            let frame = frame(&user, "connections", None);
            render(&ConnectionsPage {
                user: frame.user,
                csrf: frame.csrf,
                nav: frame.nav,
                notice: frame.notice,
                rows: rows.into_iter().map(ConnectionRow::from).collect(),
            })
        }
        Err(err) => error_page(err),
    }
}
