//! The one error type of the HTTP API, and its one JSON shape:
//! `{"error": {"code": "snake_case_code", "message": "…"}}` (Cursor's v1 envelope).
//!
//! `code` is a contract: clients branch on it, so a code never changes meaning. `message` is
//! for people. Unexpected failures answer 500 `internal_error` with a generic message; the real
//! error is logged once, by the request-logging middleware, from a response extension.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid API key")]
    Unauthorized,
    #[error("{0}")]
    RoleForbidden(&'static str),
    #[error(
        "Service accounts are available on the Enterprise plan. Upgrade the team to the Enterprise plan to use them."
    )]
    PlanRequired,
    #[error("Not found")]
    NotFound,
    #[error("{0}")]
    InvalidJson(String),
    #[error("Request body is empty; expected a JSON object")]
    MissingBody,
    #[error("{0}")]
    Validation(String),
    #[error("The pagination cursor is not valid")]
    InvalidCursor,
    #[error("An active service account named {0:?} already exists")]
    NameTaken(String),
    #[error("The service account is archived; archived accounts cannot get keys or be changed")]
    ServiceAccountArchived,
    #[error("The account already holds {0} live keys; revoke one first")]
    KeyLimitReached(i64),
    #[error("The key is already revoked or expired")]
    KeyNotActive,
    #[error("The key was already rotated; rotate its successor instead")]
    RotationConflict,
    #[error("All {0} seats of the team are taken")]
    SeatLimitReached(i64),
    #[error("A user with e-mail {0:?} is already in this team")]
    EmailTaken(String),
    #[error("Request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("Expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("The database is not reachable")]
    NotReady,
    #[error("Another run of this agent is still active; wait for it to finish or stop it")]
    AgentBusy,
    #[error("The agent is archived")]
    AgentArchived,
    #[error("An agent with this id already exists and was created by a different request")]
    AgentIdConflict,
    #[error("Only a queued or running run can be cancelled")]
    RunNotCancellable,
    #[error("No such run")]
    RunNotFound,
    #[error("The stream of this run is past its retention period; read the run instead")]
    StreamExpired,
    #[error("Last-Event-ID does not belong to this run's stream")]
    InvalidLastEventId,
    #[error("The agent has no running work to stop")]
    AgentNotRunning,
    #[error("{0}")]
    RepositoryAccess(String),
    #[error(
        "Service accounts can only use repositories authorized by a team-level integration; this repository is authorized only by a personal integration. Ask an admin to connect it at the team level."
    )]
    TeamIntegrationRequired,
    #[error("Rate limit exceeded for this API key; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("An unexpected error occurred")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RoleForbidden(_) | ApiError::PlanRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidJson(_)
            | ApiError::MissingBody
            | ApiError::Validation(_)
            | ApiError::InvalidCursor => StatusCode::BAD_REQUEST,
            ApiError::NameTaken(_)
            | ApiError::ServiceAccountArchived
            | ApiError::KeyLimitReached(_)
            | ApiError::KeyNotActive
            | ApiError::RotationConflict
            | ApiError::SeatLimitReached(_)
            | ApiError::EmailTaken(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::AgentBusy
            | ApiError::AgentArchived
            | ApiError::AgentNotRunning
            | ApiError::AgentIdConflict
            | ApiError::RunNotCancellable => StatusCode::CONFLICT,
            ApiError::StreamExpired => StatusCode::GONE,
            ApiError::RunNotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidLastEventId => StatusCode::BAD_REQUEST,
            ApiError::RepositoryAccess(_) | ApiError::TeamIntegrationRequired => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::RoleForbidden(_) => "role_forbidden",
            ApiError::PlanRequired => "plan_required",
            ApiError::NotFound => "not_found",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::MissingBody => "missing_body",
            ApiError::Validation(_) => "validation_error",
            ApiError::InvalidCursor => "invalid_cursor",
            ApiError::NameTaken(_) => "name_taken",
            ApiError::ServiceAccountArchived => "service_account_archived",
            ApiError::KeyLimitReached(_) => "key_limit_reached",
            ApiError::KeyNotActive => "key_not_active",
            ApiError::RotationConflict => "rotation_conflict",
            ApiError::SeatLimitReached(_) => "seat_limit_reached",
            ApiError::EmailTaken(_) => "email_taken",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NotReady => "not_ready",
            ApiError::AgentBusy => "agent_busy",
            ApiError::AgentArchived => "agent_archived",
            ApiError::AgentNotRunning => "agent_not_running",
            ApiError::AgentIdConflict => "agent_id_conflict",
            ApiError::RunNotCancellable => "run_not_cancellable",
            ApiError::RunNotFound => "run_not_found",
            ApiError::StreamExpired => "stream_expired",
            ApiError::InvalidLastEventId => "invalid_last_event_id",
            ApiError::RepositoryAccess(_) => "repository_access",
            ApiError::TeamIntegrationRequired => "team_integration_required",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn admin_required() -> ApiError {
        ApiError::RoleForbidden("Only team owners and admins can do this; service-account keys never can")
    }
}

/// Every documented error code, for the OpenAPI description and the docs test.
pub const ERROR_CODES: &[&str] = &[
    "unauthorized",
    "role_forbidden",
    "plan_required",
    "not_found",
    "invalid_json",
    "missing_body",
    "validation_error",
    "invalid_cursor",
    "name_taken",
    "service_account_archived",
    "key_limit_reached",
    "key_not_active",
    "rotation_conflict",
    "seat_limit_reached",
    "email_taken",
    "payload_too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "not_ready",
    "agent_busy",
    "agent_archived",
    "agent_not_running",
    "agent_id_conflict",
    "run_not_cancellable",
    "run_not_found",
    "stream_expired",
    "invalid_last_event_id",
    "repository_access",
    "team_integration_required",
    "rate_limit_exceeded",
    "internal_error",
];

/// The error body, for the OpenAPI description.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `name_taken`.
    pub code: String,
    pub message: String,
}

/// The internal cause of a 500, carried to the logging middleware and never to the client.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message: self.to_string() } };
        let mut response = (self.status(), axum::Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                let headers = response.headers_mut();
                headers
                    .append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tessera\""));
                headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\""));
            }
            ApiError::Internal(cause) => {
                response.extensions_mut().insert(InternalCause(cause));
            }
            ApiError::RateLimited { retry_after_seconds } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::InvalidCursor => ApiError::InvalidCursor,
            StoreError::NameTaken(name) => ApiError::NameTaken(name),
            StoreError::SeatLimitReached { limit } => ApiError::SeatLimitReached(limit),
            StoreError::PlanRequired => ApiError::PlanRequired,
            StoreError::ServiceAccountArchived => ApiError::ServiceAccountArchived,
            StoreError::KeyLimitReached { max } => ApiError::KeyLimitReached(max),
            StoreError::KeyNotActive => ApiError::KeyNotActive,
            StoreError::AlreadyRotated => ApiError::RotationConflict,
            StoreError::EmailTaken(email) => ApiError::EmailTaken(email),
            StoreError::AgentBusy => ApiError::AgentBusy,
            StoreError::AgentArchived => ApiError::AgentArchived,
            StoreError::AgentIdTaken => ApiError::AgentIdConflict,
            StoreError::RunNotActive => ApiError::AgentNotRunning,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A 400 `validation_error` carrying a parse error's message.
pub fn invalid(err: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(err.to_string())
}
