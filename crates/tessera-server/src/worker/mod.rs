//! Workers: claim queued runs and execute them on a checkout of the repository.
//!
//! A run goes: claim (lease) → clone the repository at `source.ref` into its own work
//! directory → create or continue the agent's branch → mark RUNNING → run the agent backend
//! with the prompt → commit what changed, with the run's attribution in commit trailers → push
//! the branch → record summary, usage and final status.
//!
//! While it executes, a heartbeat extends the lease every `heartbeat_interval` and picks up stop
//! requests; the backend checks the flags between steps and during sleeps, so a stop reaches it
//! within one heartbeat. A run longer than `max_run_duration` ends `EXPIRED`.

pub mod command;
pub mod git;
pub mod scripted;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_domain::agent::{Prompt, RunId, RunStatus};
use tessera_domain::time::Clock;
use tessera_store::agents::{ClaimedRun, RunOutcome};
use tessera_store::{Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in leases; unique per process.
    pub id: String,
    /// Where runs check out their repositories (one directory per run, removed afterwards).
    pub work_root: PathBuf,
    pub lease: Duration,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    pub max_run_duration: Duration,
    /// Only runs of this team (a `tessera worker` process); `None` for the server's own worker.
    pub team: Option<tessera_domain::ids::TeamId>,
    /// The digest of the key this worker runs under; re-checked before every claim, so
    /// revoking the key stops the worker.
    pub credential: Option<tessera_domain::api_key::KeyDigest>,
    /// Agent CLIs, by model; `tessera-scripted` is always there.
    pub backends: Vec<command::CommandBackend>,
    /// A git credential-store file for clone URLs that need a password or token.
    pub git_credentials: Option<PathBuf>,
}

impl WorkerConfig {
    pub fn new(work_root: PathBuf) -> WorkerConfig {
        WorkerConfig {
            id: format!("worker-{}", uuid::Uuid::now_v7().simple()),
            work_root,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(500),
            max_run_duration: Duration::from_secs(3600),
            team: None,
            credential: None,
            backends: Vec::new(),
            git_credentials: None,
        }
    }
}

/// What a backend produced.
#[derive(Debug, Default)]
pub struct BackendOutput {
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The last assistant message: the run's summary.
    pub last_message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Failed(String),
    #[error("the run was stopped")]
    Cancelled,
    #[error("the run took longer than the maximum run duration")]
    TimedOut,
    #[error("the worker lost the run's lease")]
    LeaseLost,
    #[error("the worker is shutting down")]
    Shutdown,
}

/// What a backend uses to report progress and to learn that it must stop.
pub struct RunControl {
    store: Store,
    clock: Arc<dyn Clock>,
    run_id: RunId,
    cancel: Arc<AtomicBool>,
    lease_lost: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
}

impl RunControl {
    pub fn check(&self) -> Result<(), BackendError> {
        if self.lease_lost.load(Ordering::SeqCst) {
            return Err(BackendError::LeaseLost);
        }
        if self.cancel.load(Ordering::SeqCst) {
            return Err(BackendError::Cancelled);
        }
        if *self.shutdown.borrow() {
            return Err(BackendError::Shutdown);
        }
        if Instant::now() >= self.deadline {
            return Err(BackendError::TimedOut);
        }
        Ok(())
    }

    /// Sleeps in short slices, so a stop or the deadline interrupts it.
    pub async fn sleep(&self, duration: Duration) -> Result<(), BackendError> {
        let until = Instant::now() + duration;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
        }
    }

    pub async fn assistant(&self, text: &str) {
        self.record("assistant_message", serde_json::json!({ "text": text })).await;
    }

    pub async fn tool_call(&self, name: &str, args: serde_json::Value) {
        self.record("tool_call", serde_json::json!({ "name": name, "args": args, "status": "completed" }))
            .await;
    }

    async fn record(&self, kind: &str, body: serde_json::Value) {
        if let Err(err) = self.store.append_run_message(&self.run_id, kind, &body, self.clock.now()).await {
            tracing::warn!(run.id = %self.run_id, error = %err, "Could not record a run message");
        }
    }
}

