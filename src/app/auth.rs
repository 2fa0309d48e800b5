//! Accounts and sessions: signup, login, logout, and resolving a bearer token.

use std::net::IpAddr;

use crate::crypto::tokens::{IssuedToken, hash_token};
use crate::domain::{self, DisplayName, Email, Password};
use crate::store::{NewApiToken, NewUser, Session, TokenKind, User};

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

/// Hashes a password on the hashing pool; `Busy` (503) when the pool's queue is full.
pub async fn hash_password(app: &App, password: Password) -> AppResult<String> {
    app.hasher
        .hash(password)
        .await
        .map_err(|_| busy())?
        .map_err(AppError::internal)
}

fn busy() -> AppError {
    AppError::Busy {
        message: "too many password checks at once; try again in a moment",
        retry_after_secs: 1,
    }
}

/// Creates a user with an argon2id password hash. Used by `snorq admin create-user` (which
/// may say that the email is taken: an operator runs it).
pub async fn register_user(app: &App, account: NewAccount<'_>) -> AppResult<User> {
    let email = Email::parse(account.email)?;
    let name = DisplayName::parse(account.name)?;
    let password = Password::parse(account.password)?;
    let hash = hash_password(app, password).await?;
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

/// Self-service signup (when enabled), limited per client address. The answer is the same
/// whether the email was free (an account is created: sign in with the password) or already
/// registered (nothing changes), so signup cannot be used to learn who has an account. Both
/// paths hash the password, so they take the same time too.
pub async fn signup(app: &App, account: NewAccount<'_>, client: Option<IpAddr>) -> AppResult<()> {
    if !app.settings.signup_enabled {
        return Err(AppError::SignupDisabled);
    }
    if let Some(client) = client {
        app.signup_limiter
            .check_key(&client)
            .map_err(|not_until| AppError::RateLimited {
                retry_after_secs: not_until
                    .wait_time_from(governor::clock::Clock::now(
                        &governor::clock::DefaultClock::default(),
                    ))
                    .as_secs()
                    .max(1),
            })?;
    }
    match register_user(app, account).await {
        Ok(_) => Ok(()),
        Err(AppError::Conflict {
            field: Some("email"), ..
        }) => {
            tracing::info!("signup with a registered email: answered as a new signup");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// Checks the password and starts an API session. Unknown email and wrong password take the
/// same path (an argon2 verification either way) and give the same error. Only failures count
/// towards the sign-in limits (see `login_limiter`).
pub async fn login(app: &App, email: &str, password: &str, client: Option<IpAddr>) -> AppResult<LoggedIn> {
    let user = check_password(app, email, password, client).await?;
    start_session(app, user).await
}

/// [`login`] for the dashboard: a dashboard session, whose cookie is not an API token.
pub async fn login_dashboard(
    app: &App,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> AppResult<LoggedIn> {
    let user = check_password(app, email, password, client).await?;
    let token = IssuedToken::generate();
    let now = domain::now();
    app.store
        .insert_api_token(&NewApiToken {
            id: domain::new_id(),
            token_hash: dashboard_hash(token.expose()),
            user_id: user.id,
            organization_id: None,
            kind: TokenKind::Dashboard,
            name: None,
            created_at: now,
            expires_at: Some(now + app.settings.session_ttl),
        })
        .await?;
    Ok(LoggedIn { token, user })
}

/// A dashboard cookie is looked up under its own prefix: the same text as a bearer token finds
/// nothing, and a bearer token sent as the cookie finds nothing either.
fn dashboard_hash(cookie: &str) -> String {
    hash_token(&format!("dashboard:{cookie}"))
}

/// Resolves a dashboard cookie to its session; `Unauthorized` for unknown, signed-out or
/// expired ones.
pub async fn authenticate_dashboard(app: &App, cookie: &str) -> AppResult<Session> {
    app.store
        .session(&dashboard_hash(cookie), domain::now())
        .await?
        .ok_or(AppError::Unauthorized)
}

async fn check_password(app: &App, email: &str, password: &str, client: Option<IpAddr>) -> AppResult<User> {
    // Not an address at all: no account can match, and the text must not become a limiter key.
    let Ok(email) = Email::parse(email) else {
        return Err(AppError::InvalidCredentials);
    };
    let normalized = email.normalized();
    app.login_limiter.check(&normalized, client)?;
    let credentials = app.store.user_credentials(&normalized).await?;
    let stored_hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let matched = app
        .hasher
        .verify(password, stored_hash)
        .await
        .map_err(|_| busy())?;
    match credentials {
        Some(credentials) if matched => {
            app.login_limiter.succeeded(&normalized, client);
            Ok(credentials.user)
        }
        _ => {
            app.login_limiter.failed(&normalized, client);
            tracing::info!("login failed");
            Err(AppError::InvalidCredentials)
        }
    }
}

pub(crate) async fn start_session(app: &App, user: User) -> AppResult<LoggedIn> {
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

/// Revokes the session's token; later requests with it answer 401.
pub async fn logout(app: &App, session: &Session) -> AppResult<()> {
    app.store
        .revoke_api_token(session.token_id, domain::now())
        .await?;
    Ok(())
}
