//! Unauthenticated routes: health, readiness, metrics (loopback only by default), OpenAPI.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::middleware::peer_ip;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(
    get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody))
)]
pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Health>> {
    app.store.ping().await.map_err(|_| ApiError::NotReady)?;
    Ok(Json(Health { status: "ok" }))
}

/// Prometheus metrics. Served to loopback clients only, unless `metrics_allow_remote` is set;
/// a request that came through a proxy (`X-Forwarded-For`, `Forwarded`) is not local.
#[utoipa::path(
    get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 404, body = ErrorBody))
)]
pub async fn metrics(State(app): State<AppState>, req: Request) -> Response {
    let proxied =
        req.headers().contains_key("x-forwarded-for") || req.headers().contains_key(header::FORWARDED);
    let local = peer_ip(&req).is_some_and(|ip| ip.is_loopback()) && !proxied;
    if !local && !app.config.metrics_allow_remote {
        return ApiError::NotFound.into_response();
    }
    let mut response = app.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "OpenAPI 3.1 description of every route", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    let mut response = crate::api::openapi_document_json().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
