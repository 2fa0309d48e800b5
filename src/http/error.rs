//! The one error rendering of the HTTP layer: `application/problem+json` (RFC 9457) with a
//! stable machine `code`, the HTTP `status`, a human `title`/`detail`, and the offending `field`
//! when there is one. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;

/// A problem document. Built from an [`AppError`] or directly for transport-level failures
/// (malformed JSON, body too large, unknown route).
#[derive(Debug)]
pub struct Problem {
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    retry_after: Option<u32>,
    /// Problem-specific members (RFC 9457 §3.2), e.g. `window_expires_at`.
    extensions: serde_json::Map<String, serde_json::Value>,
}

/// The problem document as the OpenAPI document describes it (what [`ProblemBody`] sends).
#[derive(utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemSchema {
    /// `urn:snorq:problem:<code>`
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// Stable machine code: `not_found`, `forbidden`, `validation_failed`, `conflict`,
    /// `plan_limit`, `window_closed`, `unauthorized`, ...
    code: String,
    detail: String,
    /// The offending field, for validation errors.
    field: Option<String>,
}

/// The document as sent; `type` is derived from the code.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_owned(), value);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ProblemBody {
            kind: format!("urn:snorq:problem:{}", self.code),
            title: self.title,
            status: self.status,
            code: self.code,
            detail: &self.detail,
            field: self.field.as_deref(),
            extensions: &self.extensions,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(err: AppError) -> Self {
        let detail = err.to_string();
        match err {
            AppError::Validation(invalid) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                invalid.message,
            )
            .with_field(invalid.field),
            AppError::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            AppError::InvalidCredentials => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", detail)
            }
            AppError::Forbidden(_) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            AppError::NotFound => Problem::new(StatusCode::NOT_FOUND, "not_found", detail),
            AppError::Conflict { field, .. } => {
                let problem = Problem::new(StatusCode::CONFLICT, "conflict", detail);
                match field {
                    Some(field) => problem.with_field(field),
                    None => problem,
                }
            }
            AppError::PlanLimit { .. } => Problem::new(StatusCode::CONFLICT, "plan_limit", detail),
            AppError::PlanRequired(_) => Problem::new(StatusCode::PAYMENT_REQUIRED, "plan_limit", detail),
            AppError::RateLimited { retry_after_secs } => Problem {
                retry_after: Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX)),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
            },
            AppError::TooManyStreams(_) => Problem {
                retry_after: Some(5),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", detail)
            },
            AppError::SignupDisabled => Problem::new(StatusCode::FORBIDDEN, "signup_disabled", detail),
            AppError::WindowClosed { expires_at, .. } => {
                Problem::new(StatusCode::CONFLICT, "window_closed", detail)
                    .with_extension("window_expires_at", serde_json::json!(expires_at))
            }
            AppError::ConfirmationRequired(_) => {
                Problem::new(StatusCode::CONFLICT, "confirmation_required", detail)
            }
            AppError::ConnectionUnavailable { .. } => {
                Problem::new(StatusCode::CONFLICT, "connection_unavailable", detail)
            }
            AppError::Unavailable => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail),
            AppError::Busy { retry_after_secs, .. } => Problem {
                retry_after: Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX)),
                ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail)
            },
            AppError::InvalidState(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_state", detail),
            AppError::InvalidSignature => Problem::new(StatusCode::UNAUTHORIZED, "invalid_signature", detail),
            AppError::NotConfigured(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", detail)
            }
            AppError::PlatformUnavailable(_) => {
                Problem::new(StatusCode::BAD_GATEWAY, "platform_unavailable", detail)
            }
            AppError::Unproven { code, field, .. } => {
                let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
                match field {
                    Some(field) => problem.with_field(field),
                    None => problem,
                }
            }
            AppError::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

/// Handlers return this: a value, or a problem.
pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Invalid;

    #[test]
    fn validation_errors_name_the_field_and_use_problem_json() {
        let response = AppError::Validation(Invalid::new("email", "must contain @")).into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let problem = Problem::from(AppError::internal(anyhow::anyhow!("password=hunter2")));
        assert_eq!(problem.code, "internal");
        assert!(!problem.detail.contains("hunter2"));
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let response = AppError::RateLimited { retry_after_secs: 7 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
