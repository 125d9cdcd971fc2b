//! API keys: a service account's keys (admins), and a human's own keys (`/v1/me/api-keys`).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tessera_domain::api_key::KeyKind;
use tessera_domain::ids::{ApiKeyId, ServiceAccountId};
use tessera_domain::names::ApiKeyName;
use tessera_domain::principal::Principal;
use tessera_store::KeyOwner;

use crate::AppState;
use crate::api::types::{
    CreateKeyRequest, CreateKeyResponse, CreatedApiKey, KeyList, MaskedApiKey, PreviousKey,
    RevokedKeyResponse, RotateKeyRequest, RotateKeyResponse, UpdateKeyRequest,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, Authenticated, OptionalJson, parse_id};
use crate::keys::mint_key;

/// The longest overlap a rotation may ask for.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

fn key_name(requested: Option<&str>, default: &str) -> Result<String, ApiError> {
    match requested {
        Some(raw) => Ok(ApiKeyName::parse(raw).map_err(|e| ApiError::Validation(e.to_string()))?.to_string()),
        None => Ok(default.to_owned()),
    }
}

/// Add an API key to a service account (at most 10 live keys).
#[utoipa::path(
    post, path = "/v1/service-accounts/{id}/api-keys", tag = "api-keys",
    params(("id" = String, Path, description = "Service account id (`sa_…`)")),
    request_body(content = CreateKeyRequest, description = "Optional"),
    responses((status = 201, body = CreateKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Archived, or 10 live keys already", body = ErrorBody))
)]
pub async fn create_service_account_key(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreateKeyResponse>)> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let team_id = caller.principal().team_id();
    let account = app.store.service_account(team_id, &id, caller.now).await?;
    let name = key_name(body.name.as_deref(), &account.account.name)?;
    let worker = match body.permissions.as_deref() {
        None | Some([]) => false,
        Some([only]) if only == "worker" => true,
        Some(_) => return Err(ApiError::Validation("permissions may only be [\"worker\"]".into())),
    };
    let (plain, mut key) = mint_key(&app.hasher, KeyKind::ServiceAccount, &name, None);
    key.worker = worker;
    let record = app.store.add_service_account_key(team_id, &id, &key, &caller.audit_context()).await?;
    Ok((StatusCode::CREATED, Json(CreateKeyResponse { api_key: CreatedApiKey::new(&record, &plain) })))
}

/// Rotate a key: issue its successor, and stop the old key now or after a grace period.
#[utoipa::path(
    post, path = "/v1/service-accounts/{id}/api-keys/{keyId}/rotate", tag = "api-keys",
    params(("id" = String, Path, description = "Service account id"), ("keyId" = String, Path, description = "Key id (`key_…`)")),
    request_body(content = RotateKeyRequest, description = "Optional"),
    responses((status = 200, body = RotateKeyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Already rotated, revoked, or account archived", body = ErrorBody))
)]
pub async fn rotate_service_account_key(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, key_id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<RotateKeyRequest>,
) -> ApiResult<Json<RotateKeyResponse>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let key_id: ApiKeyId = parse_id(&key_id)?;
    let grace = match body.grace_period_seconds {
        None | Some(0) => None,
        Some(seconds) if Duration::from_secs(seconds) > MAX_GRACE => {
            return Err(ApiError::Validation(format!(
                "gracePeriodSeconds must be at most {} (7 days)",
                MAX_GRACE.as_secs()
            )));
        }
        Some(seconds) => Some(Duration::from_secs(seconds)),
    };
    let team_id = caller.principal().team_id();
    let account = app.store.service_account(team_id, &id, caller.now).await?;
    let old = account.keys.iter().find(|k| k.id == key_id);
    let name = old.map_or_else(|| account.account.name.clone(), |k| k.name.clone());
    // The successor keeps what the old key could do.
    let (plain, mut key) = mint_key(&app.hasher, KeyKind::ServiceAccount, &name, None);
    key.worker = old.is_some_and(|k| k.worker);
    let rotation = app
        .store
        .rotate_service_account_key(team_id, &id, &key_id, &key, grace, &caller.audit_context())
        .await?;
    app.verifier.revocation_barrier().await;
    let old = &rotation.old_key;
    Ok(Json(RotateKeyResponse {
        api_key: CreatedApiKey::new(&rotation.new_key, &plain),
        previous_key: PreviousKey {
            id: old.id.to_string(),
            masked_key: old.masked.clone(),
            status: if old.revoked_at.is_some() { "revoked" } else { "expiring" },
            revoked_at: old.revoked_at,
            valid_until: if old.revoked_at.is_some() { None } else { old.expires_at },
        },
    }))
}

