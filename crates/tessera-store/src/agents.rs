//! Cloud agents and runs, and the durable run queue that workers claim from.
//!
//! A run is claimed with a lease (`lease_owner`, `lease_expires_at`) that its worker extends by
//! heartbeats. PostgreSQL claims with `for update skip locked`, so concurrent workers never
//! wait on each other; SQLite serializes writers, so a single `update … where id = (select …)`
//! is already atomic. A lease that runs out means the worker died: a run that had started ends
//! in `ERROR`; one that had not is released for one more attempt.

use std::time::Duration;

use sqlx::Row;
use tessera_domain::agent::{AgentId, BranchName, Prompt, RunId, RunStatus};
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::{ApiKeyId, IntegrationId, TeamId};
use tessera_domain::integration::RepositoryUrl;
use tessera_domain::principal::Principal;
use tessera_domain::time::Timestamp;

use crate::models::{opt_ts, parse_column, ts};
use crate::users::{decode_keyset, keyset, trim_page};
use crate::{Backend, Page, PageRequest, Store, StoreError, audit};

/// How many times a run may be claimed before a lost lease is final.
pub const MAX_ATTEMPTS: i64 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub team_id: TeamId,
    pub name: String,
    /// `user` or `service_account`, and its id: who started the agent.
    pub principal_type: String,
    pub principal_id: String,
    pub api_key_id: String,
    pub integration_id: String,
    pub repository_url: String,
    pub clone_url: String,
    pub starting_ref: Option<String>,
    pub branch_name: String,
    pub model: String,
    pub auto_create_pr: bool,
    pub webhook_url: Option<String>,
    pub create_digest: Option<String>,
    pub archived_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: RunId,
    pub agent_id: AgentId,
    pub team_id: TeamId,
    pub prompt: String,
    pub status: RunStatus,
    pub principal_type: String,
    pub principal_id: String,
    pub api_key_id: String,
    pub attempts: i64,
    pub cancel_requested_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub summary: Option<String>,
    pub error_message: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub duration_ms: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An agent with its newest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWithRun {
    pub agent: Agent,
    pub latest_run: Run,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: AgentId,
    pub name: String,
    pub integration_id: IntegrationId,
    pub repository_url: RepositoryUrl,
    pub clone_url: String,
    pub starting_ref: Option<String>,
    pub branch_name: BranchName,
    pub model: String,
    pub auto_create_pr: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// For client-chosen ids: a digest of the create request, to recognise a replay.
    pub create_digest: Option<String>,
}

/// Which agents a principal may see.
#[derive(Debug, Clone)]
pub enum AgentVisibility {
    /// Only agents this principal (`user_…` or `sa_…`) started.
    Own(String),
    /// An owner or admin: their own agents and every service account's.
    Admin { user_id: String },
}

/// One message of a run's conversation (and, later, of its event stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMessage {
    pub run_id: RunId,
    pub seq: i64,
    /// `user_message`, `assistant_message`, `tool_call`, …
    pub kind: String,
    pub body: serde_json::Value,
    pub created_at: Timestamp,
}

/// A run a worker has claimed, with what it needs to execute it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run: Run,
    pub agent: Agent,
    /// Whether an earlier run of this agent pushed the branch (a follow-up continues it).
    pub is_followup: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub summary: Option<String>,
    pub error_message: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub duration_ms: i64,
}

const AGENT_COLUMNS: &str = "id, team_id, name, principal_type, principal_id, api_key_id, integration_id, \
     repository_url, clone_url, starting_ref, branch_name, model, auto_create_pr, webhook_url, create_digest, \
     archived_at, created_at, updated_at";
const RUN_COLUMNS: &str = "id, agent_id, team_id, prompt, status, principal_type, principal_id, api_key_id, \
     attempts, cancel_requested_at, started_at, finished_at, summary, error_message, input_tokens, output_tokens, \
     duration_ms, created_at, updated_at";

