//! Cursor's v1 Agents API over real runs: agents and runs, idempotent create, archive, usage,
//! and run streams over Server-Sent Events with resumption.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_domain::team::Plan;

use crate::harness::{Caller, GitFixture, on_both_backends_with_worker};

const REPO: &str = "https://github.com/acme/widgets";

async fn authorize(caller: &Caller, fixture: &GitFixture) {
    let body = json!({
        "provider": "git", "scope": "team", "name": "repos",
        "repositories": [{ "url": REPO, "cloneUrl": fixture.clone_url }],
    });
    assert_eq!(caller.post("/v1/integrations", body).await.status, 201);
}

fn create_body(prompt: &str) -> Value {
    json!({ "prompt": { "text": prompt }, "repos": [{ "url": REPO, "startingRef": "main" }] })
}

async fn wait_for_run(caller: &Caller, agent: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = caller.get(&format!("/v1/agents/{agent}/runs/{run}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let status = reply.body["status"].as_str().unwrap().to_owned();
        if !["CREATING", "RUNNING"].contains(&status.as_str()) || Instant::now() > deadline {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Value,
}

fn parse_sse(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = None;
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    event = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("id:") {
                    id = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            Some(SseEvent { event: event?, id, data: serde_json::from_str(&data).unwrap_or(Value::Null) })
        })
        .collect()
}

on_both_backends_with_worker! {
    async fn agents_and_runs_in_the_v1_shapes(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), &fixture).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let sa = app.as_key(&sa_key);
        let prompt = "Write it\n@write NOTES.md\nhello\n@end\nWrote NOTES.md";
        let created = sa.post("/v1/agents", create_body(prompt)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let agent = created.body["agent"].clone();
        let run = created.body["run"].clone();
        let (agent_id, run_id) = (agent["id"].as_str().unwrap().to_owned(), run["id"].as_str().unwrap().to_owned());
        assert_eq!(agent["status"], "ACTIVE");
        assert_eq!(agent["latestRunId"], run_id.as_str());
        assert_eq!(agent["env"], json!({ "type": "cloud" }));
        assert_eq!(agent["repos"], json!([{ "url": REPO, "startingRef": "main" }]));
        assert_eq!(run["status"], "CREATING");
        assert!(run_id.starts_with("run-"));

        let finished = wait_for_run(&sa, &agent_id, &run_id).await;
        assert_eq!(finished["status"], "FINISHED", "{finished}");
        assert_eq!(finished["result"], "Wrote NOTES.md");
        assert!(finished["durationMs"].as_i64().unwrap() >= 0);
        let branch = finished["git"]["branches"][0]["branch"].as_str().unwrap().to_owned();
        assert_eq!(finished["git"]["branches"][0]["repoUrl"], "github.com/acme/widgets");
        assert_eq!(fixture.file_on(&branch, "NOTES.md").as_deref(), Some("hello\n"));
        assert_eq!(sa.get(&format!("/v1/agents/{agent_id}")).await.body["status"], "IDLE");

        let usage = sa.get(&format!("/v1/agents/{agent_id}/usage")).await;
        let expected_input = prompt.chars().count() as i64;
        assert_eq!(usage.body["totalUsage"]["inputTokens"], expected_input);
        assert_eq!(usage.body["totalUsage"]["outputTokens"], "hello\n".len() as i64);
        assert_eq!(usage.body["totalUsage"]["totalTokens"], expected_input + 6);
        assert_eq!(sa.get(&format!("/v1/agents/{agent_id}/usage?runId=run-00000000-0000-0000-0000-000000000000")).await.code(), "run_not_found");

        let not_cancellable = sa.post_empty(&format!("/v1/agents/{agent_id}/runs/{run_id}/cancel")).await;
        assert_eq!((not_cancellable.status, not_cancellable.code()), (409, "run_not_cancellable"));
        let second = sa.post(&format!("/v1/agents/{agent_id}/runs"), json!({ "prompt": { "text": "@sleep 30" } })).await;
        assert_eq!(second.status, 201, "{}", second.text);
        let second_id = second.body["run"]["id"].as_str().unwrap().to_owned();
        let busy = sa.post(&format!("/v1/agents/{agent_id}/runs"), json!({ "prompt": { "text": "more" } })).await;
        assert_eq!((busy.status, busy.code()), (409, "agent_busy"));
        let cancelled = sa.post_empty(&format!("/v1/agents/{agent_id}/runs/{second_id}/cancel")).await;
        assert_eq!(cancelled.body, json!({ "id": second_id }));
        assert_eq!(wait_for_run(&sa, &agent_id, &second_id).await["status"], "CANCELLED");
        let runs = sa.get(&format!("/v1/agents/{agent_id}/runs")).await;
        let ids: Vec<&str> = runs.body["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [second_id.as_str(), run_id.as_str()], "newest first");

        // Archive: readable, refuses runs, idempotent; unarchive brings it back.
        for _ in 0..2 {
            assert_eq!(sa.post_empty(&format!("/v1/agents/{agent_id}/archive")).await.body, json!({ "id": agent_id }));
        }
        assert_eq!(sa.get(&format!("/v1/agents/{agent_id}")).await.body["status"], "ARCHIVED");
        let archived = sa.post(&format!("/v1/agents/{agent_id}/runs"), json!({ "prompt": { "text": "x" } })).await;
        assert_eq!((archived.status, archived.code()), (409, "agent_archived"));
        let listed = sa.get("/v1/agents?includeArchived=false").await;
        assert_eq!(listed.body["items"], json!([]));
        assert!(listed.body.get("nextCursor").is_none(), "omitted on the last page");
        assert_eq!(sa.get("/v1/agents").await.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(sa.post_empty(&format!("/v1/agents/{agent_id}/unarchive")).await.status, 200);
        assert_eq!(sa.get(&format!("/v1/agents/{agent_id}")).await.body["status"], "IDLE");
        // Archiving twice records one event; so does unarchiving.
        let audit = app.as_key(&team.owner_key).get(&format!("/v1/audit-events?targetId={agent_id}&limit=100")).await;
        let actions: Vec<&str> = audit.body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "agent.archive").count(), 1, "{actions:?}");
        assert_eq!(actions.iter().filter(|a| **a == "agent.unarchive").count(), 1, "{actions:?}");
        assert_eq!(sa.delete(&format!("/v1/agents/{agent_id}")).await.body, json!({ "id": agent_id }));
        assert_eq!(sa.get(&format!("/v1/agents/{agent_id}")).await.status, 404);
        let models = sa.get("/v1/models").await;
        assert_eq!(models.body["items"][0]["id"], "tessera-scripted");
    }

    async fn create_with_a_client_id_is_idempotent(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), &fixture).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let sa = app.as_key(&sa_key);
        let agent_id = "bc-7b1f1c2e-0000-4000-8000-000000000042";
        let mut body = create_body("Hello");
        body["agentId"] = json!(agent_id);
        let first = sa.post("/v1/agents", body.clone()).await;
        assert_eq!(first.status, 201, "{}", first.text);
        assert_eq!(first.body["agent"]["id"], agent_id);
        let replay = sa.post("/v1/agents", body.clone()).await;
        assert_eq!(replay.status, 201, "{}", replay.text);
        assert_eq!(replay.body["agent"]["id"], agent_id);
        assert_eq!(replay.body["run"]["id"], first.body["run"]["id"], "the same run, not a second one");
        assert_eq!(app.count("runs").await, 1);
        let mut different = body.clone();
        different["prompt"]["text"] = json!("Something else");
        let conflict = sa.post("/v1/agents", different).await;
        assert_eq!((conflict.status, conflict.code()), (409, "agent_id_conflict"));
        let other = app.as_key(&team.owner_key).post("/v1/agents", body).await;
        assert_eq!((other.status, other.code()), (409, "agent_id_conflict"), "another principal cannot replay it");
        let bad = sa.post("/v1/agents", json!({ "prompt": { "text": "x" }, "repos": [{ "url": REPO }], "agentId": "bc_123" })).await;
        assert_eq!(bad.code(), "validation_error");
        let two_repos = sa.post("/v1/agents", json!({ "prompt": { "text": "x" }, "repos": [{ "url": REPO }, { "url": REPO }] })).await;
        assert_eq!(two_repos.code(), "validation_error");
        let env_vars = sa.post("/v1/agents", json!({ "prompt": { "text": "x" }, "repos": [{ "url": REPO }], "envVars": { "CURSOR_X": "1" } })).await;
        assert_eq!(env_vars.code(), "validation_error");
    }

    async fn runs_stream_as_server_sent_events_and_resume(app: TestApp) {
        let fixture = GitFixture::new();
        let team = app.team("Acme", Plan::Enterprise, None).await;
        authorize(&app.as_key(&team.owner_key), &fixture).await;
        let owner = app.as_key(&team.owner_key);
        let created = owner.post("/v1/agents", create_body("First line\n@sleep 0.5\nSecond line\n@write a.txt\nx\n@end\nDone")).await;
        let agent_id = created.body["agent"]["id"].as_str().unwrap().to_owned();
        let run_id = created.body["run"]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/agents/{agent_id}/runs/{run_id}/stream");
        // Connected while the run is queued or running; the stream ends after `done`.
        let response = owner.request(reqwest::Method::GET, &path).header("accept", "text/event-stream").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        assert_eq!(response.headers()["x-cursor-stream-retention-seconds"], "86400");
        let events = parse_sse(&response.text().await.unwrap());
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"status"));
        assert!(events[0].id.is_none(), "the status event has no id");
        let assistant: Vec<&Value> = events.iter().filter(|e| e.event == "assistant").map(|e| &e.data["text"]).collect();
        assert_eq!(assistant, [&json!("First line"), &json!("Second line"), &json!("Done")]);
        assert!(kinds.contains(&"tool_call"));
        assert_eq!(&kinds[kinds.len() - 2..], ["result", "done"]);
        let result = &events[events.len() - 2];
        assert_eq!(result.data["status"], "FINISHED");
        assert_eq!(result.data["runId"], run_id.as_str());
        assert_eq!(result.id, events.last().unwrap().id, "done carries the result's id");
        assert!(events.iter().skip(1).all(|e| e.event == "error" || e.id.is_some()));

        // Resume after the first assistant message: status again, then only what came after.
        let first_assistant = events.iter().find(|e| e.event == "assistant").unwrap();
        let resumed = owner.request(reqwest::Method::GET, &path)
            .header("last-event-id", first_assistant.id.clone().unwrap()).send().await.unwrap();
        let resumed = parse_sse(&resumed.text().await.unwrap());
        assert_eq!(resumed[0].event, "status");
        assert_eq!(resumed[0].data["status"], "FINISHED");
        let resumed_text: Vec<&Value> = resumed.iter().filter(|e| e.event == "assistant").map(|e| &e.data["text"]).collect();
        assert_eq!(resumed_text, [&json!("Second line"), &json!("Done")]);

        // An id of another stream is refused.
        let foreign = owner.request(reqwest::Method::GET, &path).header("last-event-id", "0000000000-1").send().await.unwrap();
        let foreign = crate::harness::reply(foreign).await;
        assert_eq!((foreign.status, foreign.code()), (400, "invalid_last_event_id"));
        assert_eq!(owner.get(&format!("/v1/agents/{agent_id}/runs/run-00000000-0000-0000-0000-000000000000/stream")).await.code(), "run_not_found");

        // A day after the run ended its stream is gone; the run itself stays readable.
        let pool = app.raw_pool().await;
        sqlx::query(&format!("update runs set finished_at = finished_at - 90000000 where id = '{run_id}'")).execute(&pool).await.unwrap();
        pool.close().await;
        let expired = owner.get(&path).await;
        assert_eq!((expired.status, expired.code()), (410, "stream_expired"));
        assert_eq!(owner.get(&format!("/v1/agents/{agent_id}/runs/{run_id}")).await.status, 200);
    }
}