/// Whether a worker key (still) may run workers: live, a service account's, with the worker
/// permission, on an Enterprise team. Returns the key's team.
pub async fn authorize_worker_key(
    store: &Store,
    digest: &tessera_domain::api_key::KeyDigest,
    now: tessera_domain::time::Timestamp,
) -> Result<tessera_domain::ids::TeamId, String> {
    let lookup =
        store.lookup_key(digest).await.map_err(|e| e.to_string())?.ok_or("the worker key is not known")?;
    let live = lookup.revoked_at.is_none()
        && lookup.owner_archived_at.is_none()
        && lookup.expires_at.is_none_or(|expires_at| expires_at > now);
    if !live {
        return Err("the worker key was revoked, expired or archived".into());
    }
    if !matches!(lookup.owner, tessera_store::KeyOwner::ServiceAccount(_)) || !lookup.worker {
        return Err("the key is not a service-account key with the worker permission".into());
    }
    if !lookup.team_plan.allows_service_accounts() {
        return Err("the key's team is not on the Enterprise plan".into());
    }
    Ok(lookup.team_id)
}

/// Claims and executes runs until `shutdown` flips, or the worker's key stops being valid.
pub async fn run_worker(
    store: Store,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    // Git runs in several directories; a relative work root would mean a different place in each.
    let mut config = config;
    config.work_root = std::path::absolute(&config.work_root).unwrap_or(config.work_root);
    config.git_credentials = config.git_credentials.map(|file| std::path::absolute(&file).unwrap_or(file));
    tracing::info!(worker.id = %config.id, "Worker started");
    let mut last_recovery = Instant::now() - Duration::from_secs(60);
    while !*shutdown.borrow() {
        if last_recovery.elapsed() >= config.heartbeat_interval * 2 {
            last_recovery = Instant::now();
            if let Err(err) = store.recover_expired_leases(clock.now()).await {
                tracing::warn!(error = %err, "Could not recover expired leases");
            }
        }
        if let Some(digest) = &config.credential
            && let Err(reason) = authorize_worker_key(&store, digest, clock.now()).await
        {
            tracing::error!(worker.id = %config.id, "Worker stopping: {reason}");
            return Err(reason);
        }
        match store.claim_run(&config.id, config.team.as_ref(), config.lease, clock.now()).await {
            Ok(Some(claimed)) => execute(&store, &clock, &config, claimed, shutdown.clone()).await,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Could not claim a run");
                tokio::time::sleep(config.poll_interval).await;
            }
        }
    }
    tracing::info!(worker.id = %config.id, "Worker stopped");
    Ok(())
}

async fn execute(
    store: &Store,
    clock: &Arc<dyn Clock>,
    config: &WorkerConfig,
    claimed: ClaimedRun,
    shutdown: watch::Receiver<bool>,
) {
    let run_id = claimed.run.id.clone();
    let started = Instant::now();
    let control = RunControl {
        store: store.clone(),
        clock: clock.clone(),
        run_id: run_id.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        lease_lost: Arc::new(AtomicBool::new(false)),
        shutdown,
        deadline: started + config.max_run_duration,
    };
    let heartbeat = {
        let (store, clock, run_id, worker_id) =
            (store.clone(), clock.clone(), run_id.clone(), config.id.clone());
        let (cancel, lease_lost) = (control.cancel.clone(), control.lease_lost.clone());
        let (lease, interval) = (config.lease, config.heartbeat_interval);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match store.heartbeat(&run_id, &worker_id, lease, clock.now()).await {
                    Ok(stop_requested) => {
                        if stop_requested {
                            cancel.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(StoreError::LeaseLost) => {
                        lease_lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(err) => tracing::warn!(run.id = %run_id, error = %err, "Heartbeat failed"),
                }
            }
        })
    };
    let workdir = config.work_root.join(run_id.as_str());
    let result = perform(store, clock, config, &claimed, &control, &workdir).await;
    heartbeat.abort();
    let _ = tokio::fs::remove_dir_all(&workdir).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = match result {
        Ok(output) => RunOutcome {
            status: RunStatus::Finished,
            summary: output
                .last_message
                .or_else(|| Some(format!("Pushed branch {}", claimed.agent.branch_name))),
            error_message: None,
            input_tokens: output.input_tokens,
            output_tokens: output.output_tokens,
            duration_ms,
        },
        Err(BackendError::LeaseLost) => {
            tracing::warn!(run.id = %run_id, "Lost the lease; leaving the run to recovery");
            return;
        }
        Err(err) => {
            let status = match err {
                BackendError::Cancelled => RunStatus::Cancelled,
                BackendError::TimedOut => RunStatus::Expired,
                _ => RunStatus::Error,
            };
            RunOutcome {
                status,
                summary: None,
                error_message: Some(err.to_string()),
                input_tokens: Prompt::parse(&claimed.run.prompt)
                    .map_or(0, |p| p.as_str().chars().count() as i64),
                output_tokens: 0,
                duration_ms,
            }
        }
    };
    tracing::info!(run.id = %run_id, status = outcome.status.as_str(), duration_ms, "Run {run_id} ended {}", outcome.status.as_str());
    if let Err(err) = store.finish_run(&run_id, &config.id, &outcome, clock.now()).await {
        tracing::warn!(run.id = %run_id, error = %err, "Could not record the end of the run");
    }
}

