//! Run-queue claim throughput with 1, 2 and 4 concurrent workers, on SQLite and PostgreSQL.
//! Each measured iteration claims one queued run and finishes it, as a worker does around the
//! actual work. PostgreSQL comes from `TESSERA_BENCH_DATABASE_URL` (default: the local server);
//! the bench uses a schema of its own and drops it.
//!
//! Run: `cargo bench -p tessera-server --bench queue`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sqlx::Connection;
use tessera_domain::agent::{AgentId, BranchName, Prompt, RunId, RunStatus};
use tessera_domain::audit::AuditContext;
use tessera_domain::ids::{ApiKeyId, IntegrationId, TeamId, UserId};
use tessera_domain::integration::RepositoryUrl;
use tessera_domain::names::{Email, TeamName};
use tessera_domain::principal::{Actor, Principal};
use tessera_domain::secret::ServerSecret;
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::{Clock, SystemClock};
use tessera_store::agents::{NewAgent, RunOutcome};
use tessera_store::teams::NewTeam;
use tessera_store::users::NewUser;
use tessera_store::{Store, StoreOptions};

fn context() -> AuditContext {
    AuditContext {
        actor: Actor::Operator { name: "bench".into() },
        client_ip: None,
        request_id: None,
        at: SystemClock.now(),
    }
}

async fn store_for(url: &str) -> (Store, Principal) {
    let store =
        Store::open(&StoreOptions { url: url.to_owned(), max_connections: 8 }, &ServerSecret::generate())
            .await
            .expect("store");
    let team = NewTeam {
        id: TeamId::generate(),
        name: TeamName::parse("Bench").expect("name"),
        plan: Plan::Enterprise,
        seat_limit: None,
    };
    let user = NewUser {
        id: UserId::generate(),
        number: 1,
        email: Email::parse("bench@example.test").expect("email"),
        name: None,
        role: Role::Owner,
    };
    store.create_team(&team, &user, None, &context()).await.expect("team");
    let principal = Principal::User {
        team_id: team.id,
        user_id: user.id,
        role: Role::Owner,
        key_id: ApiKeyId::generate(),
    };
    (store, principal)
}

async fn queue(store: &Store, principal: &Principal, n_runs: u64) {
    for _ in 0..n_runs {
        let id = AgentId::generate();
        let prompt = Prompt::parse("bench").expect("prompt");
        let agent = NewAgent {
            id: id.clone(),
            name: "bench".into(),
            integration_id: IntegrationId::generate(),
            repository_url: RepositoryUrl::parse("https://github.com/acme/widgets").expect("url"),
            clone_url: "x".into(),
            starting_ref: None,
            branch_name: BranchName::generated(&prompt, &id),
            model: "tessera-scripted".into(),
            auto_create_pr: false,
            webhook_url: None,
            webhook_secret: None,
            create_digest: None,
        };
        store
            .create_agent(principal.team_id(), &agent, &RunId::generate(), &prompt, principal, &context())
            .await
            .expect("agent");
    }
}

/// Drains the queue with `n_workers` concurrent claimers; returns the time it took.
async fn drain(store: &Store, n_workers: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..n_workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-{worker}");
            while let Some(claimed) =
                store.claim_run(&id, None, Duration::from_secs(60), SystemClock.now()).await.expect("claim")
            {
                let outcome = RunOutcome {
                    status: RunStatus::Finished,
                    summary: None,
                    error_message: None,
                    input_tokens: 0,
                    output_tokens: 0,
                    duration_ms: 0,
                };
                store.finish_run(&claimed.run.id, &id, &outcome, SystemClock.now()).await.expect("finish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    started.elapsed()
}

fn claims(c: &mut Criterion) {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let pg_admin = std::env::var("TESSERA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("bench_{}", std::process::id());
    let pg_ready = runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&pg_admin).await.ok()?;
        sqlx::query(&format!("create schema {schema}")).execute(&mut conn).await.ok()
    });
    let mut backends = vec![("sqlite", format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display()))];
    if pg_ready.is_some() {
        let separator = if pg_admin.contains('?') { '&' } else { '?' };
        backends.push(("postgres", format!("{pg_admin}{separator}options=-c%20search_path%3D{schema}")));
    } else {
        eprintln!("PostgreSQL unreachable at {pg_admin}: measuring SQLite only");
    }
    let mut group = c.benchmark_group("claim_and_finish");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (backend, url) in &backends {
        let (store, principal) = runtime.block_on(store_for(url));
        for n_workers in [1usize, 2, 4] {
            group.bench_with_input(
                BenchmarkId::new(*backend, format!("{n_workers}_workers")),
                &n_workers,
                |b, n_workers| {
                    b.iter_custom(|iters| {
                        runtime.block_on(async {
                            queue(&store, &principal, iters).await;
                            drain(&store, *n_workers).await
                        })
                    });
                },
            );
        }
    }
    group.finish();
    if pg_ready.is_some() {
        runtime.block_on(async {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin).await {
                let _ = sqlx::query(&format!("drop schema {schema} cascade")).execute(&mut conn).await;
            }
        });
    }
}

criterion_group!(benches, claims);
criterion_main!(benches);
