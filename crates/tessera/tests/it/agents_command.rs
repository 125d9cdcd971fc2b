//! The `command` backend: a real agent CLI (here a shell script speaking Cursor's stream-json)
//! runs in the checkout with a scrubbed environment; its output becomes messages and usage.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_domain::team::Plan;
use tessera_server::worker::command::{CommandBackend, OutputFormat};
use tessera_store::Backend;

use crate::harness::{GitFixture, TestApp, wait_for_end};

const REPO: &str = "https://github.com/acme/widgets";

const FAKE_AGENT: &str = r#"#!/bin/sh
prompt="$1"
echo '{"type":"system","subtype":"init","apiKeySource":"env","cwd":"x","session_id":"s"}'
echo '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"Reading the task"}]},"session_id":"s"}'
printf '%s\n' "$prompt" > PROMPT.txt
echo "${CARGO_PKG_NAME:-absent}" > ENV.txt
echo '{"type":"tool_call","subtype":"completed","call_id":"t1","tool_call":{"writeToolCall":{"args":{"path":"PROMPT.txt"},"result":{"success":{}}}}}'
echo 'not json, ignored'
echo '{"type":"result","subtype":"success","is_error":false,"result":"All done","usage":{"inputTokens":12,"outputTokens":34}}'
"#;

async fn agent_clis_run_as_models(backend: Backend) {
    let scripts = tempfile::tempdir().unwrap();
    let fake = scripts.path().join("fake-agent.sh");
    std::fs::write(&fake, FAKE_AGENT).unwrap();
    let backends = vec![
        CommandBackend {
            model: "fake-agent".into(),
            command: vec!["sh".into(), fake.to_str().unwrap().into(), "{prompt}".into()],
            format: OutputFormat::StreamJson,
            pass_env: Vec::new(),
        },
        CommandBackend {
            model: "plain".into(),
            command: vec!["sh".into(), "-c".into(), "cat > /dev/null; echo plain answer".into()],
            format: OutputFormat::Text,
            pass_env: Vec::new(),
        },
        CommandBackend {
            model: "slow".into(),
            command: vec![
                "sh".into(),
                "-c".into(),
                r#"echo '{"type":"assistant","message":{"content":[{"type":"text","text":"thinking"}]}}'; sleep 60"#.into(),
            ],
            format: OutputFormat::StreamJson,
            pass_env: Vec::new(),
        },
        CommandBackend {
            model: "broken".into(),
            command: vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()],
            format: OutputFormat::StreamJson,
            pass_env: Vec::new(),
        },
    ];
    let Some(app) = TestApp::spawn_with_worker_using(backend, Duration::from_secs(60), backends).await else {
        return;
    };
    let fixture = GitFixture::new();
    let team = app.team("Acme", Plan::Enterprise, None).await;
    let owner = app.as_key(&team.owner_key);
    let integration = json!({ "provider": "git", "scope": "team", "name": "r", "repositories": [{ "url": REPO, "cloneUrl": fixture.clone_url }] });
    assert_eq!(owner.post("/v1/integrations", integration).await.status, 201);
    assert_eq!(
        owner.get("/v0/models").await.body,
        json!({ "models": ["fake-agent", "plain", "slow", "broken", "tessera-scripted"] })
    );

    // No model: the first configured one.
    let launched = owner
        .post(
            "/v0/agents",
            json!({ "prompt": { "text": "Summarize the repo" }, "source": { "repository": REPO } }),
        )
        .await;
    assert_eq!(launched.status, 201, "{}", launched.text);
    let id = launched.body["id"].as_str().unwrap().to_owned();
    let finished = wait_for_end(&owner, &id).await;
    assert_eq!(finished["status"], "FINISHED", "{finished}");
    assert_eq!(finished["summary"], "All done");
    let branch = finished["target"]["branchName"].as_str().unwrap();
    assert_eq!(fixture.file_on(branch, "PROMPT.txt").as_deref(), Some("Summarize the repo\n"));
    assert_eq!(
        fixture.file_on(branch, "ENV.txt").as_deref(),
        Some("absent\n"),
        "the environment is scrubbed"
    );
    let conversation = owner.get(&format!("/v0/agents/{id}/conversation")).await;
    let texts: Vec<&str> = conversation.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Summarize the repo", "Reading the task"]);
    let usage = owner.get(&format!("/v1/agents/{id}/usage")).await;
    assert_eq!(usage.body["totalUsage"]["inputTokens"], 12);
    assert_eq!(usage.body["totalUsage"]["outputTokens"], 34);

    let plain = owner
        .post(
            "/v0/agents",
            json!({ "prompt": { "text": "x" }, "model": "plain", "source": { "repository": REPO } }),
        )
        .await;
    let plain = wait_for_end(&owner, plain.body["id"].as_str().unwrap()).await;
    assert_eq!(
        (plain["status"].as_str(), plain["summary"].as_str()),
        (Some("FINISHED"), Some("plain answer"))
    );

    // A stop reaches a running agent CLI: the process is killed and the run ends STOPPED.
    let slow = owner
        .post(
            "/v0/agents",
            json!({ "prompt": { "text": "x" }, "model": "slow", "source": { "repository": REPO } }),
        )
        .await;
    let slow_id = slow.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while owner.get(&format!("/v0/agents/{slow_id}/conversation")).await.body["messages"]
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(Instant::now() < deadline, "the slow agent never spoke");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    assert_eq!(owner.post_empty(&format!("/v0/agents/{slow_id}/stop")).await.status, 200);
    assert_eq!(wait_for_end(&owner, &slow_id).await["status"], "STOPPED");
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped within 5 s");

    let broken = owner
        .post(
            "/v1/agents",
            json!({ "prompt": { "text": "x" }, "model": { "id": "broken" }, "repos": [{ "url": REPO }] }),
        )
        .await;
    let (agent_id, run_id) = (
        broken.body["agent"]["id"].as_str().unwrap().to_owned(),
        broken.body["run"]["id"].as_str().unwrap().to_owned(),
    );
    wait_for_end(&owner, &agent_id).await;
    let run = owner.get(&format!("/v1/agents/{agent_id}/runs/{run_id}")).await;
    assert_eq!(run.body["status"], "ERROR");
    assert!(run.body["result"].as_str().unwrap().contains("boom"), "{}", run.text);
}

mod agent_clis_run_as_models {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::agent_clis_run_as_models(tessera_store::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::agent_clis_run_as_models(tessera_store::Backend::Postgres).await
    }
}