fn agent_from_row(row: &sqlx::any::AnyRow) -> Result<Agent, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let auto_create_pr: i64 = row.try_get("auto_create_pr")?;
    Ok(Agent {
        id: parse_column(&id, "agents.id")?,
        team_id: parse_column(&team_id, "agents.team_id")?,
        name: row.try_get("name")?,
        principal_type: row.try_get("principal_type")?,
        principal_id: row.try_get("principal_id")?,
        api_key_id: row.try_get("api_key_id")?,
        integration_id: row.try_get("integration_id")?,
        repository_url: row.try_get("repository_url")?,
        clone_url: row.try_get("clone_url")?,
        starting_ref: row.try_get("starting_ref")?,
        branch_name: row.try_get("branch_name")?,
        model: row.try_get("model")?,
        auto_create_pr: auto_create_pr != 0,
        webhook_url: row.try_get("webhook_url")?,
        create_digest: row.try_get("create_digest")?,
        archived_at: opt_ts(row.try_get("archived_at")?),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<Run, StoreError> {
    let id: String = row.try_get("id")?;
    let agent_id: String = row.try_get("agent_id")?;
    let team_id: String = row.try_get("team_id")?;
    let status: String = row.try_get("status")?;
    Ok(Run {
        id: parse_column(&id, "runs.id")?,
        agent_id: parse_column(&agent_id, "runs.agent_id")?,
        team_id: parse_column(&team_id, "runs.team_id")?,
        prompt: row.try_get("prompt")?,
        status: parse_column(&status, "runs.status")?,
        principal_type: row.try_get("principal_type")?,
        principal_id: row.try_get("principal_id")?,
        api_key_id: row.try_get("api_key_id")?,
        attempts: row.try_get("attempts")?,
        cancel_requested_at: opt_ts(row.try_get("cancel_requested_at")?),
        started_at: opt_ts(row.try_get("started_at")?),
        finished_at: opt_ts(row.try_get("finished_at")?),
        summary: row.try_get("summary")?,
        error_message: row.try_get("error_message")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        duration_ms: row.try_get("duration_ms")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn message_from_row(row: &sqlx::any::AnyRow) -> Result<RunMessage, StoreError> {
    let run_id: String = row.try_get("run_id")?;
    let body: String = row.try_get("body")?;
    Ok(RunMessage {
        run_id: parse_column(&run_id, "run_messages.run_id")?,
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: ts(row.try_get("created_at")?),
    })
}

fn principal_columns(principal: &Principal) -> (&'static str, &str, &ApiKeyId) {
    match principal {
        Principal::User { user_id, key_id, .. } => ("user", user_id.as_str(), key_id),
        Principal::ServiceAccount { service_account_id, key_id, .. } => {
            ("service_account", service_account_id.as_str(), key_id)
        }
    }
}

async fn insert_run(
    conn: &mut sqlx::AnyConnection,
    run_id: &RunId,
    agent_id: &AgentId,
    team_id: &TeamId,
    prompt: &Prompt,
    principal: &Principal,
    now: Timestamp,
) -> Result<Run, StoreError> {
    let (principal_type, principal_id, key_id) = principal_columns(principal);
    let row = sqlx::query(&format!(
        "insert into runs (id, agent_id, team_id, prompt, status, principal_type, principal_id, api_key_id, \
         attempts, input_tokens, output_tokens, created_at, updated_at) \
         values ($1, $2, $3, $4, 'CREATING', $5, $6, $7, 0, 0, 0, $8, $8) returning {RUN_COLUMNS}"
    ))
    .bind(run_id.as_str())
    .bind(agent_id.as_str())
    .bind(team_id.as_str())
    .bind(prompt.as_str())
    .bind(principal_type)
    .bind(principal_id)
    .bind(key_id.as_str())
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    append_message(conn, run_id, "user_message", &serde_json::json!({ "text": prompt.as_str() }), now)
        .await?;
    run_from_row(&row)
}

async fn append_message(
    conn: &mut sqlx::AnyConnection,
    run_id: &RunId,
    kind: &str,
    body: &serde_json::Value,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "insert into run_messages (run_id, seq, kind, body, created_at) \
         values ($1, (select coalesce(max(seq), 0) + 1 from run_messages where run_id = $1), $2, $3, $4) returning seq",
    )
    .bind(run_id.as_str())
    .bind(kind)
    .bind(body.to_string())
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// Creates an agent and queues its first run.
    pub async fn create_agent(
        &self,
        team_id: &TeamId,
        agent: &NewAgent,
        run_id: &RunId,
        prompt: &Prompt,
        principal: &Principal,
        context: &AuditContext,
    ) -> Result<AgentWithRun, StoreError> {
        let now = context.at;
        let (principal_type, principal_id, key_id) = principal_columns(principal);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "insert into agents (id, team_id, name, principal_type, principal_id, api_key_id, integration_id, \
             repository_url, clone_url, starting_ref, branch_name, model, auto_create_pr, webhook_url, webhook_secret, \
             created_at, updated_at, create_digest) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17) \
             returning {AGENT_COLUMNS}"
        ))
        .bind(agent.id.as_str())
        .bind(team_id.as_str())
        .bind(agent.name.as_str())
        .bind(principal_type)
        .bind(principal_id)
        .bind(key_id.as_str())
        .bind(agent.integration_id.as_str())
        .bind(agent.repository_url.as_str())
        .bind(agent.clone_url.as_str())
        .bind(agent.starting_ref.as_deref())
        .bind(agent.branch_name.as_str())
        .bind(agent.model.as_str())
        .bind(i64::from(agent.auto_create_pr))
        .bind(agent.webhook_url.as_deref())
        .bind(agent.webhook_secret.as_deref())
        .bind(now.as_millis())
        .bind(agent.create_digest.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| {
            let err = StoreError::from(err);
            if err.is_unique_violation() { StoreError::AgentIdTaken } else { err }
        })?;
        let created = agent_from_row(&row)?;
        let run = insert_run(&mut tx, run_id, &agent.id, team_id, prompt, principal, now).await?;
        let change = AuditChange {
            action: AuditAction::AgentCreate,
            target_type: "agent",
            target_id: agent.id.to_string(),
            details: serde_json::json!({
                "runId": run_id.as_str(),
                "repository": agent.repository_url.as_str(),
                "branch": agent.branch_name.as_str(),
                "model": agent.model,
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(AgentWithRun { agent: created, latest_run: run })
    }

    /// An agent of the team (not deleted) with its newest run.
    pub async fn agent(&self, team_id: &TeamId, id: &AgentId) -> Result<AgentWithRun, StoreError> {
        let row = sqlx::query(&format!(
            "select {AGENT_COLUMNS} from agents where team_id = $1 and id = $2 and deleted_at is null"
        ))
        .bind(team_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let agent = agent_from_row(&row)?;
        let latest_run = self.latest_run(&agent.id).await?;
        Ok(AgentWithRun { agent, latest_run })
    }

    async fn latest_run(&self, agent_id: &AgentId) -> Result<Run, StoreError> {
        let row = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where agent_id = $1 order by created_at desc, id desc limit 1"
        ))
        .bind(agent_id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("agent {agent_id} has no run")))?;
        run_from_row(&row)
    }

    /// Agents the viewer may see, newest first; `started_by` narrows them to one principal.
    pub async fn list_agents(
        &self,
        team_id: &TeamId,
        visibility: &AgentVisibility,
        started_by: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AgentWithRun>, StoreError> {
        let (before_created, before_id) = match &page.after {
            Some(cursor) => decode_keyset(cursor)?,
            None => (i64::MAX, String::new()),
        };
        let (clause, who) = match visibility {
            AgentVisibility::Own(principal_id) => ("principal_id = $2", principal_id.as_str()),
            AgentVisibility::Admin { user_id } => {
                ("(principal_id = $2 or principal_type = 'service_account')", user_id.as_str())
            }
        };
        // Without a cursor the bounds are (max, ""), which every row passes.
        let tie_break = "(created_at < $3 or (created_at = $3 and id < $4))";
        let rows = sqlx::query(&format!(
            "select {AGENT_COLUMNS} from agents where team_id = $1 and deleted_at is null and {clause} \
             and {tie_break} and ($6 = '' or principal_id = $6) order by created_at desc, id desc limit $5"
        ))
        .bind(team_id.as_str())
        .bind(who)
        .bind(before_created)
        .bind(before_id)
        .bind(i64::from(page.limit) + 1)
        .bind(started_by.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        let mut agents = rows.iter().map(agent_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor =
            trim_page(&mut agents, page.limit, |a| keyset(a.created_at.as_millis(), a.id.as_str()));
        let mut items = Vec::with_capacity(agents.len());
        for agent in agents {
            let latest_run = self.latest_run(&agent.id).await?;
            items.push(AgentWithRun { agent, latest_run });
        }
        Ok(Page { items, next_cursor })
    }

    /// Every message of every run of the agent, in order.
    pub async fn agent_messages(&self, agent_id: &AgentId) -> Result<Vec<RunMessage>, StoreError> {
        let rows = sqlx::query(
            "select m.run_id, m.seq, m.kind, m.body, m.created_at from run_messages m \
             join runs r on r.id = m.run_id where r.agent_id = $1 order by r.created_at, r.id, m.seq",
        )
        .bind(agent_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Queues a follow-up run; refused while another run of the agent is active.
    pub async fn add_followup(
        &self,
        team_id: &TeamId,
        agent_id: &AgentId,
        run_id: &RunId,
        prompt: &Prompt,
        principal: &Principal,
        context: &AuditContext,
    ) -> Result<Run, StoreError> {
        let mut tx = self.begin_write().await?;
        let locked: Option<Option<i64>> = sqlx::query_scalar(
            "update agents set updated_at = $1 where id = $2 and team_id = $3 and deleted_at is null returning archived_at",
        )
        .bind(context.at.as_millis())
        .bind(agent_id.as_str())
        .bind(team_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        match locked {
            None => return Err(StoreError::NotFound),
            Some(Some(_)) => return Err(StoreError::AgentArchived),
            Some(None) => {}
        }
        let active: i64 = sqlx::query_scalar(
            "select count(*) from runs where agent_id = $1 and status in ('CREATING', 'RUNNING')",
        )
        .bind(agent_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if active > 0 {
            return Err(StoreError::AgentBusy);
        }
        let run = insert_run(&mut tx, run_id, agent_id, team_id, prompt, principal, context.at).await?;
        let change = AuditChange {
            action: AuditAction::AgentFollowup,
            target_type: "agent",
            target_id: agent_id.to_string(),
            details: serde_json::json!({ "runId": run_id.as_str() }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(run)
    }

    /// Asks the agent's active run to stop. A run no worker has started is cancelled at once;
    /// a running one is flagged, and its worker stops it at its next heartbeat.
    pub async fn stop_agent(
        &self,
        team_id: &TeamId,
        agent_id: &AgentId,
        context: &AuditContext,
    ) -> Result<Run, StoreError> {
        let now = context.at.as_millis();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where agent_id = $1 and team_id = $2 and status in ('CREATING', 'RUNNING') \
             order by created_at desc limit 1"
        ))
        .bind(agent_id.as_str())
        .bind(team_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::RunNotActive)?;
        let run = run_from_row(&row)?;
        let unclaimed = run.status == RunStatus::Creating;
        let row = sqlx::query(&format!(
            "update runs set cancel_requested_at = $1, updated_at = $1, \
             status = case when status = 'CREATING' and lease_owner is null then 'CANCELLED' else status end, \
             finished_at = case when status = 'CREATING' and lease_owner is null then $1 else finished_at end \
             where id = $2 returning {RUN_COLUMNS}"
        ))
        .bind(now)
        .bind(run.id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let stopped = run_from_row(&row)?;
        let change = AuditChange {
            action: AuditAction::AgentStop,
            target_type: "agent",
            target_id: agent_id.to_string(),
            details: serde_json::json!({ "runId": run.id.as_str(), "wasQueued": unclaimed }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(stopped)
    }

    /// Deletes an agent for good (its record is kept for the audit trail, hidden from the API).
    pub async fn delete_agent(
        &self,
        team_id: &TeamId,
        agent_id: &AgentId,
        context: &AuditContext,
    ) -> Result<(), StoreError> {
        let now = context.at.as_millis();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("update agents set deleted_at = $1, updated_at = $1 where id = $2 and team_id = $3 and deleted_at is null")
            .bind(now)
            .bind(agent_id.as_str())
            .bind(team_id.as_str())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "update runs set cancel_requested_at = $1, updated_at = $1, \
             status = case when status = 'CREATING' and lease_owner is null then 'CANCELLED' else status end \
             where agent_id = $2 and status in ('CREATING', 'RUNNING')",
        )
        .bind(now)
        .bind(agent_id.as_str())
        .execute(&mut *tx)
        .await?;
        let change = AuditChange {
            action: AuditAction::AgentDelete,
            target_type: "agent",
            target_id: agent_id.to_string(),
            details: serde_json::json!({}),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the oldest queued run for `worker_id`, with a lease until `now + lease`. A worker
    /// of one team (`tessera worker`) passes its team; the server's own worker passes `None`.
    pub async fn claim_run(
        &self,
        worker_id: &str,
        team: Option<&TeamId>,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<ClaimedRun>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => "for update skip locked",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "update runs set lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 \
             where id = (select id from runs where status = 'CREATING' and lease_owner is null \
                         and ($4 = '' or team_id = $4) \
                         order by created_at, id limit 1 {lock}) \
             returning {RUN_COLUMNS}"
        ))
        .bind(worker_id)
        .bind(now.saturating_add(lease).as_millis())
        .bind(now.as_millis())
        .bind(team.map_or("", TeamId::as_str))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let run = run_from_row(&row)?;
        let agent_row = sqlx::query(&format!("select {AGENT_COLUMNS} from agents where id = $1"))
            .bind(run.agent_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let agent = agent_from_row(&agent_row)?;
        let earlier: i64 = sqlx::query_scalar(
            "select count(*) from runs where agent_id = $1 and id <> $2 and status = 'FINISHED'",
        )
        .bind(agent.id.as_str())
        .bind(run.id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ClaimedRun { run, agent, is_followup: earlier > 0 }))
    }

    /// Marks a claimed run as started. Fails with `LeaseLost` if the lease is gone.
    pub async fn start_run(&self, run_id: &RunId, worker_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "update runs set status = 'RUNNING', started_at = $1, updated_at = $1 \
             where id = $2 and lease_owner = $3 and status = 'CREATING'",
        )
        .bind(now.as_millis())
        .bind(run_id.as_str())
        .bind(worker_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::LeaseLost);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Extends the lease; returns whether a stop was requested.
    pub async fn heartbeat(
        &self,
        run_id: &RunId,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "update runs set lease_expires_at = $1 where id = $2 and lease_owner = $3 \
             and status in ('CREATING', 'RUNNING') returning cancel_requested_at",
        )
        .bind(now.saturating_add(lease).as_millis())
        .bind(run_id.as_str())
        .bind(worker_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::LeaseLost)?;
        tx.commit().await?;
        let cancel_requested_at: Option<i64> = row.try_get("cancel_requested_at")?;
        Ok(cancel_requested_at.is_some())
    }

    /// Records a message of a running run (assistant text, a tool call, …).
    pub async fn append_run_message(
        &self,
        run_id: &RunId,
        kind: &str,
        body: &serde_json::Value,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let seq = append_message(&mut tx, run_id, kind, body, now).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Ends a run the worker holds.
    pub async fn finish_run(
        &self,
        run_id: &RunId,
        worker_id: &str,
        outcome: &RunOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "update runs set status = $1, summary = $2, error_message = $3, input_tokens = $4, output_tokens = $5, \
             duration_ms = $6, finished_at = $7, updated_at = $7, lease_owner = null, lease_expires_at = null \
             where id = $8 and lease_owner = $9 and status in ('CREATING', 'RUNNING')",
        )
        .bind(outcome.status.as_str())
        .bind(outcome.summary.as_deref())
        .bind(outcome.error_message.as_deref())
        .bind(outcome.input_tokens)
        .bind(outcome.output_tokens)
        .bind(outcome.duration_ms)
        .bind(now.as_millis())
        .bind(run_id.as_str())
        .bind(worker_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::LeaseLost);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends or releases runs whose worker stopped heartbeating. Returns how many it touched.
    pub async fn recover_expired_leases(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let failed = sqlx::query(
            "update runs set status = 'ERROR', error_message = 'The worker running this run stopped responding', \
             finished_at = $1, updated_at = $1, lease_owner = null, lease_expires_at = null \
             where lease_expires_at < $1 and (status = 'RUNNING' or (status = 'CREATING' and attempts >= $2))",
        )
        .bind(now.as_millis())
        .bind(MAX_ATTEMPTS)
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "update runs set lease_owner = null, lease_expires_at = null, updated_at = $1 \
             where lease_expires_at < $1 and status = 'CREATING'",
        )
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(failed.rows_affected() + released.rows_affected())
    }

    /// Archives (or unarchives) an agent; idempotent. An archived agent refuses new runs.
    pub async fn set_agent_archived(
        &self,
        team_id: &TeamId,
        agent_id: &AgentId,
        archived: bool,
        context: &AuditContext,
    ) -> Result<(), StoreError> {
        let now = context.at.as_millis();
        let (sql, action) = if archived {
            (
                "update agents set archived_at = $1, updated_at = $1 where id = $2 and team_id = $3 \
              and deleted_at is null and archived_at is null",
                AuditAction::AgentArchive,
            )
        } else {
            (
                "update agents set archived_at = null, updated_at = $1 where id = $2 and team_id = $3 \
              and deleted_at is null and archived_at is not null",
                AuditAction::AgentUnarchive,
            )
        };
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(sql)
            .bind(now)
            .bind(agent_id.as_str())
            .bind(team_id.as_str())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            // Already in the asked-for state (nothing to record), or not there at all.
            let exists: Option<String> = sqlx::query_scalar(
                "select id from agents where id = $1 and team_id = $2 and deleted_at is null",
            )
            .bind(agent_id.as_str())
            .bind(team_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            return if exists.is_some() { Ok(()) } else { Err(StoreError::NotFound) };
        }
        let change = AuditChange {
            action,
            target_type: "agent",
            target_id: agent_id.to_string(),
            details: serde_json::json!({}),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The agent's runs, newest first.
    pub async fn agent_runs(&self, agent_id: &AgentId, page: &PageRequest) -> Result<Page<Run>, StoreError> {
        let (before_created, before_id) = match &page.after {
            Some(cursor) => decode_keyset(cursor)?,
            None => (i64::MAX, String::new()),
        };
        // Without a cursor the bounds are (max, ""), which every row passes.
        let tie_break = "(created_at < $2 or (created_at = $2 and id < $3))";
        let rows = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where agent_id = $1 and {tie_break} order by created_at desc, id desc limit $4"
        ))
        .bind(agent_id.as_str())
        .bind(before_created)
        .bind(before_id)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor =
            trim_page(&mut runs, page.limit, |r| keyset(r.created_at.as_millis(), r.id.as_str()));
        Ok(Page { items: runs, next_cursor })
    }

    /// Cancels one run of an agent. Only a queued or running run can be cancelled.
    pub async fn cancel_run(
        &self,
        team_id: &TeamId,
        agent_id: &AgentId,
        run_id: &RunId,
        context: &AuditContext,
    ) -> Result<Run, StoreError> {
        let run = self.run(run_id).await?;
        if run.agent_id != *agent_id || run.team_id != *team_id {
            return Err(StoreError::NotFound);
        }
        if run.status.is_terminal() {
            return Err(StoreError::RunNotActive);
        }
        self.stop_agent(team_id, agent_id, context).await
    }

    /// Messages of a run after `after_seq`, in order.
    pub async fn run_messages_after(
        &self,
        run_id: &RunId,
        after_seq: i64,
    ) -> Result<Vec<RunMessage>, StoreError> {
        let rows = sqlx::query("select run_id, seq, kind, body, created_at from run_messages where run_id = $1 and seq > $2 order by seq")
            .bind(run_id.as_str())
            .bind(after_seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn run(&self, run_id: &RunId) -> Result<Run, StoreError> {
        let row = sqlx::query(&format!("select {RUN_COLUMNS} from runs where id = $1"))
            .bind(run_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        run_from_row(&row)
    }
}
