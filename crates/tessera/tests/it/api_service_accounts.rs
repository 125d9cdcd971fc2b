//! Service accounts over the API: Enterprise only, no seats, create/list/get/update/archive,
//! key limits, masking, and bad input that changes nothing.

use serde_json::json;
use tessera_domain::api_key::ParsedApiKey;
use tessera_domain::team::{Plan, Role};

use crate::harness::on_both_backends;

on_both_backends! {
    async fn only_enterprise_teams_have_service_accounts(app: TestApp) {
        for plan in [Plan::Free, Plan::Pro, Plan::Business] {
            let team = app.team(&format!("Team {plan}"), plan, None).await;
            let refused = app.as_key(&team.owner_key).post("/v1/service-accounts", json!({ "name": "Bot" })).await;
            assert_eq!((refused.status, refused.code()), (403, "plan_required"), "{plan}");
            assert!(refused.body["error"]["message"].as_str().unwrap().contains("Enterprise plan"));
            let summary = app.as_key(&team.owner_key).get("/v1/team").await;
            assert_eq!(summary.body["serviceAccounts"], 0);
        }
        assert_eq!(app.count("service_accounts").await, 0);
        assert_eq!(app.count("api_keys").await, 3, "only the three owners' keys");
    }

    async fn service_accounts_take_no_seat(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, Some(2)).await;
        app.user(&team, "second@acme.test", Role::Member).await;
        // Every human seat is taken: a third human is refused…
        let hasher = &app.state.hasher;
        let (_, key) = tessera_server::keys::mint_key(hasher, tessera_domain::api_key::KeyKind::User, "k", None);
        let third = tessera_store::users::NewUser {
            id: tessera_domain::ids::UserId::generate(),
            number: tessera_domain::ids::generate_user_number(),
            email: tessera_domain::names::Email::parse("third@acme.test").unwrap(),
            name: None,
            role: Role::Member,
        };
        let refused = app.store.add_user(&team.id, &third, Some(&key), &crate::harness::operator_context()).await;
        assert!(matches!(refused, Err(tessera_store::StoreError::SeatLimitReached { limit: 2 })), "{refused:?}");
        // …but service accounts can still be created, and never count as seats.
        for name in ["Linear Integration", "Sentry Auto-Fix", "Nightly Refactor"] {
            app.service_account(&team.owner_key, name).await;
        }
        let summary = app.as_key(&team.owner_key).get("/v1/team").await;
        assert_eq!(summary.body["seatsUsed"], 2, "{}", summary.text);
        assert_eq!(summary.body["seatLimit"], 2);
        assert_eq!(summary.body["serviceAccounts"], 3);
        assert_eq!(summary.body["plan"], "enterprise");
    }

    async fn create_shows_the_key_once_and_lists_it_masked(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let created = owner
            .post("/v1/service-accounts", json!({ "name": "Linear Integration", "description": "Tickets to runs" }))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let key = created.body["apiKey"]["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("tessera_sa_"));
        assert!(ParsedApiKey::parse(&key).is_ok(), "checksum verifies");
        let masked = format!("tessera_sa_…{}", &key[key.len() - 4..]);
        assert_eq!(created.body["apiKey"]["maskedKey"], masked.as_str());
        let account = &created.body["serviceAccount"];
        assert_eq!(account["name"], "Linear Integration");
        assert_eq!(account["description"], "Tickets to runs");
        assert_eq!(account["status"], "active");
        assert_eq!(account["createdBy"], team.owner_id.as_str());

        let id = account["id"].as_str().unwrap();
        for reply in [owner.get("/v1/service-accounts").await, owner.get(&format!("/v1/service-accounts/{id}")).await] {
            assert_eq!(reply.status, 200);
            assert!(!reply.text.contains(&key), "a listing never holds the key");
            assert!(!reply.text.contains(&key[11..key.len() - 4]));
            assert!(reply.text.contains(&masked));
        }
        let listed = owner.get("/v1/service-accounts").await;
        let listed_key = &listed.body["serviceAccounts"][0]["apiKeys"][0];
        let fields: Vec<&String> = listed_key.as_object().unwrap().keys().collect();
        for field in ["id", "maskedKey", "createdAt", "lastUsedAt", "expiresAt"] {
            assert!(fields.iter().any(|f| *f == field), "{field} missing from {listed_key}");
        }
        assert!(listed_key.get("key").is_none());
        // The database holds a digest, never the key.
        let pool = app.raw_pool().await;
        let texts: Vec<String> = sqlx::query_scalar(
            "select coalesce(name,'') || masked || created_by from api_keys",
        ).fetch_all(&pool).await.unwrap();
        let digests: Vec<Vec<u8>> = sqlx::query_scalar("select digest from api_keys").fetch_all(&pool).await.unwrap();
        let events: Vec<String> = sqlx::query_scalar("select details from audit_events").fetch_all(&pool).await.unwrap();
        pool.close().await;
        assert!(texts.iter().chain(events.iter()).all(|t| !t.contains(&key[11..])));
        assert!(digests.iter().all(|d| d.len() == 32 && !d.windows(8).any(|w| key.as_bytes().windows(8).any(|k| k == w))));
    }

    async fn update_renames_and_clears_the_description(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (id, _, _) = app.service_account(&team.owner_key, "Old Name").await;
        let renamed = owner.patch(&format!("/v1/service-accounts/{id}"), json!({ "name": "New Name" })).await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        assert_eq!(renamed.body["name"], "New Name");
        assert_eq!(renamed.body["description"], "test", "left out means unchanged");
        let cleared = owner.patch(&format!("/v1/service-accounts/{id}"), json!({ "description": null })).await;
        assert!(cleared.body["description"].is_null());
        assert_eq!(cleared.body["name"], "New Name");
    }

    async fn names_are_unique_among_active_accounts_only(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (first, _, _) = app.service_account(&team.owner_key, "Deploy Bot").await;
        let duplicate = owner.post("/v1/service-accounts", json!({ "name": "deploy bot" })).await;
        assert_eq!((duplicate.status, duplicate.code()), (409, "name_taken"));
        let (second, _, _) = app.service_account(&team.owner_key, "Other").await;
        let rename = owner.patch(&format!("/v1/service-accounts/{second}"), json!({ "name": "DEPLOY BOT" })).await;
        assert_eq!((rename.status, rename.code()), (409, "name_taken"));
        // Once archived, the name is free again, and the archived record stays.
        assert_eq!(owner.post_empty(&format!("/v1/service-accounts/{first}/archive")).await.status, 200);
        app.service_account(&team.owner_key, "Deploy Bot").await;
        let all = owner.get("/v1/service-accounts?archived=true").await;
        assert_eq!(all.body["serviceAccounts"].as_array().unwrap().len(), 3);
    }

    async fn archive_revokes_every_key_and_keeps_the_record(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (id, _, first_key) = app.service_account(&team.owner_key, "Retired").await;
        let second = owner.post(&format!("/v1/service-accounts/{id}/api-keys"), json!({ "name": "second" })).await;
        assert_eq!(second.status, 201);
        let second_key = second.body["apiKey"]["key"].as_str().unwrap().to_owned();
        assert_eq!(app.as_key(&second_key).get("/v0/me").await.body["apiKeyName"], "second");
        let archived = owner.post_empty(&format!("/v1/service-accounts/{id}/archive")).await;
        assert_eq!(archived.status, 200, "{}", archived.text);
        assert_eq!(archived.body["revokedKeyIds"].as_array().unwrap().len(), 2);
        assert_eq!(archived.body["serviceAccount"]["status"], "archived");
        for key in [&first_key, &second_key] {
            assert_eq!(app.as_key(key).get("/v0/me").await.status, 401);
        }
        // Left out of the default list, shown with archived=true, still readable by id.
        assert_eq!(owner.get("/v1/service-accounts").await.body["serviceAccounts"], json!([]));
        let shown = owner.get("/v1/service-accounts?archived=true").await;
        assert_eq!(shown.body["serviceAccounts"][0]["id"], id.as_str());
        assert_eq!(owner.get(&format!("/v1/service-accounts/{id}")).await.status, 200);
        // An archived account cannot get keys or be changed; archiving again changes nothing.
        let refused = owner.post_empty(&format!("/v1/service-accounts/{id}/api-keys")).await;
        assert_eq!((refused.status, refused.code()), (409, "service_account_archived"));
        let refused = owner.patch(&format!("/v1/service-accounts/{id}"), json!({ "name": "x" })).await;
        assert_eq!((refused.status, refused.code()), (409, "service_account_archived"));
        // Failed authentications above are audited in the background; count only changes.
        let changes = "select count(*) from audit_events where action <> 'auth.failure'";
        let events_before = app.scalar_i64(changes).await;
        let again = owner.post_empty(&format!("/v1/service-accounts/{id}/archive")).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["revokedKeyIds"], json!([]));
        assert_eq!(app.scalar_i64(changes).await, events_before);
        // Its history stays readable.
        let history = owner.get(&format!("/v1/audit-events?targetId={id}")).await;
        let actions: Vec<&str> = history.body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["service_account.archive", "service_account.create"]);
    }

    async fn an_account_holds_at_most_ten_live_keys(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (id, first_key_id, _) = app.service_account(&team.owner_key, "Busy").await;
        for _ in 0..9 {
            assert_eq!(owner.post_empty(&format!("/v1/service-accounts/{id}/api-keys")).await.status, 201);
        }
        let refused = owner.post_empty(&format!("/v1/service-accounts/{id}/api-keys")).await;
        assert_eq!((refused.status, refused.code()), (409, "key_limit_reached"));
        assert_eq!(owner.delete(&format!("/v1/service-accounts/{id}/api-keys/{first_key_id}")).await.status, 200);
        assert_eq!(owner.post_empty(&format!("/v1/service-accounts/{id}/api-keys")).await.status, 201);
        let again = owner.delete(&format!("/v1/service-accounts/{id}/api-keys/{first_key_id}")).await;
        assert_eq!((again.status, again.code()), (409, "key_not_active"));
    }

    async fn bad_input_gets_a_clear_4xx_and_changes_nothing(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (id, key_id, _) = app.service_account(&team.owner_key, "Existing").await;
        let before = (app.count("service_accounts").await, app.count("api_keys").await, app.count("audit_events").await);
        let raw = |body: &'static str| {
            owner.request(reqwest::Method::POST, "/v1/service-accounts")
                .header("content-type", "application/json").body(body).send()
        };
        let cases: Vec<(&str, crate::harness::Reply, u16, &str)> = vec![
            ("invalid json", crate::harness::reply(raw("{\"name\": ").await.unwrap()).await, 400, "invalid_json"),
            ("not an object", crate::harness::reply(raw("[1,2]").await.unwrap()).await, 400, "validation_error"),
            ("empty body", owner.post_empty("/v1/service-accounts").await, 400, "missing_body"),
            ("unknown field", owner.post("/v1/service-accounts", json!({ "name": "x", "scopes": [] })).await, 400, "validation_error"),
            ("missing field", owner.post("/v1/service-accounts", json!({ "description": "x" })).await, 400, "validation_error"),
            ("wrong type", owner.post("/v1/service-accounts", json!({ "name": 7 })).await, 400, "validation_error"),
            ("empty name", owner.post("/v1/service-accounts", json!({ "name": "  " })).await, 400, "validation_error"),
            ("long name", owner.post("/v1/service-accounts", json!({ "name": "x".repeat(101) })).await, 400, "validation_error"),
            ("control char", owner.post("/v1/service-accounts", json!({ "name": "a\u{7}b" })).await, 400, "validation_error"),
            ("duplicate", owner.post("/v1/service-accounts", json!({ "name": "EXISTING" })).await, 409, "name_taken"),
            ("bad rename", owner.patch(&format!("/v1/service-accounts/{id}"), json!({ "name": "" })).await, 400, "validation_error"),
            ("unknown rotate field", owner.post(&format!("/v1/service-accounts/{id}/api-keys/{key_id}/rotate"), json!({ "grace": 5 })).await, 400, "validation_error"),
            ("negative grace", owner.post(&format!("/v1/service-accounts/{id}/api-keys/{key_id}/rotate"), json!({ "gracePeriodSeconds": -1 })).await, 400, "validation_error"),
            ("bad limit", owner.get("/v1/service-accounts?limit=0").await, 400, "validation_error"),
            ("bad cursor", owner.get("/v1/service-accounts?cursor=%%%").await, 400, "invalid_cursor"),
            ("bad action filter", owner.get("/v1/audit-events?action=nope").await, 400, "validation_error"),
            ("id of the wrong shape", owner.get("/v1/service-accounts/not-an-id").await, 404, "not_found"),
            ("key id of the wrong shape", owner.delete(&format!("/v1/service-accounts/{id}/api-keys/sa_123")).await, 404, "not_found"),
            ("unknown route", owner.get("/v1/nothing-here").await, 404, "not_found"),
            ("wrong method", owner.send(reqwest::Method::PUT, "/v1/service-accounts", None).await, 405, "method_not_allowed"),
        ];
        let too_big = owner.request(reqwest::Method::POST, "/v1/service-accounts")
            .header("content-type", "application/json")
            .body(format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10)))
            .send().await.unwrap();
        let too_big = crate::harness::reply(too_big).await;
        let text_plain = owner.request(reqwest::Method::POST, "/v1/service-accounts")
            .header("content-type", "text/plain").body("{\"name\":\"x\"}").send().await.unwrap();
        let text_plain = crate::harness::reply(text_plain).await;
        for (what, reply, status, code) in cases.iter().map(|(w, r, s, c)| (*w, r, *s, *c))
            .chain([("over 1 MiB", &too_big, 413, "payload_too_large"), ("text/plain", &text_plain, 415, "unsupported_media_type")])
        {
            assert_eq!((reply.status, reply.code()), (status, code), "{what}: {}", reply.text);
            assert!(!reply.body["error"]["message"].as_str().unwrap_or("").is_empty(), "{what}");
        }
        let after = (app.count("service_accounts").await, app.count("api_keys").await, app.count("audit_events").await);
        assert_eq!(before, after);
    }

    async fn lists_page_with_a_keyset_cursor(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        for idx in 0..5 {
            app.service_account(&team.owner_key, &format!("Bot {idx}")).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/service-accounts?limit=2".to_owned();
        loop {
            let page = owner.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.text);
            let items = page.body["serviceAccounts"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|a| a["name"].as_str().unwrap().to_owned()));
            match page.body["nextCursor"].as_str() {
                Some(cursor) => path = format!("/v1/service-accounts?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen, ["Bot 0", "Bot 1", "Bot 2", "Bot 3", "Bot 4"]);
    }

    async fn humans_manage_their_own_keys(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
        let member = app.as_key(&member_key);
        let created = member.post("/v1/me/api-keys", json!({ "name": "laptop" })).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let new_key = created.body["apiKey"]["key"].as_str().unwrap().to_owned();
        assert!(new_key.starts_with("tessera_u_"));
        let me = app.as_key(&new_key).get("/v1/me").await;
        assert_eq!(me.body["userEmail"], "dev@acme.test", "a user key acts as that user");
        let listed = member.get("/v1/me/api-keys").await;
        assert_eq!(listed.body["apiKeys"].as_array().unwrap().len(), 2);
        assert!(!listed.text.contains(&new_key));
        let new_id = created.body["apiKey"]["id"].as_str().unwrap();
        assert_eq!(member.delete(&format!("/v1/me/api-keys/{new_id}")).await.status, 200);
        assert_eq!(app.as_key(&new_key).get("/v1/me").await.status, 401);
        // Another user's key id is simply not found.
        let owner_keys = app.as_key(&team.owner_key).get("/v1/me/api-keys").await;
        let owner_key_id = owner_keys.body["apiKeys"][0]["id"].as_str().unwrap();
        assert_eq!(member.delete(&format!("/v1/me/api-keys/{owner_key_id}")).await.status, 404);
    }
}
