//! The run queue on both backends: each run is claimed once under contention; a lost lease ends
//! a started run in ERROR and gives an unstarted one one more attempt.

use std::collections::HashSet;
use std::time::Duration;

use tessera_domain::agent::{AgentId, BranchName, Prompt, RunId, RunStatus};
use tessera_domain::ids::IntegrationId;
use tessera_domain::integration::RepositoryUrl;
use tessera_domain::principal::Principal;
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::{Clock, SystemClock};
use tessera_store::agents::NewAgent;

use crate::harness::{TeamFixture, TestApp, on_both_backends, operator_context};

async fn queue_runs(app: &TestApp, team: &TeamFixture, n_runs: usize) -> Vec<RunId> {
    let principal = Principal::User {
        team_id: team.id.clone(),
        user_id: team.owner_id.clone(),
        role: Role::Owner,
        key_id: tessera_domain::ids::ApiKeyId::generate(),
    };
    let mut run_ids = Vec::new();
    for idx in 0..n_runs {
        let agent_id = AgentId::generate();
        let prompt = Prompt::parse(&format!("task {idx}")).unwrap();
        let agent = NewAgent {
            id: agent_id.clone(),
            name: prompt.title(),
            integration_id: IntegrationId::generate(),
            repository_url: RepositoryUrl::parse("https://github.com/acme/widgets").unwrap(),
            clone_url: "file:///nowhere".into(),
            starting_ref: None,
            branch_name: BranchName::generated(&prompt, &agent_id),
            model: "tessera-scripted".into(),
            auto_create_pr: false,
            webhook_url: None,
            webhook_secret: None,
            create_digest: None,
        };
        let run_id = RunId::generate();
        app.store
            .create_agent(&team.id, &agent, &run_id, &prompt, &principal, &operator_context())
            .await
            .unwrap();
        run_ids.push(run_id);
    }
    run_ids
}

on_both_backends! {
    async fn concurrent_workers_claim_each_run_once(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let queued = queue_runs(&app, &team, 24).await;
        let mut workers = Vec::new();
        for worker in 0..4 {
            let store = app.store.clone();
            workers.push(tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(run) = store.claim_run(&format!("w{worker}"), None, Duration::from_secs(30), SystemClock.now()).await.unwrap() {
                    claimed.push(run.run.id);
                }
                claimed
            }));
        }
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        assert_eq!(all.len(), queued.len(), "every run claimed exactly once");
        assert_eq!(all.iter().collect::<HashSet<_>>(), queued.iter().collect::<HashSet<_>>());
    }

    async fn a_lost_lease_fails_started_runs_and_retries_unstarted_ones_once(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let queued = queue_runs(&app, &team, 2).await;
        let lease = Duration::from_millis(200);
        // The first run starts, then its worker dies.
        let started = app.store.claim_run("dead-1", None, lease, SystemClock.now()).await.unwrap().unwrap();
        app.store.start_run(&started.run.id, "dead-1", SystemClock.now()).await.unwrap();
        // The second is claimed, but its worker dies before starting it.
        let unstarted = app.store.claim_run("dead-2", None, lease, SystemClock.now()).await.unwrap().unwrap();
        assert_eq!((started.run.id.clone(), unstarted.run.id.clone()), (queued[0].clone(), queued[1].clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.store.recover_expired_leases(SystemClock.now()).await.unwrap();
        let failed = app.store.run(&queued[0]).await.unwrap();
        assert_eq!(failed.status, RunStatus::Error);
        assert!(failed.error_message.unwrap().contains("stopped responding"));
        assert!(app.store.heartbeat(&queued[0], "dead-1", lease, SystemClock.now()).await.is_err(), "the dead worker lost it");
        // The unstarted run is queued again and claimed by a second worker…
        let retried = app.store.claim_run("alive", None, lease, SystemClock.now()).await.unwrap().unwrap();
        assert_eq!((retried.run.id.clone(), retried.run.attempts), (queued[1].clone(), 2));
        // …and if that worker dies too, the run ends in ERROR instead of looping.
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.store.recover_expired_leases(SystemClock.now()).await.unwrap();
        assert_eq!(app.store.run(&queued[1]).await.unwrap().status, RunStatus::Error);
        assert!(app.store.claim_run("alive", None, lease, SystemClock.now()).await.unwrap().is_none());
    }
}
