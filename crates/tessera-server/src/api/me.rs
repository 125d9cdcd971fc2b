//! `/v0/me` and `/v1/me` in Cursor's shapes, with `serviceAccountId` and `teamId` added.

use axum::Json;
use serde::Serialize;
use tessera_domain::principal::Principal;
use tessera_domain::time::Timestamp;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Authenticated;

/// Cursor's v0 key info.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeV0 {
    pub api_key_name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_id: Option<String>,
    pub team_id: String,
}

/// Cursor's v1 key info: user fields for user keys, none for service-account keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeV1 {
    pub api_key_name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_id: Option<String>,
    pub team_id: String,
}

fn service_account_id(principal: &Principal) -> Option<String> {
    match principal {
        Principal::ServiceAccount { service_account_id, .. } => Some(service_account_id.to_string()),
        Principal::User { .. } => None,
    }
}

/// The calling key (v0 shape).
#[utoipa::path(
    get, path = "/v0/me", tag = "me",
    responses((status = 200, body = MeV0), (status = 401, body = ErrorBody))
)]
pub async fn me_v0(caller: Authenticated) -> ApiResult<Json<MeV0>> {
    let key = &caller.key;
    Ok(Json(MeV0 {
        api_key_name: key.key_name.clone(),
        created_at: key.key_created_at,
        user_email: key.user.as_ref().map(|u| u.email.clone()),
        service_account_id: service_account_id(&key.principal),
        team_id: key.principal.team_id().to_string(),
    }))
}

/// The calling key (v1 shape).
#[utoipa::path(
    get, path = "/v1/me", tag = "me",
    responses((status = 200, body = MeV1), (status = 401, body = ErrorBody))
)]
pub async fn me_v1(caller: Authenticated) -> ApiResult<Json<MeV1>> {
    let key = &caller.key;
    let (first, last) = match key.user.as_ref().and_then(|u| u.name.as_deref()) {
        Some(name) => match name.split_once(' ') {
            Some((first, last)) => (first.to_owned(), last.to_owned()),
            None => (name.to_owned(), String::new()),
        },
        None => (String::new(), String::new()),
    };
    let user = key.user.as_ref();
    Ok(Json(MeV1 {
        api_key_name: key.key_name.clone(),
        created_at: key.key_created_at,
        user_id: user.map(|u| u.number),
        user_email: user.map(|u| u.email.clone()),
        user_first_name: user.map(|_| first),
        user_last_name: user.map(|_| last),
        service_account_id: service_account_id(&key.principal),
        team_id: key.principal.team_id().to_string(),
    }))
}