/// Set or clear a service-account key's own rate limit.
#[utoipa::path(
    patch, path = "/v1/service-accounts/{id}/api-keys/{keyId}", tag = "api-keys",
    params(("id" = String, Path, description = "Service account id"), ("keyId" = String, Path, description = "Key id (`key_…`)")),
    request_body = UpdateKeyRequest,
    responses((status = 200, body = MaskedApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn update_service_account_key(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, key_id)): Path<(String, String)>,
    AppJson(body): AppJson<UpdateKeyRequest>,
) -> ApiResult<Json<MaskedApiKey>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let key_id: ApiKeyId = parse_id(&key_id)?;
    if body.rate_limit_per_minute.is_some_and(|limit| !(1..=1_000_000).contains(&limit)) {
        return Err(ApiError::Validation("rateLimitPerMinute must be between 1 and 1000000".into()));
    }
    let updated = app
        .store
        .set_key_rate_limit(
            caller.principal().team_id(),
            &id,
            &key_id,
            body.rate_limit_per_minute,
            &caller.audit_context(),
        )
        .await?;
    Ok(Json(MaskedApiKey::from(&updated)))
}

/// Revoke one key of a service account, now.
#[utoipa::path(
    delete, path = "/v1/service-accounts/{id}/api-keys/{keyId}", tag = "api-keys",
    params(("id" = String, Path, description = "Service account id"), ("keyId" = String, Path, description = "Key id (`key_…`)")),
    responses((status = 200, body = RevokedKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Already revoked", body = ErrorBody))
)]
pub async fn revoke_service_account_key(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<RevokedKeyResponse>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let key_id: ApiKeyId = parse_id(&key_id)?;
    let owner = KeyOwner::ServiceAccount(id);
    revoke(&app, &caller, &owner, &key_id).await
}

async fn revoke(
    app: &AppState,
    caller: &Authenticated,
    owner: &KeyOwner,
    key_id: &ApiKeyId,
) -> ApiResult<Json<RevokedKeyResponse>> {
    let revoked =
        app.store.revoke_key(caller.principal().team_id(), owner, key_id, &caller.audit_context()).await?;
    app.verifier.revocation_barrier().await;
    Ok(Json(RevokedKeyResponse {
        id: revoked.id.to_string(),
        revoked_at: revoked.revoked_at.unwrap_or(caller.now),
    }))
}

fn own_user(caller: &Authenticated) -> Result<tessera_domain::ids::UserId, ApiError> {
    match caller.principal() {
        Principal::User { user_id, .. } => Ok(user_id.clone()),
        Principal::ServiceAccount { .. } => {
            Err(ApiError::RoleForbidden("Service-account keys cannot create or manage API keys"))
        }
    }
}

/// Create an API key for yourself (any human member). It acts as you.
#[utoipa::path(
    post, path = "/v1/me/api-keys", tag = "api-keys",
    request_body(content = CreateKeyRequest, description = "Optional"),
    responses((status = 201, body = CreateKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn create_my_key(
    State(app): State<AppState>,
    caller: Authenticated,
    OptionalJson(body): OptionalJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreateKeyResponse>)> {
    let user_id = own_user(&caller)?;
    let name = key_name(body.name.as_deref(), "default")?;
    if body.permissions.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(ApiError::Validation("only service-account keys take permissions".into()));
    }
    let (plain, key) = mint_key(&app.hasher, KeyKind::User, &name, None);
    let record =
        app.store.add_user_key(caller.principal().team_id(), &user_id, &key, &caller.audit_context()).await?;
    Ok((StatusCode::CREATED, Json(CreateKeyResponse { api_key: CreatedApiKey::new(&record, &plain) })))
}

/// List your own keys that can authenticate, masked.
#[utoipa::path(
    get, path = "/v1/me/api-keys", tag = "api-keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_my_keys(State(app): State<AppState>, caller: Authenticated) -> ApiResult<Json<KeyList>> {
    let user_id = own_user(&caller)?;
    let keys = app.store.live_user_keys(caller.principal().team_id(), &user_id, caller.now).await?;
    Ok(Json(KeyList { api_keys: keys.iter().map(MaskedApiKey::from).collect() }))
}

/// Revoke one of your own keys, now.
#[utoipa::path(
    delete, path = "/v1/me/api-keys/{keyId}", tag = "api-keys",
    params(("keyId" = String, Path, description = "Key id (`key_…`)")),
    responses((status = 200, body = RevokedKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn revoke_my_key(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(key_id): Path<String>,
) -> ApiResult<Json<RevokedKeyResponse>> {
    let user_id = own_user(&caller)?;
    let key_id: ApiKeyId = parse_id(&key_id)?;
    revoke(&app, &caller, &KeyOwner::User(user_id), &key_id).await
}
