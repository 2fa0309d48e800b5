use crate::domain::Invalid;
use crate::store::{Constraint, StoreError};

/// Everything a use case can fail with. The HTTP layer renders each as problem+json with a
/// stable `code` (see `http::error`); the CLI prints the message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Validation(#[from] Invalid),
    #[error("authentication required")]
    Unauthorized,
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<&'static str>,
    },
    #[error("the organization's plan allows {limit} members; upgrade the plan to add more")]
    PlanLimit { limit: i64 },
    /// A feature the organization's plan does not include.
    #[error("{0}")]
    PlanRequired(&'static str),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Over the open live-event stream limit (per user or per organization).
    #[error("{0}")]
    TooManyStreams(&'static str),
    #[error("signup is disabled on this server; ask an operator for an account")]
    SignupDisabled,
    /// The platform's reply window is closed (or was never opened by the customer).
    #[error("{message}")]
    WindowClosed {
        message: String,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Retrying would possibly deliver a reply a second time: the platform may have accepted it.
    #[error("{0}")]
    ConfirmationRequired(String),
    #[error("the connection is {status}; reconnect it before sending")]
    ConnectionUnavailable { status: &'static str },
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// The service is at a capacity limit (e.g. password hashing); try again shortly.
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after_secs: u64,
    },
    /// An OAuth callback's state is not one we issued, or was used or expired.
    #[error("{0}")]
    InvalidState(&'static str),
    /// A platform callback whose signature does not verify.
    #[error("the signature does not verify")]
    InvalidSignature,
    /// A feature that needs settings this server lacks (named in the message).
    #[error("{0}")]
    NotConfigured(String),
    /// A platform API failed in a way that is worth retrying later.
    #[error("{0}")]
    PlatformUnavailable(String),
    /// The platform did not confirm what a request claims (a token that does not reach the
    /// account): 422 with a stable `code` naming which check failed.
    #[error("{message}")]
    Unproven {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn conflict(message: impl Into<String>, field: Option<&'static str>) -> Self {
        AppError::Conflict {
            message: message.into(),
            field,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(constraint) => {
                let (message, field) = match constraint {
                    Constraint::UserEmail => ("an account with this email already exists", Some("email")),
                    Constraint::OrganizationSlug => ("this slug is taken", Some("slug")),
                    Constraint::Membership => ("this user is already a member", Some("email")),
                    Constraint::ConnectionOrgAccount | Constraint::ConnectionLiveAccount => (
                        "this platform account is already connected",
                        Some("platform_user_id"),
                    ),
                    Constraint::MessageIdempotencyKey => {
                        ("this Idempotency-Key was used for another message", None)
                    }
                    Constraint::LabelName => ("a label with this name already exists", Some("name")),
                    Constraint::Invitation => ("this email is invited already", Some("email")),
                    Constraint::Other => ("conflicts with existing data", None),
                };
                AppError::conflict(message, field)
            }
            StoreError::PlanLimit { limit } => AppError::PlanLimit { limit },
            StoreError::NotFound => AppError::NotFound,
            StoreError::Unavailable(_) | StoreError::Transient(_) | StoreError::CannotConnect(_) => {
                AppError::Unavailable
            }
            StoreError::Stale => AppError::conflict(
                "it was changed by someone else meanwhile; read it again and retry",
                None,
            ),
            err @ (StoreError::Database(_) | StoreError::Migrate(_)) => AppError::internal(err),
        }
    }
}