async fn perform(
    store: &Store,
    clock: &Arc<dyn Clock>,
    config: &WorkerConfig,
    claimed: &ClaimedRun,
    control: &RunControl,
    workdir: &std::path::Path,
) -> Result<BackendOutput, BackendError> {
    let agent = &claimed.agent;
    let run = &claimed.run;
    let credentials = config.git_credentials.as_deref();
    let _ = tokio::fs::remove_dir_all(workdir).await;
    tokio::fs::create_dir_all(&config.work_root).await.map_err(|e| BackendError::Failed(e.to_string()))?;
    let workdir_text = workdir.to_string_lossy().into_owned();
    git::git(
        &config.work_root,
        credentials,
        &["clone", "--quiet", "--no-tags", &agent.clone_url, &workdir_text],
    )
    .await?;
    control.check()?;
    if claimed.is_followup {
        let remote_branch = format!("origin/{}", agent.branch_name);
        git::git(workdir, credentials, &["checkout", "--quiet", "-B", &agent.branch_name, &remote_branch])
            .await?;
    } else {
        if let Some(reference) = &agent.starting_ref {
            git::git(workdir, credentials, &["checkout", "--quiet", reference]).await?;
        }
        git::git(workdir, credentials, &["checkout", "--quiet", "-b", &agent.branch_name]).await?;
    }
    store.start_run(&run.id, &config.id, clock.now()).await.map_err(|err| match err {
        StoreError::LeaseLost => BackendError::LeaseLost,
        other => BackendError::Failed(other.to_string()),
    })?;
    let output = match config.backends.iter().find(|b| b.model == agent.model) {
        Some(backend) => command::run(backend, &run.prompt, workdir, control).await?,
        None if agent.model == scripted::MODEL => scripted::run(&run.prompt, workdir, control).await?,
        None => {
            return Err(BackendError::Failed(format!(
                "no backend on this worker runs model {:?}",
                agent.model
            )));
        }
    };
    control.check()?;
    git::git(workdir, credentials, &["add", "--all"]).await?;
    let changes = git::git(workdir, credentials, &["status", "--porcelain"]).await?;
    if !changes.trim().is_empty() {
        let title = Prompt::parse(&run.prompt).map(|p| p.title()).unwrap_or_else(|_| "Agent run".to_owned());
        let trailers = format!(
            "Tessera-Agent: {}\nTessera-Run: {}\nTessera-Principal: {}:{}\nTessera-Key: {}",
            agent.id, run.id, run.principal_type, run.principal_id, run.api_key_id
        );
        git::git(
            workdir,
            credentials,
            &[
                "-c",
                "user.name=Tessera Agent",
                "-c",
                "user.email=agent@tessera.invalid",
                "commit",
                "--quiet",
                "-m",
                &title,
                "-m",
                &trailers,
            ],
        )
        .await?;
    }
    control.check()?;
    git::git(workdir, credentials, &["push", "--quiet", "origin", &agent.branch_name]).await?;
    Ok(output)
}
