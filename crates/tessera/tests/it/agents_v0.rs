//! Cursor's v0 Agents API over real runs: the embedded worker clones a real git repository,
//! runs the `tessera-scripted` backend, commits with attribution trailers and pushes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_domain::team::{Plan, Role};

use crate::harness::{Caller, GitFixture, on_both_backends_with_worker, wait_for_end};

const REPO: &str = "https://github.com/acme/widgets";

async fn authorize(caller: &Caller, scope: &str, fixture: &GitFixture) -> String {
    let body = json!({
        "provider": "git", "scope": scope, "name": format!("{scope} repos"),
        "repositories": [{ "url": REPO, "cloneUrl": fixture.clone_url }],
    });
    let created = caller.post("/v1/integrations", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["integration"]["id"].as_str().unwrap().to_owned()
}

fn launch_body(prompt: &str) -> Value {
    json!({ "prompt": { "text": prompt }, "source": { "repository": REPO, "ref": "main" } })
}

async fn wait_for_status(caller: &Caller, id: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if caller.get(&format!("/v0/agents/{id}")).await.body["status"] == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("agent {id} never reached {wanted}");
}

on_both_backends_with_worker! {
    async fn a_service_account_runs_an_agent_that_pushes_an_attributed_branch(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), "team", &fixture).await;
        let (sa_id, sa_key_id, sa_key) = app.service_account(&team.owner_key, "Linear Integration").await;
        let sa = app.as_key(&sa_key);
        let prompt = "Add the changelog\n@write CHANGELOG.md\n## 1.0\n- first release\n@end\nI added CHANGELOG.md.";
        let launched = sa.post("/v0/agents", launch_body(prompt)).await;
        assert_eq!(launched.status, 201, "{}", launched.text);
        assert_eq!(launched.body["status"], "CREATING");
        assert_eq!(launched.body["name"], "Add the changelog");
        let id = launched.body["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("bc-"));
        let branch = launched.body["target"]["branchName"].as_str().unwrap().to_owned();
        assert!(branch.starts_with("tessera/add-the-changelog-"), "{branch}");
        assert_eq!(launched.body["target"]["url"], format!("http://tessera.test/agents/{id}"));
        assert_eq!(launched.body["source"], json!({ "repository": REPO, "ref": "main" }));
        assert_eq!(launched.body["createdBy"], json!({ "type": "service_account", "id": sa_id, "apiKeyId": sa_key_id }));

        let finished = wait_for_end(&sa, &id).await;
        assert_eq!(finished["status"], "FINISHED", "{finished}");
        assert_eq!(finished["summary"], "I added CHANGELOG.md.");
        assert_eq!(fixture.file_on(&branch, "CHANGELOG.md").as_deref(), Some("## 1.0\n- first release\n"));
        assert_eq!(fixture.file_on(&branch, "README.md").as_deref(), Some("# Widgets\n"), "branched from main");
        let message = fixture.last_message(&branch);
        assert!(message.starts_with("Add the changelog"), "{message}");
        for trailer in [format!("Tessera-Agent: {id}"), format!("Tessera-Principal: service_account:{sa_id}"), format!("Tessera-Key: {sa_key_id}")] {
            assert!(message.contains(&trailer), "{trailer} not in {message}");
        }
        let conversation = sa.get(&format!("/v0/agents/{id}/conversation")).await;
        let messages = conversation.body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["type"], "user_message");
        assert_eq!(messages[0]["text"], prompt);
        assert_eq!(messages.last().unwrap(), &json!({ "id": messages.last().unwrap()["id"], "type": "assistant_message", "text": "I added CHANGELOG.md." }));

        // A follow-up continues on the same branch.
        let followup = sa.post(&format!("/v0/agents/{id}/followup"), json!({ "prompt": { "text": "@append CHANGELOG.md\n- second\n@end\n@delete README.md\nDone." } })).await;
        assert_eq!(followup.status, 200, "{}", followup.text);
        assert_eq!(followup.body, json!({ "id": id }));
        assert_eq!(wait_for_end(&sa, &id).await["status"], "FINISHED");
        assert_eq!(fixture.file_on(&branch, "CHANGELOG.md").as_deref(), Some("## 1.0\n- first release\n- second\n"));
        assert_eq!(fixture.file_on(&branch, "README.md"), None, "@delete removed it");
        assert_eq!(fixture.file_on("main", "README.md").as_deref(), Some("# Widgets\n"), "main is untouched");
        let models = sa.get("/v0/models").await;
        assert_eq!(models.body, json!({ "models": ["tessera-scripted"] }));
    }

    async fn service_accounts_need_a_team_level_integration(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
        authorize(&app.as_key(&member_key), "personal", &fixture).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let refused = app.as_key(&sa_key).post("/v0/agents", launch_body("hello")).await;
        assert_eq!((refused.status, refused.code()), (403, "team_integration_required"), "{}", refused.text);
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("team-level integration"));
        // The user who holds the personal integration may use it; nobody else.
        let mine = app.as_key(&member_key).post("/v0/agents", launch_body("@write a.txt\nx\n@end")).await;
        assert_eq!(mine.status, 201, "{}", mine.text);
        let other = app.as_key(&team.owner_key).post("/v0/agents", launch_body("hello")).await;
        assert_eq!((other.status, other.code()), (403, "repository_access"));
        let unknown = app.as_key(&member_key)
            .post("/v0/agents", json!({ "prompt": { "text": "x" }, "source": { "repository": "https://github.com/acme/other" } })).await;
        assert_eq!((unknown.status, unknown.code()), (403, "repository_access"));
        assert_eq!(app.count("agents").await, 1);
    }

    async fn who_sees_which_agents(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), "team", &fixture).await;
        let (_, admin_key) = app.user(&team, "admin@acme.test", Role::Admin).await;
        let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let launch = |key: String| {
            let caller = app.as_key(&key);
            async move {
                let reply = caller.post("/v0/agents", launch_body("hello")).await;
                assert_eq!(reply.status, 201, "{}", reply.text);
                reply.body["id"].as_str().unwrap().to_owned()
            }
        };
        let by_sa = launch(sa_key.clone()).await;
        let by_member = launch(member_key.clone()).await;
        let by_owner = launch(team.owner_key.clone()).await;
        let listed = |key: String| {
            let caller = app.as_key(&key);
            async move {
                let reply = caller.get("/v0/agents").await;
                let mut ids: Vec<String> = reply.body["agents"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
                ids.sort();
                ids
            }
        };
        let sorted = |mut v: Vec<String>| { v.sort(); v };
        assert_eq!(listed(team.owner_key.clone()).await, sorted(vec![by_sa.clone(), by_owner.clone()]));
        assert_eq!(listed(admin_key.clone()).await, sorted(vec![by_sa.clone()]), "admins see service accounts' runs");
        assert_eq!(listed(member_key.clone()).await, vec![by_member.clone()]);
        // Admins can narrow the listing to one service account; archiving the account keeps
        // its runs visible to them.
        let (second_sa, _, second_sa_key) = app.service_account(&team.owner_key, "Second Bot").await;
        let by_second = launch(second_sa_key).await;
        let filtered = app.as_key(&admin_key).get(&format!("/v0/agents?serviceAccountId={second_sa}")).await;
        let filtered_ids: Vec<&str> = filtered.body["agents"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
        assert_eq!(filtered_ids, [by_second.as_str()]);
        assert_eq!(app.as_key(&team.owner_key).post_empty(&format!("/v1/service-accounts/{second_sa}/archive")).await.status, 200);
        assert_eq!(app.as_key(&admin_key).get(&format!("/v0/agents/{by_second}")).await.status, 200);
        let v1 = app.as_key(&admin_key).get(&format!("/v1/agents?serviceAccountId={second_sa}")).await;
        assert_eq!(v1.body["items"][0]["id"], by_second.as_str());
        assert_eq!(listed(sa_key.clone()).await, vec![by_sa.clone()]);
        let member = app.as_key(&member_key);
        for hidden in [&by_sa, &by_owner] {
            assert_eq!(member.get(&format!("/v0/agents/{hidden}")).await.status, 404);
            assert_eq!(member.post_empty(&format!("/v0/agents/{hidden}/stop")).await.status, 404);
        }
        assert_eq!(app.as_key(&admin_key).get(&format!("/v0/agents/{by_member}")).await.status, 404, "humans' agents stay private");
        assert_eq!(app.as_key(&admin_key).get(&format!("/v0/agents/{by_sa}")).await.status, 200);
        let other_team = app.team("Other", Plan::Enterprise, None).await;
        assert_eq!(app.as_key(&other_team.owner_key).get(&format!("/v0/agents/{by_sa}")).await.status, 404);
        assert_eq!(member.get("/v0/agents/not-an-id").await.status, 400);
        // Keyset pages, newest first.
        let owner = app.as_key(&team.owner_key);
        let first = owner.get("/v0/agents?limit=1").await;
        assert_eq!(first.body["agents"].as_array().unwrap().len(), 1);
        let cursor = first.body["nextCursor"].as_str().expect("a next page").to_owned();
        let second = owner.get(&format!("/v0/agents?limit=1&cursor={cursor}")).await;
        assert_eq!(second.body["agents"].as_array().unwrap().len(), 1);
        assert_ne!(first.body["agents"][0]["id"], second.body["agents"][0]["id"]);
        assert_eq!(owner.get("/v0/agents?limit=101").await.code(), "validation_error");
    }

    async fn failures_stops_and_busy_agents(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), "team", &fixture).await;
        let owner = app.as_key(&team.owner_key);
        let mut with_webhook = launch_body("Starting\n@fail the tests do not pass");
        with_webhook["webhook"] = json!({ "url": "https://hooks.acme.test/tessera", "secret": "s".repeat(32) });
        let failing = owner.post("/v0/agents", with_webhook).await;
        assert_eq!(failing.status, 201, "{}", failing.text);
        let failing_id = failing.body["id"].as_str().unwrap().to_owned();
        let escaping = owner.post("/v0/agents", launch_body("@write ../../outside.txt\nx\n@end")).await;
        let escaping_id = escaping.body["id"].as_str().unwrap().to_owned();
        let sleeper = owner.post("/v0/agents", launch_body("Working\n@sleep 60\n@write late.txt\nx\n@end")).await;
        let sleeper_id = sleeper.body["id"].as_str().unwrap().to_owned();
        assert_eq!(wait_for_end(&owner, &failing_id).await["status"], "ERROR");
        let stored = app.raw_pool().await;
        let webhook: Option<String> = sqlx::query_scalar(&format!("select webhook_url from agents where id = '{failing_id}'"))
            .fetch_one(&stored).await.unwrap();
        stored.close().await;
        assert_eq!(webhook.as_deref(), Some("https://hooks.acme.test/tessera"), "the webhook is stored for delivery");
        assert_eq!(wait_for_end(&owner, &escaping_id).await["status"], "ERROR");
        wait_for_status(&owner, &sleeper_id, "RUNNING").await;
        let busy = owner.post(&format!("/v0/agents/{sleeper_id}/followup"), json!({ "prompt": { "text": "more" } })).await;
        assert_eq!((busy.status, busy.code()), (409, "agent_busy"));
        let asked = Instant::now();
        assert_eq!(owner.post_empty(&format!("/v0/agents/{sleeper_id}/stop")).await.status, 200);
        let stopped = wait_for_end(&owner, &sleeper_id).await;
        assert_eq!(stopped["status"], "STOPPED", "{stopped}");
        assert!(asked.elapsed() < Duration::from_secs(5), "the stop reached the run within 5 s");
        let again = owner.post_empty(&format!("/v0/agents/{sleeper_id}/stop")).await;
        assert_eq!((again.status, again.code()), (409, "agent_not_running"));
        assert_eq!(owner.delete(&format!("/v0/agents/{failing_id}")).await.body, json!({ "id": failing_id }));
        assert_eq!(owner.get(&format!("/v0/agents/{failing_id}")).await.status, 404);
    }

    async fn launch_input_is_validated(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        for (what, body) in [
            ("empty prompt", json!({ "prompt": { "text": " " }, "source": { "repository": REPO } })),
            ("no source", json!({ "prompt": { "text": "x" } })),
            ("no repository", json!({ "prompt": { "text": "x" }, "source": {} })),
            ("bad repository", json!({ "prompt": { "text": "x" }, "source": { "repository": "widgets" } })),
            ("unknown model", json!({ "prompt": { "text": "x" }, "model": "gpt-9", "source": { "repository": REPO } })),
            ("bad branch", json!({ "prompt": { "text": "x" }, "source": { "repository": REPO }, "target": { "branchName": "a..b" } })),
            ("short secret", json!({ "prompt": { "text": "x" }, "source": { "repository": REPO }, "webhook": { "url": "https://hooks.test/x", "secret": "short" } })),
            ("six images", json!({ "prompt": { "text": "x", "images": [{}, {}, {}, {}, {}, {}] }, "source": { "repository": REPO } })),
            ("unknown field", json!({ "prompt": { "text": "x" }, "source": { "repository": REPO }, "repo": "x" })),
        ] {
            let reply = owner.post("/v0/agents", body).await;
            assert_eq!((reply.status, reply.code()), (400, "validation_error"), "{what}: {}", reply.text);
        }
        assert_eq!(app.count("agents").await, 0);
    }
}

async fn a_run_past_the_maximum_duration_expires(backend: tessera_store::Backend) {
    let Some(app) = crate::harness::TestApp::spawn_with_worker_limited(backend, Duration::from_secs(1)).await
    else {
        return;
    };
    let fixture = GitFixture::new();
    let team = app.team("Acme", Plan::Enterprise, None).await;
    authorize(&app.as_key(&team.owner_key), "team", &fixture).await;
    let owner = app.as_key(&team.owner_key);
    let launched = owner.post("/v0/agents", launch_body("@sleep 30")).await;
    let id = launched.body["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_for_end(&owner, &id).await["status"], "EXPIRED");
}

mod a_run_past_the_maximum_duration_expires {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_run_past_the_maximum_duration_expires(tessera_store::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_run_past_the_maximum_duration_expires(tessera_store::Backend::Postgres).await
    }
}
