//! The one error rendering of the HTTP layer: `application/problem+json` (RFC 9457) with a
//! stable machine `code`, the HTTP `status`, a human `title`/`detail`, and the offending `field`
//! when there is one. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;

/// A problem document. Built from an [`AppError`] or directly for transport-level failures
/// (malformed JSON, body too large, unknown route).
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:snorq:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(err: AppError) -> Self {
        let detail = err.to_string();
        match err {
            AppError::Validation(invalid) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", invalid.message)
                    .with_field(invalid.field)
            }
            AppError::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            AppError::InvalidCredentials => Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", detail),
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
            AppError::RateLimited { retry_after_secs } => Problem {
                retry_after: Some(retry_after_secs),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
            },
            AppError::SignupDisabled => Problem::new(StatusCode::FORBIDDEN, "signup_disabled", detail),
            AppError::Unavailable => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail),
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
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
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
