//! `/api/v1/auth/*` and `/api/v1/me`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Authenticated, ClientAddr, ValidJson};
use crate::app::auth::{self, LoggedIn, NewAccount};
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

#[derive(Serialize)]
pub struct UserBody {
    id: uuid::Uuid,
    email: String,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        UserBody {
            id: user.id,
            email: user.email,
            name: user.name,
            created_at: user.created_at,
        }
    }
}

#[derive(Serialize)]
struct SessionBody {
    token: String,
    user: UserBody,
}

impl From<LoggedIn> for SessionBody {
    fn from(logged_in: LoggedIn) -> Self {
        SessionBody {
            token: logged_in.token.expose().to_owned(),
            user: logged_in.user.into(),
        }
    }
}

async fn signup(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<SignupBody>,
) -> ApiResult<(StatusCode, axum::Json<SessionBody>)> {
    let account = NewAccount {
        email: &body.email,
        name: &body.name,
        password: &body.password,
    };
    let logged_in = auth::signup(&state.app, account).await?;
    Ok((StatusCode::CREATED, axum::Json(logged_in.into())))
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ValidJson(body): ValidJson<LoginBody>,
) -> ApiResult<axum::Json<SessionBody>> {
    let logged_in = auth::login(&state.app, &body.email, &body.password, client).await?;
    Ok(axum::Json(logged_in.into()))
}

async fn logout(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> ApiResult<StatusCode> {
    auth::logout(&state.app, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(Authenticated(session): Authenticated) -> axum::Json<UserBody> {
    axum::Json(session.user.into())
}
