//! Cursor's Cloud Agents API v0: launch, list, read, follow up, stop and delete agents, their
//! conversation, and the models they can use.
//!
//! Who sees what: an agent is visible to the principal that started it; owners and admins also
//! see every agent a service account of the team started. Anything else is 404.
//! Where an agent may run: on a repository authorized by an integration the caller may use
//! (`Store::usable_repositories`); service accounts only through team-level integrations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_domain::agent::{AgentId, BranchName, Prompt, RunId};
use tessera_domain::ids::UserId;
use tessera_domain::integration::RepositoryUrl;
use tessera_domain::principal::Principal;
use tessera_domain::time::Timestamp;
use tessera_store::agents::{AgentVisibility, AgentWithRun, NewAgent};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::types::page_request;
use crate::error::{ApiError, ApiResult, ErrorBody, invalid};
use crate::extract::{AppJson, AppQuery, Authenticated};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptInput {
    pub text: String,
    /// Accepted for compatibility (at most 5); the built-in backends do not read images.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub images: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceInput {
    /// A repository URL authorized by one of your integrations.
    pub repository: Option<String>,
    /// Branch, tag or commit to start from; default: the repository's default branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub pr_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetInput {
    #[serde(default)]
    pub auto_create_pr: bool,
    #[serde(default)]
    pub open_as_cursor_github_app: bool,
    #[serde(default)]
    pub skip_reviewer_request: bool,
    pub branch_name: Option<String>,
    pub auto_branch: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    pub prompt: PromptInput,
    /// A model id from `GET /v0/models`, or `default`.
    pub model: Option<String>,
    pub source: SourceInput,
    pub target: Option<TargetInput>,
    pub webhook: Option<WebhookInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBody {
    pub repository: String,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetBody {
    pub branch_name: String,
    pub url: String,
    pub auto_create_pr: bool,
    pub open_as_cursor_github_app: bool,
    pub skip_reviewer_request: bool,
}

/// Cursor's v0 agent object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentV0 {
    #[schema(example = "bc-00000000-0000-0000-0000-000000000001")]
    pub id: String,
    pub name: String,
    /// `CREATING`, `RUNNING`, `FINISHED`, `ERROR`, `EXPIRED`, or `STOPPED` after a stop.
    pub status: String,
    pub source: SourceBody,
    pub target: TargetBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Who started the agent, and with which key (not in Cursor's schema; clients ignore it).
    pub created_by: StartedBy,
}

/// The principal that started an agent or run, and the key it used.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartedBy {
    /// `user` or `service_account`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub api_key_id: String,
}

pub(crate) fn started_by(agent: &tessera_store::agents::Agent) -> StartedBy {
    StartedBy {
        kind: agent.principal_type.clone(),
        id: agent.principal_id.clone(),
        api_key_id: agent.api_key_id.clone(),
    }
}

fn agent_body(app: &AppState, found: &AgentWithRun) -> AgentV0 {
    let agent = &found.agent;
    AgentV0 {
        id: agent.id.to_string(),
        name: agent.name.clone(),
        status: found.latest_run.status.as_v0_str().to_owned(),
        source: SourceBody { repository: agent.repository_url.clone(), git_ref: agent.starting_ref.clone() },
        target: TargetBody {
            branch_name: agent.branch_name.clone(),
            url: format!("{}/agents/{}", app.config.public_url.trim_end_matches('/'), agent.id),
            auto_create_pr: agent.auto_create_pr,
            open_as_cursor_github_app: false,
            skip_reviewer_request: false,
        },
        summary: found.latest_run.summary.clone(),
        created_at: agent.created_at,
        created_by: started_by(agent),
    }
}

fn caller_user(principal: &Principal) -> Option<&UserId> {
    match principal {
        Principal::User { user_id, .. } => Some(user_id),
        Principal::ServiceAccount { .. } => None,
    }
}

/// A malformed agent id is a bad request (Cursor's v0 behaviour); a well-formed unknown one is 404.
fn parse_agent_id(raw: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(raw).map_err(|_| ApiError::Validation(format!("{raw:?} is not an agent id (bc-<uuid>)")))
}

/// The agent, if the caller may see it.
pub(crate) async fn visible_agent(
    app: &AppState,
    caller: &Authenticated,
    id: &AgentId,
) -> Result<AgentWithRun, ApiError> {
    let found = app.store.agent(caller.principal().team_id(), id).await?;
    let own = found.agent.principal_id == caller.principal().id_str();
    let admin_sees_service_account =
        caller.principal().is_team_admin() && found.agent.principal_type == "service_account";
    if own || admin_sees_service_account { Ok(found) } else { Err(ApiError::NotFound) }
}

pub(crate) fn visibility(principal: &Principal) -> AgentVisibility {
    if principal.is_team_admin() {
        AgentVisibility::Admin { user_id: principal.id_str().to_owned() }
    } else {
        AgentVisibility::Own(principal.id_str().to_owned())
    }
}

/// Everything needed to launch an agent, already parsed; shared by v0 and v1.
pub(crate) struct LaunchSpec {
    pub agent_id: AgentId,
    pub prompt: Prompt,
    pub repository: RepositoryUrl,
    pub starting_ref: Option<String>,
    pub branch_name: Option<String>,
    pub model: String,
    pub auto_create_pr: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub create_digest: Option<String>,
}

/// Resolves the model a request names: omitted or `default` means the first configured one.
pub(crate) fn resolve_model(app: &AppState, requested: Option<&str>) -> Result<String, ApiError> {
    let models = app.config.models();
    match requested {
        None | Some("default") => Ok(models[0].clone()),
        Some(model) if models.iter().any(|m| m == model) => Ok(model.to_owned()),
        Some(model) => {
            Err(ApiError::Validation(format!("model {model:?} is not one of the configured models")))
        }
    }
}

/// Checks the repository is authorized for the caller and queues the agent's first run.
pub(crate) async fn launch(
    app: &AppState,
    caller: &Authenticated,
    spec: LaunchSpec,
) -> Result<AgentWithRun, ApiError> {
    let starting_ref = spec.starting_ref.filter(|r| !r.trim().is_empty());
    if let Some(reference) = &starting_ref {
        BranchName::parse(reference).map_err(|_| invalid(format!("{reference:?} is not a valid git ref")))?;
    }
    let branch_name = match &spec.branch_name {
        Some(name) => BranchName::parse(name).map_err(invalid)?,
        None => BranchName::generated(&spec.prompt, &spec.agent_id),
    };
    let principal = caller.principal();
    let team_id = principal.team_id();
    let repository = spec.repository;
    let usable = app.store.usable_repositories(team_id, caller_user(principal)).await?;
    let Some(authorized) = usable.iter().find(|u| u.repository.url == repository) else {
        // A service account sees only team-level integrations; say so when the repository is
        // authorized, but only personally.
        if caller_user(principal).is_none()
            && app.store.repository_in_personal_integration(team_id, &repository).await?
        {
            return Err(ApiError::TeamIntegrationRequired);
        }
        return Err(ApiError::RepositoryAccess(format!(
            "Repository {repository} is not authorized by an integration you can use"
        )));
    };
    let new = NewAgent {
        id: spec.agent_id,
        name: spec.prompt.title(),
        integration_id: authorized.integration_id.clone(),
        repository_url: repository.clone(),
        clone_url: authorized.repository.effective_clone_url().to_owned(),
        starting_ref,
        branch_name,
        model: spec.model,
        auto_create_pr: spec.auto_create_pr,
        webhook_url: spec.webhook_url,
        webhook_secret: spec.webhook_secret,
        create_digest: spec.create_digest,
    };
    Ok(app
        .store
        .create_agent(team_id, &new, &RunId::generate(), &spec.prompt, principal, &caller.audit_context())
        .await?)
}

/// Launch an agent on an authorized repository. Answers 201 with status `CREATING`.
#[utoipa::path(
    post, path = "/v0/agents", tag = "agents-v0",
    request_body = LaunchRequest,
    responses((status = 201, body = AgentV0), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "Repository not authorized for the caller", body = ErrorBody))
)]
pub async fn launch_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    AppJson(body): AppJson<LaunchRequest>,
) -> ApiResult<(StatusCode, Json<AgentV0>)> {
    let prompt = Prompt::parse(&body.prompt.text).map_err(invalid)?;
    if body.prompt.images.len() > 5 {
        return Err(ApiError::Validation("prompt.images holds at most 5 images".into()));
    }
    if body.source.pr_url.is_some() {
        return Err(ApiError::Validation("source.prUrl is not supported by the git provider".into()));
    }
    let raw_repository =
        body.source.repository.as_deref().ok_or_else(|| invalid("source.repository is required"))?;
    let repository = RepositoryUrl::parse(raw_repository).map_err(invalid)?;
    let model = resolve_model(&app, body.model.as_deref())?;
    if let Some(webhook) = &body.webhook {
        let secret_ok = webhook.secret.as_ref().is_none_or(|s| (32..=256).contains(&s.len()));
        if webhook.url.len() > 2048
            || !(webhook.url.starts_with("https://") || webhook.url.starts_with("http://"))
            || !secret_ok
        {
            return Err(invalid(
                "webhook.url must be an http(s) URL of at most 2048 characters, webhook.secret 32 to 256 characters",
            ));
        }
    }
    let target = body.target.unwrap_or_default();
    let spec = LaunchSpec {
        agent_id: AgentId::generate(),
        prompt,
        repository,
        starting_ref: body.source.git_ref,
        branch_name: target.branch_name,
        model,
        auto_create_pr: target.auto_create_pr,
        webhook_url: body.webhook.as_ref().map(|w| w.url.clone()),
        webhook_secret: body.webhook.and_then(|w| w.secret),
        create_digest: None,
    };
    let created = launch(&app, &caller, spec).await?;
    Ok((StatusCode::CREATED, Json(agent_body(&app, &created))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListAgentsQuery {
    /// 1–100, default 20.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only agents working on this pull request (none, for the git provider).
    pub pr_url: Option<String>,
    /// Only agents this service account started (owners and admins see every service account's).
    pub service_account_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentListV0 {
    pub agents: Vec<AgentV0>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Agents you can see, newest first.
#[utoipa::path(
    get, path = "/v0/agents", tag = "agents-v0", params(ListAgentsQuery),
    responses((status = 200, body = AgentListV0), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_agents(
    State(app): State<AppState>,
    caller: Authenticated,
    AppQuery(query): AppQuery<ListAgentsQuery>,
) -> ApiResult<Json<AgentListV0>> {
    let page = page_request(Some(query.limit.unwrap_or(20)), query.cursor)?;
    if query.pr_url.is_some() {
        return Ok(Json(AgentListV0 { agents: Vec::new(), next_cursor: None }));
    }
    let listed = app
        .store
        .list_agents(
            caller.principal().team_id(),
            &visibility(caller.principal()),
            query.service_account_id.as_deref(),
            &page,
        )
        .await?;
    Ok(Json(AgentListV0 {
        agents: listed.items.iter().map(|a| agent_body(&app, a)).collect(),
        next_cursor: listed.next_cursor,
    }))
}

/// One agent: status and results.
#[utoipa::path(
    get, path = "/v0/agents/{id}", tag = "agents-v0",
    params(("id" = String, Path, description = "Agent id (`bc-<uuid>`)")),
    responses((status = 200, body = AgentV0), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentV0>> {
    let found = visible_agent(&app, &caller, &parse_agent_id(&id)?).await?;
    Ok(Json(agent_body(&app, &found)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentIdBody {
    pub id: String,
}

/// Delete an agent permanently (a running run is stopped).
#[utoipa::path(
    delete, path = "/v0/agents/{id}", tag = "agents-v0",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentIdBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentIdBody>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    app.store.delete_agent(caller.principal().team_id(), &id, &caller.audit_context()).await?;
    Ok(Json(AgentIdBody { id: id.to_string() }))
}

/// Stop the agent's running work. It ends `STOPPED`.
#[utoipa::path(
    post, path = "/v0/agents/{id}/stop", tag = "agents-v0",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentIdBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn stop_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentIdBody>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    app.store.stop_agent(caller.principal().team_id(), &id, &caller.audit_context()).await?;
    Ok(Json(AgentIdBody { id: id.to_string() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowupRequest {
    pub prompt: PromptInput,
}

/// Continue the agent on its branch with a new prompt.
#[utoipa::path(
    post, path = "/v0/agents/{id}/followup", tag = "agents-v0",
    params(("id" = String, Path, description = "Agent id")),
    request_body = FollowupRequest,
    responses((status = 200, body = AgentIdBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn followup(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    AppJson(body): AppJson<FollowupRequest>,
) -> ApiResult<Json<AgentIdBody>> {
    let id = parse_agent_id(&id)?;
    let prompt = Prompt::parse(&body.prompt.text).map_err(invalid)?;
    if body.prompt.images.len() > 5 {
        return Err(ApiError::Validation("prompt.images holds at most 5 images".into()));
    }
    visible_agent(&app, &caller, &id).await?;
    app.store
        .add_followup(
            caller.principal().team_id(),
            &id,
            &RunId::generate(),
            &prompt,
            caller.principal(),
            &caller.audit_context(),
        )
        .await?;
    Ok(Json(AgentIdBody { id: id.to_string() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageV0 {
    pub id: String,
    /// `user_message` or `assistant_message`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationV0 {
    pub id: String,
    pub messages: Vec<MessageV0>,
}

/// The agent's conversation, oldest first.
#[utoipa::path(
    get, path = "/v0/agents/{id}/conversation", tag = "agents-v0",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = ConversationV0), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn conversation(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationV0>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    let messages = app.store.agent_messages(&id).await?;
    Ok(Json(ConversationV0 {
        id: id.to_string(),
        messages: messages
            .iter()
            .filter(|m| m.kind == "user_message" || m.kind == "assistant_message")
            .map(|m| MessageV0 {
                id: format!("msg-{}-{}", m.run_id.as_str().trim_start_matches("run-"), m.seq),
                kind: m.kind.clone(),
                text: m.body["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsV0 {
    pub models: Vec<String>,
}

/// The models agents can use here.
#[utoipa::path(get, path = "/v0/models", tag = "agents-v0", responses((status = 200, body = ModelsV0), (status = 401, body = ErrorBody)))]
pub async fn models(State(app): State<AppState>, _caller: Authenticated) -> Json<ModelsV0> {
    Json(ModelsV0 { models: app.config.models() })
}
