//! Dashboard sign-in: the same accounts as the API, with sessions of their own (stored
//! server-side, revocable, and never usable as an API token), carried in an HttpOnly,
//! SameSite=Strict cookie scoped to `/dashboard`, `Secure` when the service is on https. Every form carries a CSRF token derived from
//! the session (so nothing extra is stored); the login form, which has no session yet, uses a
//! double-submit cookie.

use crate::http::cookies::SameSite;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
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
        let session = auth::authenticate_dashboard(&state.app, &token)
            .await
            .map_err(|err| match err {
                crate::app::AppError::Unauthorized => Rejection::Login,
                other => Rejection::Other(other.into_response()),
            })?;
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
    crate::http::cookies::cookie(headers, name)
}

/// `Set-Cookie` for a dashboard cookie (`SameSite=Strict`, path `/dashboard`, `Secure` when
/// configured); `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    crate::http::cookies::set_cookie(name, value, "/dashboard", SameSite::Strict, max_age_secs, secure)
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
}
