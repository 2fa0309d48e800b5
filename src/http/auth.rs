//! `/api/v1/auth/*` and `/api/v1/me`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{Authenticated, ClientAddr, ValidJson};
use crate::app::auth::{self, LoggedIn, NewAccount};
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    #[schema(
        pattern = r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@.\x00-\x1f\x7f-\x9f][^\s@\x00-\x1f\x7f-\x9f]*\.[^\s@\x00-\x1f\x7f-\x9f]*[^\s@.\x00-\x1f\x7f-\x9f]$",
        max_length = 254,
        example = "ana@example.com"
    )]
    email: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 100,
        example = "Ana"
    )]
    name: String,
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery")]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
struct SessionBody {
    /// The login token: `Authorization: Bearer <token>`.
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

/// The answer to every accepted signup, whether the email was new or already registered.
#[derive(Serialize, ToSchema)]
struct SignupAcceptedBody {
    /// Always `accepted`.
    status: &'static str,
    detail: &'static str,
}

/// Creates an account when signup is open. The answer is the same whether the email was free
/// or already registered (so it cannot be used to learn who has an account): sign in with
/// `POST /auth/login` next. Limited per client address.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupBody,
    responses((status = 202, body = SignupAcceptedBody),
              (status = 400, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 403, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 415, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 422, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 429, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 503, body = ProblemSchema, content_type = "application/problem+json")))]
async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ValidJson(body): ValidJson<SignupBody>,
) -> ApiResult<(StatusCode, axum::Json<SignupAcceptedBody>)> {
    let account = NewAccount {
        email: &body.email,
        name: &body.name,
        password: &body.password,
    };
    auth::signup(&state.app, account, client).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SignupAcceptedBody {
            status: "accepted",
            detail: "if this email was not registered yet, the account is ready: sign in with its password",
        }),
    ))
}

/// Exchanges email and password for a login token (rate limited per email and address).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = SessionBody), (status = 401, body = ProblemSchema),
              (status = 429, body = ProblemSchema)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ValidJson(body): ValidJson<LoginBody>,
) -> ApiResult<axum::Json<SessionBody>> {
    let logged_in = auth::login(&state.app, &body.email, &body.password, client).await?;
    Ok(axum::Json(logged_in.into()))
}

/// Revokes the token used for this request.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ProblemSchema)), security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> ApiResult<StatusCode> {
    auth::logout(&state.app, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "auth",
    responses((status = 200, body = UserBody), (status = 401, body = ProblemSchema)), security(("bearer" = [])))]
async fn me(Authenticated(session): Authenticated) -> axum::Json<UserBody> {
    axum::Json(session.user.into())
}
