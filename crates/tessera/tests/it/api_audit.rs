//! The audit log: every change is recorded with who, what, target, when, IP and request id;
//! the hash chain exposes altered and deleted events; the log is append-only.

use serde_json::json;
use tessera_domain::team::{Plan, Role};

use crate::harness::{TestApp, on_both_backends, operator_context};

async fn tamper(app: &TestApp, statements: &[String]) {
    let pool = app.raw_pool().await;
    let drop_triggers: &[&str] = match app.backend() {
        tessera_store::Backend::Sqlite => {
            &["drop trigger audit_events_no_update", "drop trigger audit_events_no_delete"]
        }
        tessera_store::Backend::Postgres => &["drop trigger audit_events_no_update on audit_events"],
    };
    for statement in drop_triggers.iter().map(|s| s.to_string()).chain(statements.iter().cloned()) {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

on_both_backends! {
    async fn every_change_is_attributed_and_audited(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let owner_key_id = owner.get("/v1/me/api-keys").await.body["apiKeys"][0]["id"].as_str().unwrap().to_owned();

        let created = owner.post("/v1/service-accounts", json!({ "name": "Bot" })).await;
        let sa = created.body["serviceAccount"]["id"].as_str().unwrap().to_owned();
        let first_key = created.body["apiKey"]["id"].as_str().unwrap().to_owned();
        let renamed = owner.patch(&format!("/v1/service-accounts/{sa}"), json!({ "name": "Bot 2" })).await;
        let added = owner.post_empty(&format!("/v1/service-accounts/{sa}/api-keys")).await;
        let second_key = added.body["apiKey"]["id"].as_str().unwrap().to_owned();
        let rotated = owner.post_empty(&format!("/v1/service-accounts/{sa}/api-keys/{first_key}/rotate")).await;
        let revoked = owner.delete(&format!("/v1/service-accounts/{sa}/api-keys/{second_key}")).await;
        let archived = owner.post_empty(&format!("/v1/service-accounts/{sa}/archive")).await;
        app.user(&team, "new@acme.test", Role::Member).await;
        app.store.set_team_plan(&team.id, Plan::Business, &operator_context()).await.unwrap();

        let request_id = |reply: &crate::harness::Reply| reply.headers["x-request-id"].to_str().unwrap().to_owned();
        let expectations = [
            ("service_account.create", sa.clone(), request_id(&created)),
            ("api_key.create", first_key.clone(), request_id(&created)),
            ("service_account.update", sa.clone(), request_id(&renamed)),
            ("api_key.create", second_key.clone(), request_id(&added)),
            ("api_key.rotate", first_key.clone(), request_id(&rotated)),
            ("api_key.revoke", second_key.clone(), request_id(&revoked)),
            ("service_account.archive", sa.clone(), request_id(&archived)),
        ];
        let events = owner.get("/v1/audit-events?limit=100").await.body["events"].as_array().unwrap().clone();
        for (action, target, request_id) in &expectations {
            let event = events
                .iter()
                .find(|e| e["action"] == *action && e["target"]["id"] == target.as_str())
                .unwrap_or_else(|| panic!("no {action} event for {target}"));
            assert_eq!(event["actor"], json!({ "type": "user", "id": team.owner_id.as_str(), "keyId": owner_key_id }));
            assert_eq!(event["clientIp"], "127.0.0.1");
            assert_eq!(event["requestId"], request_id.as_str());
            assert!(event["occurredAt"].as_str().unwrap().ends_with('Z'));
        }
        let rename = events.iter().find(|e| e["action"] == "service_account.update").unwrap();
        assert_eq!(rename["details"]["from"]["name"], "Bot");
        assert_eq!(rename["details"]["to"]["name"], "Bot 2");
        for (action, actor_type) in [("user.add", "operator"), ("team.plan_change", "operator"), ("team.create", "operator")] {
            let event = events.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("no {action}"));
            assert_eq!(event["actor"]["type"], actor_type);
        }
        let plan_change = events.iter().find(|e| e["action"] == "team.plan_change").unwrap();
        assert_eq!(plan_change["details"], json!({ "from": "enterprise", "to": "business" }));

        // Filters.
        let by_action = owner.get("/v1/audit-events?action=api_key.rotate").await;
        assert_eq!(by_action.body["events"].as_array().unwrap().len(), 1);
        let by_actor = owner.get(&format!("/v1/audit-events?actor={}", team.owner_id)).await;
        assert_eq!(by_actor.body["events"].as_array().unwrap().len(), expectations.len());
        // Newest first, keyset pages.
        let first_page = owner.get("/v1/audit-events?limit=3").await;
        let sequences: Vec<i64> = first_page.body["events"].as_array().unwrap().iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
        assert!(sequences.windows(2).all(|w| w[0] > w[1]), "{sequences:?}");
        let cursor = first_page.body["nextCursor"].as_str().unwrap();
        let second_page = owner.get(&format!("/v1/audit-events?limit=3&cursor={cursor}")).await;
        assert_eq!(second_page.body["events"][0]["sequence"].as_i64().unwrap(), sequences[2] - 1);
    }

    async fn the_log_is_append_only(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        app.service_account(&team.owner_key, "Bot").await;
        let pool = app.raw_pool().await;
        assert!(sqlx::query("update audit_events set action = 'x'").execute(&pool).await.is_err());
        assert!(sqlx::query("delete from audit_events").execute(&pool).await.is_err());
        pool.close().await;
        let verified = app.as_key(&team.owner_key).get("/v1/audit-events/verify").await;
        assert_eq!(verified.body["valid"], true, "{}", verified.text);
        assert_eq!(verified.body["eventsChecked"], 5);
    }

    async fn verify_finds_an_altered_event(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa, _, _) = app.service_account(&team.owner_key, "Bot").await;
        let events = app.as_key(&team.owner_key).get("/v1/audit-events").await;
        let victim = events.body["events"].as_array().unwrap().iter()
            .find(|e| e["action"] == "service_account.create").unwrap().clone();
        tamper(&app, &[format!(
            "update audit_events set details = '{{\"name\":\"Innocent\"}}' where id = '{}'", victim["id"].as_str().unwrap()
        )]).await;
        let verified = app.as_key(&team.owner_key).get("/v1/audit-events/verify").await;
        assert_eq!(verified.body["valid"], false);
        assert_eq!(verified.body["problem"]["kind"], "hash_mismatch");
        assert_eq!(verified.body["problem"]["eventId"], victim["id"]);
        let _ = sa;
    }

    async fn verify_finds_a_deleted_event(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        app.service_account(&team.owner_key, "Bot").await;
        tamper(&app, &[format!("delete from audit_events where stream = '{}' and seq = 2", team.id)]).await;
        let verified = app.as_key(&team.owner_key).get("/v1/audit-events/verify").await;
        assert_eq!(verified.body["valid"], false, "{}", verified.text);
        assert_eq!(verified.body["problem"]["kind"], "missing_event");
        assert_eq!(verified.body["problem"]["sequence"], 2);
    }

    async fn verify_finds_deleted_newest_events(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        app.service_account(&team.owner_key, "Bot").await;
        let newest = app.scalar_i64(&format!("select max(seq) from audit_events where stream = '{}'", team.id)).await;
        tamper(&app, &[format!("delete from audit_events where stream = '{}' and seq = {newest}", team.id)]).await;
        let verified = app.as_key(&team.owner_key).get("/v1/audit-events/verify").await;
        assert_eq!(verified.body["valid"], false, "{}", verified.text);
        assert_eq!(verified.body["problem"]["kind"], "truncated_tail");
    }

    async fn a_forged_chain_without_the_server_secret_does_not_verify(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        app.service_account(&team.owner_key, "Bot").await;
        // Rewriting an event and "fixing" its hash with an unkeyed SHA-256 is still caught.
        let victim: String = {
            let pool = app.raw_pool().await;
            let id = sqlx::query_scalar(&format!("select id from audit_events where stream = '{}' and seq = 1", team.id))
                .fetch_one(&pool).await.unwrap();
            pool.close().await;
            id
        };
        let fake_hash = match app.backend() {
            tessera_store::Backend::Sqlite => "x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'",
            tessera_store::Backend::Postgres => "'\\x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'::bytea",
        };
        tamper(&app, &[format!("update audit_events set client_ip = '10.0.0.1', hash = {fake_hash} where id = '{victim}'")]).await;
        let verified = app.as_key(&team.owner_key).get("/v1/audit-events/verify").await;
        assert_eq!(verified.body["valid"], false);
        assert_eq!(verified.body["problem"]["sequence"], 1);
    }
}
