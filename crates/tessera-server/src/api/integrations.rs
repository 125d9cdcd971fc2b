//! `/v1/integrations` (repository integrations) and `/v0/repositories`, `/v1/repositories`
//! (what the caller may launch on).
//!
//! Team-level integrations are managed by owners and admins and used by everyone in the team,
//! service accounts included. Personal integrations are managed and used by their user only;
//! to anyone else they do not exist (404). Service accounts never manage integrations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_domain::ids::{IntegrationId, UserId};
use tessera_domain::integration::{CloneUrl, IntegrationScope, Provider, RepositoryUrl};
use tessera_domain::names::IntegrationName;
use tessera_domain::principal::Principal;
use tessera_domain::time::Timestamp;
use tessera_store::integrations::{Integration, NewIntegration, RepositoryEntry};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, invalid};
use crate::extract::{AppJson, Authenticated, parse_id};

/// The most repositories one integration may list.
pub const MAX_REPOSITORIES: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryInput {
    /// The repository's identity, e.g. `https://github.com/acme/widgets`.
    pub url: String,
    /// Where workers fetch and push, e.g. `file:///srv/git/widgets.git`; defaults to `url`.
    pub clone_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegrationRequest {
    /// `git`.
    pub provider: String,
    /// `team` (owners and admins) or `personal` (your own).
    pub scope: String,
    pub name: String,
    pub repositories: Vec<RepositoryInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateIntegrationRequest {
    pub name: Option<String>,
    /// Replaces the whole list.
    pub repositories: Option<Vec<RepositoryInput>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryBody {
    pub url: String,
    pub clone_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationBody {
    #[schema(example = "int_0193a1b2c3d4e5f60718293a4b5c6d7e")]
    pub id: String,
    pub provider: String,
    pub scope: String,
    pub name: String,
    /// The user a personal integration belongs to.
    pub owner_user_id: Option<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub repositories: Vec<RepositoryBody>,
}

impl From<&Integration> for IntegrationBody {
    fn from(integration: &Integration) -> IntegrationBody {
        IntegrationBody {
            id: integration.id.to_string(),
            provider: integration.provider.as_str().to_owned(),
            scope: integration.scope.as_str().to_owned(),
            name: integration.name.clone(),
            owner_user_id: integration.owner_user_id.as_ref().map(ToString::to_string),
            created_by: integration.created_by.clone(),
            created_at: integration.created_at,
            updated_at: integration.updated_at,
            repositories: integration
                .repositories
                .iter()
                .map(|r| RepositoryBody {
                    url: r.url.to_string(),
                    clone_url: r.clone_url.as_ref().map(|c| c.as_str().to_owned()),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationResponse {
    pub integration: IntegrationBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedIntegration {
    pub id: String,
}

fn parse_repositories(inputs: &[RepositoryInput]) -> Result<Vec<RepositoryEntry>, ApiError> {
    if inputs.is_empty() || inputs.len() > MAX_REPOSITORIES {
        return Err(ApiError::Validation(format!(
            "repositories must list 1 to {MAX_REPOSITORIES} repositories"
        )));
    }
    let mut entries: Vec<RepositoryEntry> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let url = RepositoryUrl::parse(&input.url).map_err(invalid)?;
        if entries.iter().any(|e| e.url == url) {
            return Err(ApiError::Validation(format!("repository {url} is listed twice")));
        }
        let clone_url = input.clone_url.as_deref().map(CloneUrl::parse).transpose().map_err(invalid)?;
        entries.push(RepositoryEntry { url, clone_url });
    }
    Ok(entries)
}

fn caller_user(caller: &Authenticated) -> Option<&UserId> {
    match caller.principal() {
        Principal::User { user_id, .. } => Some(user_id),
        Principal::ServiceAccount { .. } => None,
    }
}

/// The integration if the caller may see it: team-level ones, and their own personal ones.
async fn visible(
    app: &AppState,
    caller: &Authenticated,
    id: &IntegrationId,
) -> Result<Integration, ApiError> {
    let integration = app.store.integration(caller.principal().team_id(), id).await?;
    let own = integration.owner_user_id.as_ref().is_some_and(|owner| Some(owner) == caller_user(caller));
    match integration.scope {
        IntegrationScope::Team => Ok(integration),
        IntegrationScope::Personal if own => Ok(integration),
        IntegrationScope::Personal => Err(ApiError::NotFound),
    }
}

/// May the caller change this (visible) integration?
fn require_manager(caller: &Authenticated, integration: &Integration) -> Result<(), ApiError> {
    if caller_user(caller).is_none() {
        return Err(ApiError::RoleForbidden("Service-account keys cannot manage integrations"));
    }
    match integration.scope {
        IntegrationScope::Team => caller.require_admin(),
        IntegrationScope::Personal => Ok(()),
    }
}

/// Authorize repositories: a team-level integration (owners, admins) or a personal one.
#[utoipa::path(
    post, path = "/v1/integrations", tag = "integrations",
    request_body = CreateIntegrationRequest,
    responses((status = 201, body = IntegrationResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn create_integration(
    State(app): State<AppState>,
    caller: Authenticated,
    AppJson(body): AppJson<CreateIntegrationRequest>,
) -> ApiResult<(StatusCode, Json<IntegrationResponse>)> {
    let Some(user_id) = caller_user(&caller).cloned() else {
        return Err(ApiError::RoleForbidden("Service-account keys cannot manage integrations"));
    };
    let scope: IntegrationScope = body.scope.parse().map_err(invalid)?;
    if scope == IntegrationScope::Team {
        caller.require_admin()?;
    }
    let provider: Provider = body.provider.parse().map_err(invalid)?;
    let name = IntegrationName::parse(&body.name).map_err(invalid)?;
    let repositories = parse_repositories(&body.repositories)?;
    let new = NewIntegration {
        id: IntegrationId::generate(),
        scope,
        owner_user_id: (scope == IntegrationScope::Personal).then_some(user_id),
        provider,
        name: name.to_string(),
        repositories,
    };
    let created =
        app.store.create_integration(caller.principal().team_id(), &new, &caller.audit_context()).await?;
    Ok((StatusCode::CREATED, Json(IntegrationResponse { integration: IntegrationBody::from(&created) })))
}

/// The team's integrations and your own personal ones.
#[utoipa::path(
    get, path = "/v1/integrations", tag = "integrations",
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody))
)]
pub async fn list_integrations(
    State(app): State<AppState>,
    caller: Authenticated,
) -> ApiResult<Json<IntegrationList>> {
    let listed = app.store.list_integrations(caller.principal().team_id(), caller_user(&caller)).await?;
    Ok(Json(IntegrationList { integrations: listed.iter().map(IntegrationBody::from).collect() }))
}

/// One integration.
#[utoipa::path(
    get, path = "/v1/integrations/{id}", tag = "integrations",
    params(("id" = String, Path, description = "Integration id (`int_…`)")),
    responses((status = 200, body = IntegrationResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_integration(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationResponse>> {
    let id: IntegrationId = parse_id(&id)?;
    let integration = visible(&app, &caller, &id).await?;
    Ok(Json(IntegrationResponse { integration: IntegrationBody::from(&integration) }))
}

/// Rename an integration or replace its repositories.
#[utoipa::path(
    patch, path = "/v1/integrations/{id}", tag = "integrations",
    params(("id" = String, Path, description = "Integration id (`int_…`)")),
    request_body = UpdateIntegrationRequest,
    responses((status = 200, body = IntegrationResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn update_integration(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateIntegrationRequest>,
) -> ApiResult<Json<IntegrationResponse>> {
    let id: IntegrationId = parse_id(&id)?;
    let integration = visible(&app, &caller, &id).await?;
    require_manager(&caller, &integration)?;
    let name = body.name.as_deref().map(IntegrationName::parse).transpose().map_err(invalid)?;
    let repositories = body.repositories.as_deref().map(parse_repositories).transpose()?;
    let updated = app
        .store
        .update_integration(
            caller.principal().team_id(),
            &id,
            name.as_ref().map(IntegrationName::as_str),
            repositories.as_deref(),
            &caller.audit_context(),
        )
        .await?;
    Ok(Json(IntegrationResponse { integration: IntegrationBody::from(&updated) }))
}

/// Remove an integration; its repositories are no longer authorized through it.
#[utoipa::path(
    delete, path = "/v1/integrations/{id}", tag = "integrations",
    params(("id" = String, Path, description = "Integration id (`int_…`)")),
    responses((status = 200, body = DeletedIntegration), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_integration(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedIntegration>> {
    let id: IntegrationId = parse_id(&id)?;
    let integration = visible(&app, &caller, &id).await?;
    require_manager(&caller, &integration)?;
    app.store.delete_integration(caller.principal().team_id(), &id, &caller.audit_context()).await?;
    Ok(Json(DeletedIntegration { id: id.to_string() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryV0 {
    pub owner: String,
    pub name: String,
    pub repository: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoriesV0 {
    pub repositories: Vec<RepositoryV0>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryV1 {
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoriesV1 {
    pub items: Vec<RepositoryV1>,
}

/// Repositories the caller may launch agents on (v0 shape). Service accounts see only those
/// of team-level integrations.
#[utoipa::path(
    get, path = "/v0/repositories", tag = "integrations",
    responses((status = 200, body = RepositoriesV0), (status = 401, body = ErrorBody))
)]
pub async fn repositories_v0(
    State(app): State<AppState>,
    caller: Authenticated,
) -> ApiResult<Json<RepositoriesV0>> {
    let usable = app.store.usable_repositories(caller.principal().team_id(), caller_user(&caller)).await?;
    Ok(Json(RepositoriesV0 {
        repositories: usable
            .iter()
            .map(|u| {
                let (owner, name) = u.repository.url.owner_and_name();
                RepositoryV0 {
                    owner: owner.to_owned(),
                    name: name.to_owned(),
                    repository: u.repository.url.to_string(),
                }
            })
            .collect(),
    }))
}

/// Repositories the caller may launch agents on (v1 shape).
#[utoipa::path(
    get, path = "/v1/repositories", tag = "integrations",
    responses((status = 200, body = RepositoriesV1), (status = 401, body = ErrorBody))
)]
pub async fn repositories_v1(
    State(app): State<AppState>,
    caller: Authenticated,
) -> ApiResult<Json<RepositoriesV1>> {
    let usable = app.store.usable_repositories(caller.principal().team_id(), caller_user(&caller)).await?;
    Ok(Json(RepositoriesV1 {
        items: usable.iter().map(|u| RepositoryV1 { url: u.repository.url.to_string() }).collect(),
    }))
}
