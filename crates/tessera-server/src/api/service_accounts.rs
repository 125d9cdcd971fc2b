//! `/v1/service-accounts`: create, list, get, update, archive. Owners and admins only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tessera_domain::api_key::KeyKind;
use tessera_domain::ids::ServiceAccountId;
use tessera_domain::names::{Description, ServiceAccountName};
use tessera_store::service_accounts::{NewServiceAccount, ServiceAccountUpdate};
use utoipa::IntoParams;

use crate::AppState;
use crate::api::types::{
    ArchiveResponse, CreateServiceAccountRequest, CreateServiceAccountResponse, CreatedApiKey,
    ServiceAccountBody, ServiceAccountList, UpdateServiceAccountRequest, page_request,
};
use crate::error::{ApiResult, ErrorBody, invalid};
use crate::extract::{AppJson, AppQuery, Authenticated, parse_id};
use crate::keys::mint_key;

/// Create a service account and its first API key.
///
/// The key is in `apiKey.key`. This is the only time it is shown.
#[utoipa::path(
    post, path = "/v1/service-accounts", tag = "service-accounts",
    request_body = CreateServiceAccountRequest,
    responses(
        (status = 201, body = CreateServiceAccountResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin, or the team is not on the Enterprise plan", body = ErrorBody),
        (status = 409, description = "An active account has this name", body = ErrorBody),
    )
)]
pub async fn create_service_account(
    State(app): State<AppState>,
    caller: Authenticated,
    AppJson(body): AppJson<CreateServiceAccountRequest>,
) -> ApiResult<(StatusCode, Json<CreateServiceAccountResponse>)> {
    caller.require_admin()?;
    let name = ServiceAccountName::parse(&body.name).map_err(invalid)?;
    let description =
        body.description.as_deref().map(Description::parse).transpose().map_err(invalid)?.flatten();
    let (plain, key) = mint_key(&app.hasher, KeyKind::ServiceAccount, name.as_str(), None);
    let account = NewServiceAccount { id: ServiceAccountId::generate(), name, description };
    let created = app
        .store
        .create_service_account(caller.principal().team_id(), &account, &key, &caller.audit_context())
        .await?;
    let api_key = CreatedApiKey::new(&created.keys[0], &plain);
    let response =
        CreateServiceAccountResponse { service_account: ServiceAccountBody::from(&created), api_key };
    Ok((StatusCode::CREATED, Json(response)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include archived accounts ("Show Archived").
    pub archived: Option<bool>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List service accounts (active only, unless `archived=true`), with their keys masked.
#[utoipa::path(
    get, path = "/v1/service-accounts", tag = "service-accounts", params(ListQuery),
    responses((status = 200, body = ServiceAccountList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_service_accounts(
    State(app): State<AppState>,
    caller: Authenticated,
    AppQuery(query): AppQuery<ListQuery>,
) -> ApiResult<Json<ServiceAccountList>> {
    caller.require_admin()?;
    let page = page_request(query.limit, query.cursor)?;
    let include_archived = query.archived.unwrap_or(false);
    let listed = app
        .store
        .list_service_accounts(caller.principal().team_id(), include_archived, &page, caller.now)
        .await?;
    Ok(Json(ServiceAccountList::from(&listed)))
}

/// Get one service account (archived ones too).
#[utoipa::path(
    get, path = "/v1/service-accounts/{id}", tag = "service-accounts",
    params(("id" = String, Path, description = "Service account id (`sa_…`)")),
    responses((status = 200, body = ServiceAccountBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_service_account(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<ServiceAccountBody>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let found = app.store.service_account(caller.principal().team_id(), &id, caller.now).await?;
    Ok(Json(ServiceAccountBody::from(&found)))
}

/// Rename a service account or change its description.
#[utoipa::path(
    patch, path = "/v1/service-accounts/{id}", tag = "service-accounts",
    params(("id" = String, Path, description = "Service account id (`sa_…`)")),
    request_body = UpdateServiceAccountRequest,
    responses((status = 200, body = ServiceAccountBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn update_service_account(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateServiceAccountRequest>,
) -> ApiResult<Json<ServiceAccountBody>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let update = ServiceAccountUpdate {
        name: body.name.as_deref().map(ServiceAccountName::parse).transpose().map_err(invalid)?,
        description: match body.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Description::parse(&text).map_err(invalid)?),
        },
    };
    let updated = app
        .store
        .update_service_account(caller.principal().team_id(), &id, &update, &caller.audit_context())
        .await?;
    Ok(Json(ServiceAccountBody::from(&updated)))
}

/// Archive a service account: revoke all its keys at once; keep the account and its history.
#[utoipa::path(
    post, path = "/v1/service-accounts/{id}/archive", tag = "service-accounts",
    params(("id" = String, Path, description = "Service account id (`sa_…`)")),
    responses((status = 200, body = ArchiveResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn archive_service_account(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<ArchiveResponse>> {
    caller.require_admin()?;
    let id: ServiceAccountId = parse_id(&id)?;
    let (archived, revoked) =
        app.store.archive_service_account(caller.principal().team_id(), &id, &caller.audit_context()).await?;
    if !revoked.is_empty() {
        app.verifier.revocation_barrier().await;
    }
    Ok(Json(ArchiveResponse {
        service_account: ServiceAccountBody::from(&archived),
        revoked_key_ids: revoked.iter().map(ToString::to_string).collect(),
    }))
}
