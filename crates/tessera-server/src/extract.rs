//! Extractors: the authenticated caller, JSON bodies and query strings that fail in our error
//! format, and the per-request context the logging middleware shares with handlers.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_domain::audit::AuditContext;
use tessera_domain::principal::{Actor, Principal};
use tessera_domain::time::Timestamp;

use crate::AppState;
use crate::auth::credentials::{Presented, read_authorization};
use crate::auth::failures::failure_event;
use crate::auth::verifier::{RejectReason, Rejection, VerifiedKey, VerifyError};
use crate::error::ApiError;

/// Set by the logging middleware on every request; read by extractors and handlers.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    /// `user_…` or `sa_…` once the caller is authenticated, for the request log.
    pub principal_id: OnceLock<String>,
    /// The caller's rate-limit standing, for the `X-RateLimit-*` response headers.
    pub rate_limit: OnceLock<crate::ratelimit::RateDecision>,
}

fn request_context(parts: &Parts) -> Option<Arc<RequestContext>> {
    parts.extensions.get::<Arc<RequestContext>>().cloned()
}

/// The caller, authenticated by API key. Handlers that take this answer 401 without a valid key.
#[derive(Debug)]
pub struct Authenticated {
    pub key: Arc<VerifiedKey>,
    /// The instant the request is judged at, read once from the app's clock.
    pub now: Timestamp,
    context: Option<Arc<RequestContext>>,
}

impl Authenticated {
    pub fn principal(&self) -> &Principal {
        &self.key.principal
    }

    /// Owners and admins only; members and every service account get 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.principal().is_team_admin() { Ok(()) } else { Err(ApiError::admin_required()) }
    }

    /// Who, from where, in which request, when: for the audit event of a change.
    pub fn audit_context(&self) -> AuditContext {
        AuditContext {
            actor: self.principal().actor(),
            client_ip: self.context.as_ref().and_then(|c| c.client_ip).map(|ip| ip.to_string()),
            request_id: self.context.as_ref().map(|c| c.request_id.clone()),
            at: self.now,
        }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Authenticated, ApiError> {
        let context = request_context(parts);
        let now = app.clock.now();
        let presented = read_authorization(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()));
        let (scheme, key_text) = match presented {
            Presented::Missing => {
                app.verifier.note_failure(RejectReason::Missing);
                return Err(ApiError::Unauthorized);
            }
            Presented::Malformed => {
                app.verifier.note_failure(RejectReason::Malformed);
                app.record_auth_failure(
                    &Rejection::bare(RejectReason::Malformed),
                    None,
                    context.as_deref(),
                    now,
                );
                return Err(ApiError::Unauthorized);
            }
            Presented::Key { scheme, key } => (scheme, key),
        };
        match app.verifier.verify(&key_text, now).await {
            Ok(key) => {
                let decision = app.rate_limiter.check(
                    key.principal.key_id(),
                    key.rate_limit_per_minute,
                    std::time::Instant::now(),
                );
                if let Some(context) = &context {
                    let _ = context.principal_id.set(key.principal.id_str().to_owned());
                    let _ = context.rate_limit.set(decision);
                }
                if !decision.allowed {
                    return Err(ApiError::RateLimited { retry_after_seconds: decision.retry_after_seconds });
                }
                Ok(Authenticated { key, now, context })
            }
            Err(VerifyError::Rejected(rejection)) => {
                app.record_auth_failure(&rejection, Some(scheme), context.as_deref(), now);
                if rejection.reason == RejectReason::PlanRequired {
                    return Err(ApiError::PlanRequired);
                }
                Err(ApiError::Unauthorized)
            }
            Err(VerifyError::Store(err)) => Err(ApiError::Internal(err.to_string())),
        }
    }
}

impl crate::App {
    fn record_auth_failure(
        &self,
        rejection: &Rejection,
        scheme: Option<crate::auth::credentials::Scheme>,
        context: Option<&RequestContext>,
        now: Timestamp,
    ) {
        let audit = AuditContext {
            actor: Actor::Anonymous,
            client_ip: context.and_then(|c| c.client_ip).map(|ip| ip.to_string()),
            request_id: context.map(|c| c.request_id.clone()),
            at: now,
        };
        if self.failures.try_send(failure_event(rejection, scheme, audit)).is_err() {
            self.metrics.audit_events_dropped.inc();
        }
    }
}

/// A required JSON body. Fails with `missing_body`, `unsupported_media_type`, `invalid_json`,
/// `validation_error` (unknown or missing fields, wrong types) or `payload_too_large`.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

/// A JSON body that may be left out entirely; an empty body means `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

async fn read_body(req: Request, state: &AppState) -> Result<(bool, Bytes), ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidJson(rejection.body_text())
        }
    })?;
    Ok((is_json, bytes))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => ApiError::Validation(format!("Invalid request body: {err}")),
        _ => ApiError::InvalidJson(format!("Request body is not valid JSON: {err}")),
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<AppJson<T>, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::MissingBody);
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(AppJson)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<OptionalJson<T>, ApiError> {
        let (is_json, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A query string that fails with `validation_error`.
#[derive(Debug)]
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<AppQuery<T>, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|rejection| ApiError::Validation(rejection.body_text()))
    }
}

/// Parses a path segment into an id; an id of the wrong shape is simply not found.
pub fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}
