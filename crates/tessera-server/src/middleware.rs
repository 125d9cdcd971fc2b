//! The request middleware: a request id, one log line per request, HTTP metrics.
//!
//! The log line carries the request id (also sent back as `X-Request-Id`), method, route
//! template, status, latency and the principal's id. It never carries headers or bodies, so
//! no key can reach the log.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use crate::AppState;
use crate::error::InternalCause;
use crate::extract::RequestContext;
use crate::metrics::{LatencyLabels, RequestLabels};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Accepts a caller's request id only if it is short and plain; otherwise makes one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::now_v7().simple()))
}

pub(crate) fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

fn forwarded_ip(req: &Request) -> Option<IpAddr> {
    let header = req.headers().get("x-forwarded-for")?.to_str().ok()?;
    header.split(',').next()?.trim().parse().ok()
}

pub async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let client_ip = if app.config.trust_forwarded_for {
        forwarded_ip(&req).or_else(|| peer_ip(&req))
    } else {
        peer_ip(&req)
    };
    let context = Arc::new(RequestContext {
        request_id: id.clone(),
        client_ip,
        principal_id: OnceLock::new(),
        rate_limit: OnceLock::new(),
    });
    req.extensions_mut().insert(context.clone());
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());

    let mut response = next.run(req).await;

    let status = response.status().as_u16();
    let latency = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(decision) = context.rate_limit.get() {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit_per_minute));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_seconds));
    }
    app.metrics
        .requests
        .get_or_create(&RequestLabels { route: route.clone(), method: method.clone(), status })
        .inc();
    app.metrics
        .request_duration
        .get_or_create(&LatencyLabels { route: route.clone(), method: method.clone() })
        .observe(latency.as_secs_f64());
    let principal = context.principal_id.get().map(String::as_str).unwrap_or("-");
    let latency_ms = (latency.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    match response.extensions().get::<InternalCause>() {
        Some(InternalCause(cause)) => tracing::error!(
            request_id = %id, method, route, status, latency_ms, principal, error = %cause,
            "{method} {route} -> {status} (internal error)"
        ),
        None => tracing::info!(
            request_id = %id, method, route, status, latency_ms, principal,
            "{method} {route} -> {status}"
        ),
    }
    response
}
