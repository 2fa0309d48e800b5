//! Dashboard sign-in: the same accounts and session tokens as the API, carried in an HttpOnly,
//! SameSite=Strict cookie scoped to `/dashboard`. Every form carries a CSRF token derived from
//! the session (so nothing extra is stored); the login form, which has no session yet, uses a
//! double-submit cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::auth;
use crate::app::dashboard::{self, DashboardScope};
use crate::http::AppState;
use crate::store::Session;

pub const SESSION_COOKIE: &str = "snorq_dashboard";
pub const LOGIN_CSRF_COOKIE: &str = "snorq_dashboard_login";

/// A signed-in dashboard user allowed to use it.
pub struct DashboardUser {
    pub session: Session,
    pub scope: DashboardScope,
    /// This session's CSRF token, for the forms of the page.
    pub csrf: String,
}

impl DashboardUser {
    /// Whether a submitted form carries this session's token.
    pub fn check_csrf(&self, submitted: &str) -> bool {
        same(&self.csrf, submitted)
    }
}

/// Anything but a usable session sends the browser to the login page; a signed-in user who
/// administers nothing sees why.
pub enum Rejection {
    Login,
    Forbidden(String),
    Other(Response),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Login => Redirect::to("/dashboard/login").into_response(),
            Rejection::Forbidden(message) => super::views::forbidden(&message),
            Rejection::Other(response) => response,
        }
    }
}

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(Rejection::Login)?;
        let session = auth::authenticate(&state.app, &token)
            .await
            .map_err(|err| match err {
                crate::app::AppError::Unauthorized => Rejection::Login,
                other => Rejection::Other(other.into_response()),
            })?;
        // Organization API keys are for programs, not for signing in here.
        if session.token_organization_id.is_some() {
            return Err(Rejection::Login);
        }
        let scope = dashboard::scope(&state.app, &session)
            .await
            .map_err(|err| match err {
                crate::app::AppError::Forbidden(message) => Rejection::Forbidden(message.to_owned()),
                other => Rejection::Other(other.into_response()),
            })?;
        Ok(DashboardUser {
            csrf: csrf_for(&token),
            session,
            scope,
        })
    }
}

/// The CSRF token of a session: a hash of its token (which never appears in a page).
fn csrf_for(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"snorq-dashboard-csrf:")
        .chain_update(session_token.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

pub fn same(expected: &str, submitted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A random value for the login form's double-submit check.
pub fn new_login_csrf() -> String {
    let mut bytes = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a dashboard cookie; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let text = format!("{name}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_compared_whole() {
        let a = csrf_for("snq_session_a");
        assert_eq!(a, csrf_for("snq_session_a"));
        assert_ne!(a, csrf_for("snq_session_b"));
        assert!(!a.contains("snq_session_a"));
        assert!(same(&a, &a));
        assert!(!same(&a, &a[..a.len() - 1]));
        assert!(!same("", ""));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; snorq_dashboard=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
        let set = set_cookie(SESSION_COOKIE, "tok", 60);
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/dashboard")
        );
    }
}
