//! Authentication: both schemes, identical 401s, revocation and rotation taking effect at once
//! across processes, concurrent rotations, last-used batching, `/v0/me` and `/v1/me`.

use std::time::Duration;

use serde_json::json;
use tessera_domain::team::{Plan, Role};

use crate::harness::{TestApp, on_both_backends, reply};

/// The body and headers every refused credential gets, whatever the reason.
fn assert_uniform_401(reply: &crate::harness::Reply) {
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.body, json!({ "error": { "code": "unauthorized", "message": "Invalid API key" } }));
    let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
    assert!(challenges.iter().any(|v| v.to_str().unwrap().starts_with("Bearer")), "{challenges:?}");
    assert!(challenges.iter().any(|v| v.to_str().unwrap().starts_with("Basic")), "{challenges:?}");
}

/// The reasons of recorded failed authentications, once at least `expected` are written (they
/// are written in the background).
async fn failure_reasons(app: &TestApp, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pool = app.raw_pool().await;
        let rows: Vec<String> = sqlx::query_scalar(
            "select details from audit_events where action = 'auth.failure' order by occurred_at",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        if rows.len() >= expected || std::time::Instant::now() > deadline {
            return rows
                .iter()
                .map(|d| {
                    serde_json::from_str::<serde_json::Value>(d).unwrap()["reason"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends! {
    async fn bearer_and_basic_both_authenticate(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "CI").await;
        for key in [&team.owner_key, &sa_key] {
            assert_eq!(app.as_key(key).get("/v0/me").await.status, 200);
            assert_eq!(app.as_basic(key).get("/v0/me").await.status, 200);
            assert_eq!(app.as_basic(key).get("/v1/me").await.status, 200);
        }
        // Basic with a password is not Cursor's convention, and is refused.
        let with_password = app.anonymous().request(reqwest::Method::GET, "/v0/me")
            .basic_auth(&team.owner_key, Some("secret")).send().await.unwrap();
        assert_uniform_401(&reply(with_password).await);
    }

    async fn every_failure_gets_the_same_401_and_is_audited_by_reason(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        // Revoked: a second key, revoked.
        let (sa_id, first_key_id, first_key) = app.service_account(&team.owner_key, "Revoked").await;
        let added = owner.post_empty(&format!("/v1/service-accounts/{sa_id}/api-keys")).await;
        assert_eq!(added.status, 201);
        let revoked = owner.delete(&format!("/v1/service-accounts/{sa_id}/api-keys/{first_key_id}")).await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
        // Archived: a key of an archived account.
        let (archived_id, _, archived_key) = app.service_account(&team.owner_key, "Archived").await;
        assert_eq!(owner.post_empty(&format!("/v1/service-accounts/{archived_id}/archive")).await.status, 200);
        // Expired: rotated with a 1-second grace period that has passed.
        let (expiring_id, expiring_key_id, expiring_key) = app.service_account(&team.owner_key, "Expiring").await;
        let rotated = owner
            .post(&format!("/v1/service-accounts/{expiring_id}/api-keys/{expiring_key_id}/rotate"),
                  json!({ "gracePeriodSeconds": 1 }))
            .await;
        assert_eq!(rotated.status, 200, "{}", rotated.text);
        assert_eq!(app.as_key(&expiring_key).get("/v0/me").await.status, 200, "works during the grace period");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Unknown: well-formed, right checksum, never issued.
        let unknown = tessera_domain::api_key::PlainApiKey::generate(tessera_domain::api_key::KeyKind::ServiceAccount);

        let cases = [
            ("unknown", unknown.expose_secret().to_owned()),
            ("malformed", "tessera_sa_notakey".to_owned()),
            ("revoked", first_key.clone()),
            ("expired", expiring_key.clone()),
            ("archived", archived_key.clone()),
        ];
        for (reason, key) in &cases {
            let bearer = app.as_key(key).get("/v1/team").await;
            assert_uniform_401(&bearer);
            let basic = app.as_basic(key).get("/v1/team").await;
            assert_uniform_401(&basic);
            assert_eq!(bearer.text, basic.text, "{reason}");
        }
        assert_uniform_401(&app.anonymous().get("/v1/team").await);
        // Each case was tried with both schemes.
        let reasons = failure_reasons(&app, 2 * cases.len()).await;
        for reason in ["unknown", "malformed", "revoked", "expired", "archived"] {
            assert!(reasons.iter().any(|r| r == reason), "{reason} not audited: {reasons:?}");
        }
        // The audit records never hold the secret.
        let pool = app.raw_pool().await;
        let details: Vec<String> = sqlx::query_scalar("select details from audit_events").fetch_all(&pool).await.unwrap();
        pool.close().await;
        for (_, key) in &cases {
            assert!(details.iter().all(|d| !d.contains(key.as_str())));
        }
    }

    async fn revocation_is_immediate_on_every_server_sharing_the_database(app: TestApp) {
        let peer = app.spawn_peer().await;
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa_id, key_id, key) = app.service_account(&team.owner_key, "Deploy Bot").await;
        // Warm both caches.
        for _ in 0..3 {
            assert_eq!(app.as_key(&key).get("/v0/me").await.status, 200);
            assert_eq!(peer.as_key(&key).get("/v0/me").await.status, 200);
        }
        let hits_before = peer.state.metrics.key_cache_hits.get();
        assert_eq!(peer.as_key(&key).get("/v0/me").await.status, 200);
        assert!(peer.state.metrics.key_cache_hits.get() > hits_before, "the peer answered from its cache");
        // Revoke through the first server; the very next request on the peer is refused.
        let revoked = app.as_key(&team.owner_key).delete(&format!("/v1/service-accounts/{sa_id}/api-keys/{key_id}")).await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
        assert_eq!(peer.as_key(&key).get("/v0/me").await.status, 401);
        assert_eq!(app.as_key(&key).get("/v0/me").await.status, 401);
        peer.stop().await;
    }

    async fn rotation_without_grace_stops_the_old_key_at_once(app: TestApp) {
        let peer = app.spawn_peer().await;
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa_id, key_id, old_key) = app.service_account(&team.owner_key, "Sentry Auto-Fix").await;
        assert_eq!(peer.as_key(&old_key).get("/v0/me").await.status, 200);
        let rotated = app.as_key(&team.owner_key)
            .post_empty(&format!("/v1/service-accounts/{sa_id}/api-keys/{key_id}/rotate")).await;
        assert_eq!(rotated.status, 200, "{}", rotated.text);
        assert_eq!(rotated.body["previousKey"]["status"], "revoked");
        assert!(rotated.body["previousKey"]["validUntil"].is_null());
        let new_key = rotated.body["apiKey"]["key"].as_str().unwrap();
        assert_eq!(peer.as_key(&old_key).get("/v0/me").await.status, 401);
        assert_eq!(peer.as_key(new_key).get("/v0/me").await.status, 200);
        // The listing shows only the new key.
        let listed = app.as_key(&team.owner_key).get(&format!("/v1/service-accounts/{sa_id}")).await;
        let keys = listed.body["apiKeys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["id"], rotated.body["apiKey"]["id"]);
        peer.stop().await;
    }

    async fn rotation_with_grace_overlaps_and_says_until_when(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let (sa_id, key_id, old_key) = app.service_account(&team.owner_key, "Cron").await;
        let rotated = owner
            .post(&format!("/v1/service-accounts/{sa_id}/api-keys/{key_id}/rotate"), json!({ "gracePeriodSeconds": 3600 }))
            .await;
        assert_eq!(rotated.status, 200, "{}", rotated.text);
        assert_eq!(rotated.body["previousKey"]["status"], "expiring");
        let until = rotated.body["previousKey"]["validUntil"].as_str().unwrap();
        assert!(until.ends_with('Z'));
        assert_eq!(app.as_key(&old_key).get("/v0/me").await.status, 200);
        // Both keys are listed while both work; the old one shows its expiry.
        let listed = owner.get(&format!("/v1/service-accounts/{sa_id}")).await;
        let keys = listed.body["apiKeys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let old = keys.iter().find(|k| k["id"] == key_id).unwrap();
        assert_eq!(old["expiresAt"], until);
        // A leak during the grace period: revoke the old key now.
        assert_eq!(owner.delete(&format!("/v1/service-accounts/{sa_id}/api-keys/{key_id}")).await.status, 200);
        assert_eq!(app.as_key(&old_key).get("/v0/me").await.status, 401);
        // More than 7 days is refused.
        let new_key_id = rotated.body["apiKey"]["id"].as_str().unwrap();
        let too_long = owner
            .post(&format!("/v1/service-accounts/{sa_id}/api-keys/{new_key_id}/rotate"), json!({ "gracePeriodSeconds": 604801 }))
            .await;
        assert_eq!((too_long.status, too_long.code()), (400, "validation_error"));
    }

    async fn of_concurrent_rotations_exactly_one_wins(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa_id, key_id, _) = app.service_account(&team.owner_key, "Racer").await;
        let owner = app.as_key(&team.owner_key);
        let path = format!("/v1/service-accounts/{sa_id}/api-keys/{key_id}/rotate");
        let attempts = (0..8).map(|_| {
            let owner = owner.clone();
            let path = path.clone();
            tokio::spawn(async move { owner.post(&path, json!({ "gracePeriodSeconds": 60 })).await })
        });
        let mut statuses = Vec::new();
        for attempt in attempts {
            let reply = attempt.await.unwrap();
            if reply.status == 409 {
                assert_eq!(reply.code(), "rotation_conflict");
            }
            statuses.push(reply.status);
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
        let successors = app
            .scalar_i64(&format!("select count(*) from api_keys where service_account_id = '{sa_id}' and id <> '{key_id}'"))
            .await;
        assert_eq!(successors, 1);
    }

    async fn last_used_is_recorded_in_batches(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa_id, _, key) = app.service_account(&team.owner_key, "Poller").await;
        let owner = app.as_key(&team.owner_key);
        let before = owner.get(&format!("/v1/service-accounts/{sa_id}")).await;
        assert!(before.body["apiKeys"][0]["lastUsedAt"].is_null());
        for _ in 0..20 {
            assert_eq!(app.as_key(&key).get("/v0/me").await.status, 200);
        }
        // Nothing is written per request; the flusher writes within its interval (100 ms here).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let after = loop {
            let after = owner.get(&format!("/v1/service-accounts/{sa_id}")).await;
            if !after.body["apiKeys"][0]["lastUsedAt"].is_null() || std::time::Instant::now() > deadline {
                break after;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let last_used = after.body["apiKeys"][0]["lastUsedAt"].as_str().expect("lastUsedAt written").to_owned();
        assert_eq!(after.body["lastUsedAt"], last_used.as_str());
    }

    async fn me_speaks_cursor_shapes(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa_id, _, sa_key) = app.service_account(&team.owner_key, "Linear Integration").await;
        let v0 = app.as_key(&sa_key).get("/v0/me").await;
        assert_eq!(v0.body["apiKeyName"], "Linear Integration");
        assert!(v0.body["createdAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v0.body["serviceAccountId"], sa_id.as_str());
        assert_eq!(v0.body["teamId"], team.id.as_str());
        assert!(v0.body.get("userEmail").is_none());
        let v1 = app.as_key(&sa_key).get("/v1/me").await;
        assert!(v1.body.get("userId").is_none() && v1.body.get("userEmail").is_none());
        assert_eq!(v1.body["serviceAccountId"], sa_id.as_str());

        let (_, member_key) = app.user(&team, "ada@acme.test", Role::Member).await;
        let v1 = app.as_key(&member_key).get("/v1/me").await;
        assert!(v1.body["userId"].is_i64(), "{}", v1.text);
        assert_eq!(v1.body["userEmail"], "ada@acme.test");
        assert_eq!(v1.body["userFirstName"], "Ada");
        assert_eq!(v1.body["userLastName"], "Lovelace");
        let v0 = app.as_key(&member_key).get("/v0/me").await;
        assert_eq!(v0.body["userEmail"], "ada@acme.test");
    }

    async fn a_service_account_on_a_downgraded_team_is_refused(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        app.store.set_team_plan(&team.id, Plan::Business, &crate::harness::operator_context()).await.unwrap();
        tokio::time::sleep(crate::harness::TEST_CACHE_TTL).await;
        let refused = app.as_key(&sa_key).get("/v0/me").await;
        assert_eq!((refused.status, refused.code()), (403, "plan_required"));
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("Enterprise"));
        // Humans keep working.
        assert_eq!(app.as_key(&team.owner_key).get("/v0/me").await.status, 200);
    }
}
