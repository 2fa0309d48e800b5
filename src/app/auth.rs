//! Accounts and sessions: signup, login, logout, and resolving a bearer token.

use std::net::IpAddr;

use crate::crypto::password;
use crate::crypto::tokens::{IssuedToken, hash_token};
use crate::domain::{self, DisplayName, Email, Password};
use crate::store::{Membership, NewApiToken, NewUser, Session, TokenKind, User};
use uuid::Uuid;

use super::{App, AppError, AppResult};

/// A new session: the token text (shown once) and its user.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: IssuedToken,
    pub user: User,
}

pub struct NewAccount<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
}

/// Creates a user with an argon2id password hash. Used by signup and by `snorq admin create-user`.
pub async fn register_user(app: &App, account: NewAccount<'_>) -> AppResult<User> {
    let email = Email::parse(account.email)?;
    let name = DisplayName::parse(account.name)?;
    let password = Password::parse(account.password)?;
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let user = app
        .store
        .insert_user(&NewUser {
            id: domain::new_id(),
            email: email.as_str().to_owned(),
            email_normalized: email.normalized(),
            name: name.as_str().to_owned(),
            password_hash: Some(hash),
            created_at: domain::now(),
        })
        .await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

/// Self-service signup (when enabled): registers the user and logs them in.
pub async fn signup(app: &App, account: NewAccount<'_>) -> AppResult<LoggedIn> {
    if !app.settings.signup_enabled {
        return Err(AppError::SignupDisabled);
    }
    let user = register_user(app, account).await?;
    start_session(app, user).await
}

/// Checks the password and starts a session. Unknown email and wrong password take the same
/// path (an argon2 verification either way) and give the same error.
pub async fn login(app: &App, email: &str, password: &str, client: Option<IpAddr>) -> AppResult<LoggedIn> {
    // Not an address at all: no account can match, and the text must not become a limiter key.
    let Ok(email) = Email::parse(email) else {
        return Err(AppError::InvalidCredentials);
    };
    let normalized = email.normalized();
    app.login_limiter.check(&normalized, client)?;
    let credentials = app.store.user_credentials(&normalized).await?;
    let stored_hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let password = password.to_owned();
    let matched = tokio::task::spawn_blocking(move || password::verify(&password, stored_hash.as_deref()))
        .await
        .map_err(AppError::internal)?;
    match credentials {
        Some(credentials) if matched => start_session(app, credentials.user).await,
        _ => {
            tracing::info!("login failed");
            Err(AppError::InvalidCredentials)
        }
    }
}

async fn start_session(app: &App, user: User) -> AppResult<LoggedIn> {
    let token = IssuedToken::generate();
    let now = domain::now();
    app.store
        .insert_api_token(&NewApiToken {
            id: domain::new_id(),
            token_hash: token.hash(),
            user_id: user.id,
            organization_id: None,
            kind: TokenKind::Session,
            name: None,
            created_at: now,
            expires_at: Some(now + app.settings.session_ttl),
        })
        .await?;
    Ok(LoggedIn { token, user })
}

/// Resolves a bearer token to its session; `Unauthorized` for unknown, revoked or expired ones.
pub async fn authenticate(app: &App, bearer: &str) -> AppResult<Session> {
    app.store
        .session(&hash_token(bearer), domain::now())
        .await?
        .ok_or(AppError::Unauthorized)
}

/// Resolves a bearer token to its session and its user's membership of `org_id` (`None` when
/// not a member); `Unauthorized` as [`authenticate`].
pub async fn authenticate_in_org(
    app: &App,
    bearer: &str,
    org_id: Uuid,
) -> AppResult<(Session, Option<Membership>)> {
    app.store
        .session_in_org(&hash_token(bearer), domain::now(), org_id)
        .await?
        .ok_or(AppError::Unauthorized)
}

/// Revokes the session's token; later requests with it answer 401.
pub async fn logout(app: &App, session: &Session) -> AppResult<()> {
    app.store
        .revoke_api_token(session.token_id, domain::now())
        .await?;
    Ok(())
}
