//! `/v1/audit-events`: the team's audit log, and verification of its hash chain.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tessera_domain::audit::AuditAction;
use tessera_domain::time::Timestamp;
use tessera_store::audit::{AuditEvent, AuditFilter};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::types::page_request;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppQuery, Authenticated};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Who acted: a `user_…` or `sa_…` id.
    pub actor: Option<String>,
    /// What happened, e.g. `api_key.rotate`.
    pub action: Option<String>,
    /// What it happened to, e.g. a `sa_…` or `key_…` id.
    pub target_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditActorBody {
    /// `user`, `service_account`, `operator` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    /// The key the actor used, when it acted through the API.
    pub key_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditTargetBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventBody {
    pub id: String,
    /// Position in the team's hash chain.
    pub sequence: i64,
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Timestamp,
    pub actor: AuditActorBody,
    pub action: String,
    pub target: AuditTargetBody,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditEvent> for AuditEventBody {
    fn from(event: AuditEvent) -> AuditEventBody {
        AuditEventBody {
            id: event.id,
            sequence: event.seq,
            occurred_at: event.occurred_at,
            actor: AuditActorBody { kind: event.actor_type, id: event.actor_id, key_id: event.actor_key_id },
            action: event.action,
            target: AuditTargetBody { kind: event.target_type, id: event.target_id },
            client_ip: event.client_ip,
            request_id: event.request_id,
            details: event.details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventList {
    pub events: Vec<AuditEventBody>,
    pub next_cursor: Option<String>,
}

/// The team's audit events, newest first (owners and admins).
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditEventList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_audit_events(
    State(app): State<AppState>,
    caller: Authenticated,
    AppQuery(query): AppQuery<AuditQuery>,
) -> ApiResult<Json<AuditEventList>> {
    caller.require_admin()?;
    let page = page_request(query.limit, query.cursor)?;
    let action = match query.action.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(AuditAction::parse(raw).ok_or_else(|| {
            let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
            ApiError::Validation(format!("unknown action {raw:?}; expected one of: {}", known.join(", ")))
        })?),
    };
    let filter = AuditFilter {
        actor_id: query.actor.filter(|a| !a.is_empty()),
        action,
        target_id: query.target_id.filter(|t| !t.is_empty()),
    };
    let listed = app.store.list_audit_events(caller.principal().team_id(), &filter, &page).await?;
    Ok(Json(AuditEventList {
        events: listed.items.into_iter().map(AuditEventBody::from).collect(),
        next_cursor: listed.next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainProblemBody {
    pub sequence: i64,
    pub event_id: Option<String>,
    /// `hash_mismatch` (altered), `broken_link`, `missing_event` or `truncated_tail` (deleted).
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainVerification {
    pub valid: bool,
    pub events_checked: i64,
    pub problem: Option<ChainProblemBody>,
}

/// Recompute the team's audit hash chain and report the first altered or missing event.
#[utoipa::path(
    get, path = "/v1/audit-events/verify", tag = "audit",
    responses((status = 200, body = ChainVerification), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn verify_audit_chain(
    State(app): State<AppState>,
    caller: Authenticated,
) -> ApiResult<Json<ChainVerification>> {
    caller.require_admin()?;
    let report = app.store.verify_audit_chain(caller.principal().team_id()).await?;
    Ok(Json(ChainVerification {
        valid: report.problem.is_none(),
        events_checked: report.events_checked,
        problem: report.problem.map(|p| ChainProblemBody {
            sequence: p.seq,
            event_id: p.event_id,
            kind: p.kind.as_str().to_owned(),
        }),
    }))
}
