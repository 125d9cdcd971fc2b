//! Cursor's Cloud Agents API v1: durable agents with one run per prompt, run streams over
//! Server-Sent Events, archive and unarchive, usage. Visibility and repository rules are the
//! v0 ones (`agents_v0::visible_agent`, `agents_v0::launch`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tessera_domain::agent::{AgentId, Prompt, RunId, RunStatus};
use tessera_domain::integration::RepositoryUrl;
use tessera_domain::time::Timestamp;
use tessera_store::StoreError;
use tessera_store::agents::{Agent, AgentWithRun, Run};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::agents_v0::{LaunchSpec, PromptInput, launch, resolve_model, visibility, visible_agent};
use crate::api::types::page_request;
use crate::error::{ApiError, ApiResult, ErrorBody, invalid};
use crate::extract::{AppQuery, Authenticated, OptionalJson};

/// How long a finished run's stream can still be read.
pub const STREAM_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

fn parse_agent_id(raw: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(raw).map_err(|_| ApiError::NotFound)
}

fn parse_run_id(raw: &str) -> Result<RunId, ApiError> {
    RunId::parse(raw).map_err(|_| ApiError::RunNotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSelection {
    pub id: String,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoInput {
    pub url: String,
    pub starting_ref: Option<String>,
    pub pr_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAgentRequest {
    pub prompt: PromptInput,
    pub model: Option<ModelSelection>,
    /// At most 100 characters; default: from the prompt.
    pub name: Option<String>,
    /// Accepted for compatibility; runs execute on this server's workers.
    #[schema(value_type = Option<Object>)]
    pub env: Option<serde_json::Value>,
    /// Exactly one repository (the plain git provider has no multi-repo pools).
    pub repos: Option<Vec<RepoInput>>,
    pub work_on_current_branch: Option<bool>,
    #[serde(rename = "autoCreatePR")]
    pub auto_create_pr: Option<bool>,
    pub skip_reviewer_request: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub env_vars: Option<serde_json::Map<String, serde_json::Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub mcp_servers: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub custom_subagents: Option<Vec<serde_json::Value>>,
    /// `agent` (default) or `plan`.
    pub mode: Option<String>,
    /// Your own `bc-<uuid>`: repeating the same request with it returns the same agent.
    pub agent_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvBody {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoBody {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentV1 {
    pub id: String,
    pub name: String,
    /// `ACTIVE` (a run is queued or running), `IDLE` or `ARCHIVED`.
    pub status: &'static str,
    pub env: EnvBody,
    pub repos: Vec<RepoBody>,
    pub work_on_current_branch: bool,
    #[serde(rename = "autoCreatePR")]
    pub auto_create_pr: bool,
    pub url: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub latest_run_id: String,
    /// Who started the agent, and with which key (not in Cursor's schema; clients ignore it).
    pub created_by: crate::api::agents_v0::StartedBy,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchBody {
    /// The repository without its scheme, e.g. `github.com/acme/widgets`.
    pub repo_url: String,
    pub branch: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GitBody {
    pub branches: Vec<BranchBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunV1 {
    pub id: String,
    pub agent_id: String,
    /// `CREATING`, `RUNNING`, `FINISHED`, `ERROR`, `CANCELLED` or `EXPIRED`.
    pub status: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The final reply (or the error) of a finished run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub git: GitBody,
}

fn agent_body(app: &AppState, found: &AgentWithRun) -> AgentV1 {
    let agent = &found.agent;
    let status = if agent.archived_at.is_some() {
        "ARCHIVED"
    } else if found.latest_run.status.is_terminal() {
        "IDLE"
    } else {
        "ACTIVE"
    };
    AgentV1 {
        id: agent.id.to_string(),
        name: agent.name.clone(),
        status,
        env: EnvBody { kind: "cloud" },
        repos: vec![RepoBody { url: agent.repository_url.clone(), starting_ref: agent.starting_ref.clone() }],
        work_on_current_branch: agent.starting_ref.as_deref() == Some(agent.branch_name.as_str()),
        auto_create_pr: agent.auto_create_pr,
        url: format!("{}/agents/{}", app.config.public_url.trim_end_matches('/'), agent.id),
        created_at: agent.created_at,
        updated_at: agent.updated_at,
        latest_run_id: found.latest_run.id.to_string(),
        created_by: crate::api::agents_v0::started_by(agent),
    }
}

fn run_body(agent: &Agent, run: &Run) -> RunV1 {
    let repo_url =
        agent.repository_url.split_once("://").map_or(agent.repository_url.as_str(), |(_, rest)| rest);
    RunV1 {
        id: run.id.to_string(),
        agent_id: run.agent_id.to_string(),
        status: run.status.as_str(),
        created_at: run.created_at,
        updated_at: run.updated_at,
        duration_ms: run.duration_ms,
        result: run.summary.clone().or_else(|| run.error_message.clone()),
        git: GitBody {
            branches: vec![BranchBody { repo_url: repo_url.to_owned(), branch: agent.branch_name.clone() }],
        },
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreateAgentResponse {
    pub agent: AgentV1,
    pub run: RunV1,
}

fn check_create_limits(body: &CreateAgentRequest) -> Result<(), ApiError> {
    if body.prompt.images.len() > 5 {
        return Err(invalid("prompt.images holds at most 5 images"));
    }
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(invalid("name must be at most 100 characters"));
    }
    if let Some(vars) = &body.env_vars {
        if body.agent_id.is_some() {
            return Err(invalid("envVars cannot be combined with agentId"));
        }
        let bad = vars.len() > 50
            || vars.iter().any(|(name, value)| {
                name.len() > 255
                    || name.starts_with("CURSOR_")
                    || value.as_str().is_none_or(|v| v.len() > 4096)
            });
        if bad {
            return Err(invalid(
                "envVars: at most 50 string values of at most 4096 bytes, names at most 255 bytes and not starting with CURSOR_",
            ));
        }
    }
    if body.mcp_servers.as_ref().is_some_and(|s| s.len() > 50)
        || body.custom_subagents.as_ref().is_some_and(|s| s.len() > 20)
    {
        return Err(invalid("at most 50 mcpServers and 20 customSubagents"));
    }
    if body.mode.as_deref().is_some_and(|m| m != "agent" && m != "plan") {
        return Err(invalid("mode must be agent or plan"));
    }
    Ok(())
}

/// Create an agent and queue its first run. With your own `agentId`, repeating the same
/// request returns the same agent and run; a different request with that id gets 409.
#[utoipa::path(
    post, path = "/v1/agents", tag = "agents-v1",
    request_body = CreateAgentRequest,
    responses((status = 201, body = CreateAgentResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn create_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    crate::extract::AppJson(raw): crate::extract::AppJson<serde_json::Value>,
) -> ApiResult<Response> {
    let body: CreateAgentRequest = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::Validation(format!("Invalid request body: {e}")))?;
    check_create_limits(&body)?;
    let prompt = Prompt::parse(&body.prompt.text).map_err(invalid)?;
    let repos = body.repos.unwrap_or_default();
    let [repo] = repos.as_slice() else {
        return Err(invalid("repos must hold exactly one repository"));
    };
    if repo.pr_url.is_some() {
        return Err(invalid("repos[].prUrl is not supported by the git provider"));
    }
    let repository = RepositoryUrl::parse(&repo.url).map_err(invalid)?;
    let model = resolve_model(&app, body.model.as_ref().map(|m| m.id.as_str()))?;
    let work_on_current_branch = body.work_on_current_branch.unwrap_or(false);
    if work_on_current_branch && repo.starting_ref.is_none() {
        return Err(invalid("workOnCurrentBranch needs repos[].startingRef"));
    }
    let (agent_id, create_digest) = match &body.agent_id {
        Some(raw_id) => {
            let id = AgentId::parse(raw_id).map_err(|_| invalid("agentId must be bc-<uuid>"))?;
            let digest = sha2::Sha256::digest(format!("{}\n{raw}", caller.principal().id_str()).as_bytes());
            (id, Some(tessera_domain::secret::hex(&digest)))
        }
        None => (AgentId::generate(), None),
    };
    let spec = LaunchSpec {
        agent_id: agent_id.clone(),
        prompt,
        repository,
        starting_ref: repo.starting_ref.clone(),
        branch_name: work_on_current_branch.then(|| repo.starting_ref.clone()).flatten(),
        model,
        auto_create_pr: body.auto_create_pr.unwrap_or(false),
        webhook_url: None,
        webhook_secret: None,
        create_digest: create_digest.clone(),
    };
    let (status, created) = match launch(&app, &caller, spec).await {
        Ok(created) => (StatusCode::CREATED, created),
        Err(ApiError::AgentIdConflict) => {
            // The same request again: answer as the first time. Anything else is a conflict.
            let existing = app.store.agent(caller.principal().team_id(), &agent_id).await;
            match existing {
                Ok(found)
                    if found.agent.create_digest.is_some() && found.agent.create_digest == create_digest =>
                {
                    let first_run = app
                        .store
                        .agent_runs(&agent_id, &tessera_store::PageRequest { after: None, limit: 100 })
                        .await?
                        .items
                        .pop()
                        .unwrap_or_else(|| found.latest_run.clone());
                    (StatusCode::CREATED, AgentWithRun { agent: found.agent, latest_run: first_run })
                }
                _ => return Err(ApiError::AgentIdConflict),
            }
        }
        Err(err) => return Err(err),
    };
    let response = CreateAgentResponse {
        agent: agent_body(&app, &created),
        run: run_body(&created.agent, &created.latest_run),
    };
    Ok((status, Json(response)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListAgentsV1Query {
    /// 1–100, default 20.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub pr_url: Option<String>,
    /// Default true.
    pub include_archived: Option<bool>,
    /// Only agents this service account started (owners and admins see every service account's).
    pub service_account_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentListV1 {
    pub items: Vec<AgentV1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Agents you can see, newest first.
#[utoipa::path(
    get, path = "/v1/agents", tag = "agents-v1", params(ListAgentsV1Query),
    responses((status = 200, body = AgentListV1), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn list_agents(
    State(app): State<AppState>,
    caller: Authenticated,
    AppQuery(query): AppQuery<ListAgentsV1Query>,
) -> ApiResult<Json<AgentListV1>> {
    let page = page_request(Some(query.limit.unwrap_or(20)), query.cursor)?;
    if query.pr_url.is_some() {
        return Ok(Json(AgentListV1 { items: Vec::new(), next_cursor: None }));
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
    let include_archived = query.include_archived.unwrap_or(true);
    Ok(Json(AgentListV1 {
        items: listed
            .items
            .iter()
            .filter(|a| include_archived || a.agent.archived_at.is_none())
            .map(|a| agent_body(&app, a))
            .collect(),
        next_cursor: listed.next_cursor,
    }))
}

/// One agent.
#[utoipa::path(
    get, path = "/v1/agents/{id}", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id (`bc-<uuid>`)")),
    responses((status = 200, body = AgentV1), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentV1>> {
    let found = visible_agent(&app, &caller, &parse_agent_id(&id)?).await?;
    Ok(Json(agent_body(&app, &found)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdBody {
    pub id: String,
}

/// Delete an agent permanently.
#[utoipa::path(
    delete, path = "/v1/agents/{id}", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = IdBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn delete_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<IdBody>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    app.store.delete_agent(caller.principal().team_id(), &id, &caller.audit_context()).await?;
    Ok(Json(IdBody { id: id.to_string() }))
}

/// Archive an agent: it stays readable and refuses new runs. Idempotent.
#[utoipa::path(
    post, path = "/v1/agents/{id}/archive", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = IdBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn archive_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<IdBody>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    app.store.set_agent_archived(caller.principal().team_id(), &id, true, &caller.audit_context()).await?;
    Ok(Json(IdBody { id: id.to_string() }))
}

/// Unarchive an agent. Idempotent.
#[utoipa::path(
    post, path = "/v1/agents/{id}/unarchive", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = IdBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn unarchive_agent(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<IdBody>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    app.store.set_agent_archived(caller.principal().team_id(), &id, false, &caller.audit_context()).await?;
    Ok(Json(IdBody { id: id.to_string() }))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRunRequest {
    pub prompt: Option<PromptInput>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub mcp_servers: Option<Vec<serde_json::Value>>,
    pub mode: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    pub run: RunV1,
}

/// Queue a follow-up run. 409 `agent_busy` while another run is active.
#[utoipa::path(
    post, path = "/v1/agents/{id}/runs", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id")),
    request_body = CreateRunRequest,
    responses((status = 201, body = RunResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn create_run(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CreateRunRequest>,
) -> ApiResult<(StatusCode, Json<RunResponse>)> {
    let id = parse_agent_id(&id)?;
    let prompt_input = body.prompt.ok_or_else(|| invalid("prompt is required"))?;
    let prompt = Prompt::parse(&prompt_input.text).map_err(invalid)?;
    if body.mode.as_deref().is_some_and(|m| m != "agent" && m != "plan") {
        return Err(invalid("mode must be agent or plan"));
    }
    let found = visible_agent(&app, &caller, &id).await?;
    let run = app
        .store
        .add_followup(
            caller.principal().team_id(),
            &id,
            &RunId::generate(),
            &prompt,
            caller.principal(),
            &caller.audit_context(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RunResponse { run: run_body(&found.agent, &run) })))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunListV1 {
    pub items: Vec<RunV1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The agent's runs, newest first.
#[utoipa::path(
    get, path = "/v1/agents/{id}/runs", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id"), RunsQuery),
    responses((status = 200, body = RunListV1), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn list_runs(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<RunsQuery>,
) -> ApiResult<Json<RunListV1>> {
    let id = parse_agent_id(&id)?;
    let found = visible_agent(&app, &caller, &id).await?;
    let page = page_request(Some(query.limit.unwrap_or(20)), query.cursor)?;
    let runs = app.store.agent_runs(&id, &page).await?;
    Ok(Json(RunListV1 {
        items: runs.items.iter().map(|r| run_body(&found.agent, r)).collect(),
        next_cursor: runs.next_cursor,
    }))
}

async fn visible_run(
    app: &AppState,
    caller: &Authenticated,
    agent_id: &str,
    run_id: &str,
) -> Result<(AgentWithRun, Run), ApiError> {
    let agent_id = parse_agent_id(agent_id)?;
    let run_id = parse_run_id(run_id)?;
    let found = visible_agent(app, caller, &agent_id).await?;
    let run = match app.store.run(&run_id).await {
        Ok(run) if run.agent_id == agent_id => run,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::RunNotFound),
        Err(err) => return Err(err.into()),
    };
    Ok((found, run))
}

/// One run.
#[utoipa::path(
    get, path = "/v1/agents/{id}/runs/{runId}", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id"), ("runId" = String, Path, description = "Run id (`run-<uuid>`)")),
    responses((status = 200, body = RunV1), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_run(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<RunV1>> {
    let (found, run) = visible_run(&app, &caller, &id, &run_id).await?;
    Ok(Json(run_body(&found.agent, &run)))
}

/// Cancel the active run. 409 `run_not_cancellable` for a finished one.
#[utoipa::path(
    post, path = "/v1/agents/{id}/runs/{runId}/cancel", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id"), ("runId" = String, Path, description = "Run id")),
    responses((status = 200, body = IdBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn cancel_run(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<IdBody>> {
    let (found, run) = visible_run(&app, &caller, &id, &run_id).await?;
    match app
        .store
        .cancel_run(caller.principal().team_id(), &found.agent.id, &run.id, &caller.audit_context())
        .await
    {
        Ok(_) => Ok(Json(IdBody { id: run.id.to_string() })),
        Err(StoreError::RunNotActive) => Err(ApiError::RunNotCancellable),
        Err(err) => Err(err.into()),
    }
}

#[derive(Debug, Serialize, ToSchema, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_read_tokens: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunUsage {
    pub id: String,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub total_usage: Usage,
    pub runs: Vec<RunUsage>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct UsageQuery {
    pub run_id: Option<String>,
}

/// Token usage of the agent's runs.
#[utoipa::path(
    get, path = "/v1/agents/{id}/usage", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id"), UsageQuery),
    responses((status = 200, body = UsageResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn usage(
    State(app): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<UsageQuery>,
) -> ApiResult<Json<UsageResponse>> {
    let id = parse_agent_id(&id)?;
    visible_agent(&app, &caller, &id).await?;
    let mut runs =
        app.store.agent_runs(&id, &tessera_store::PageRequest { after: None, limit: 100 }).await?.items;
    if let Some(run_id) = &query.run_id {
        runs.retain(|r| r.id.as_str() == run_id);
        if runs.is_empty() {
            return Err(ApiError::RunNotFound);
        }
    }
    let usage_of = |run: &Run| Usage {
        input_tokens: run.input_tokens,
        output_tokens: run.output_tokens,
        total_tokens: run.input_tokens + run.output_tokens,
        ..Usage::default()
    };
    let total = runs.iter().map(usage_of).fold(Usage::default(), |sum, u| Usage {
        input_tokens: sum.input_tokens + u.input_tokens,
        output_tokens: sum.output_tokens + u.output_tokens,
        total_tokens: sum.total_tokens + u.total_tokens,
        ..Usage::default()
    });
    Ok(Json(UsageResponse {
        total_usage: total,
        runs: runs.iter().map(|r| RunUsage { id: r.id.to_string(), usage: usage_of(r) }).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelV1 {
    pub id: String,
    pub display_name: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsV1 {
    pub items: Vec<ModelV1>,
}

/// The models agents can use here.
#[utoipa::path(get, path = "/v1/models", tag = "agents-v1", responses((status = 200, body = ModelsV1), (status = 401, body = ErrorBody)))]
pub async fn models(State(app): State<AppState>, _caller: Authenticated) -> Json<ModelsV1> {
    let describe = |id: &str| {
        if id == crate::worker::scripted::MODEL {
            "Deterministic built-in model that follows @write/@append/@delete/@sleep/@fail lines".to_owned()
        } else {
            "An agent CLI run by this server's workers".to_owned()
        }
    };
    Json(ModelsV1 {
        items: app
            .config
            .models()
            .into_iter()
            .map(|id| ModelV1 { display_name: id.clone(), description: describe(&id), id })
            .collect(),
    })
}

/// The event id prefix of a run: its id's random tail, so ids of other runs are recognised.
fn event_prefix(run_id: &RunId) -> String {
    run_id.as_str().rsplit('-').next().unwrap_or("run").to_owned()
}

struct StreamState {
    app: AppState,
    run_id: RunId,
    prefix: String,
    last_seq: i64,
    status_sent: bool,
    finished: bool,
    pending: VecDeque<Event>,
    idle_polls: u32,
}

fn data(value: serde_json::Value) -> String {
    value.to_string()
}

async fn next_event(mut state: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            return Some((Ok(event), state));
        }
        if state.finished {
            return None;
        }
        let run = match state.app.store.run(&state.run_id).await {
            Ok(run) => run,
            Err(_) => {
                state.finished = true;
                state.pending.push_back(Event::default().event("error").data(data(
                    serde_json::json!({ "code": "internal_error", "message": "The run could not be read" }),
                )));
                continue;
            }
        };
        if !state.status_sent {
            state.status_sent = true;
            state.pending.push_back(
                Event::default().event("status").data(data(
                    serde_json::json!({ "runId": run.id.as_str(), "status": run.status.as_str() }),
                )),
            );
            continue;
        }
        let messages =
            state.app.store.run_messages_after(&state.run_id, state.last_seq).await.unwrap_or_default();
        for message in &messages {
            state.last_seq = message.seq;
            let id = format!("{}-{}", state.prefix, message.seq);
            let event = match message.kind.as_str() {
                "assistant_message" => Event::default()
                    .event("assistant")
                    .data(data(serde_json::json!({ "text": message.body["text"] }))),
                "tool_call" => Event::default().event("tool_call").data(data(serde_json::json!({
                    "callId": format!("call-{}", message.seq),
                    "name": message.body["name"],
                    "status": message.body["status"],
                    "args": message.body["args"],
                }))),
                _ => continue,
            };
            state.pending.push_back(event.id(id));
        }
        if !messages.is_empty() {
            continue;
        }
        if run.status.is_terminal() {
            state.finished = true;
            let result_id = format!("{}-{}", state.prefix, state.last_seq + 1);
            if run.status == RunStatus::Error {
                state.pending.push_back(Event::default().event("error").data(data(serde_json::json!({
                    "code": "run_failed", "message": run.error_message,
                }))));
            }
            state.pending.push_back(Event::default().event("result").id(result_id.clone()).data(data(serde_json::json!({
                "runId": run.id.as_str(), "status": run.status.as_str(), "text": run.summary.or(run.error_message), "durationMs": run.duration_ms,
            }))));
            state.pending.push_back(Event::default().event("done").id(result_id).data("{}"));
            continue;
        }
        state.idle_polls += 1;
        if state.idle_polls.is_multiple_of(75) {
            state.pending.push_back(Event::default().event("heartbeat").data("{}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stream a run as Server-Sent Events: `status` first (no id), then `assistant`, `tool_call`,
/// `heartbeat`, `error`, `result` and `done`. Reconnect with `Last-Event-ID` to resume after
/// that event (a fresh `status` comes first).
#[utoipa::path(
    get, path = "/v1/agents/{id}/runs/{runId}/stream", tag = "agents-v1",
    params(("id" = String, Path, description = "Agent id"), ("runId" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = 400, description = "Last-Event-ID from another stream", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, description = "Past the retention period", body = ErrorBody),
    )
)]
pub async fn stream_run(
    State(app): State<AppState>,
    caller: Authenticated,
    Path((id, run_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (_, run) = visible_run(&app, &caller, &id, &run_id).await?;
    let retention_ms = i64::try_from(STREAM_RETENTION.as_millis()).unwrap_or(i64::MAX);
    if run.finished_at.is_some_and(|at| caller.now.as_millis() - at.as_millis() > retention_ms) {
        return Err(ApiError::StreamExpired);
    }
    let prefix = event_prefix(&run.id);
    let last_seq = match headers.get("last-event-id").map(|v| v.to_str().unwrap_or("")) {
        None => 0,
        Some(raw) => raw
            .strip_prefix(&format!("{prefix}-"))
            .and_then(|seq| seq.parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or(ApiError::InvalidLastEventId)?,
    };
    let state = StreamState {
        app: app.clone(),
        run_id: run.id.clone(),
        prefix,
        last_seq,
        status_sent: false,
        finished: false,
        pending: VecDeque::new(),
        idle_polls: 0,
    };
    let stream = futures_util::stream::unfold(state, next_event);
    let mut response = Sse::new(stream).into_response();
    response
        .headers_mut()
        .insert("x-cursor-stream-retention-seconds", HeaderValue::from(STREAM_RETENTION.as_secs()));
    Ok(response)
}
