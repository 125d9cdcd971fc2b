//! Per-key rate limits: headers on every authenticated response, 429 with `Retry-After`,
//! per-key overrides, defaults that suit polling, and isolation between keys.

use serde_json::json;
use tessera_domain::team::{Plan, Role};
use tessera_store::Backend;

use crate::harness::{TestApp, test_config};

async fn app_with_limit(backend: Backend, per_minute: u64) -> Option<TestApp> {
    TestApp::spawn_with_config(
        backend,
        tessera_server::config::ServerConfig { rate_limit_per_minute: per_minute, ..test_config() },
    )
    .await
}

fn header(reply: &crate::harness::Reply, name: &str) -> u64 {
    reply.headers[name].to_str().unwrap().parse().unwrap()
}

async fn refuses_past_the_limit_and_says_when_to_retry(backend: Backend) {
    // 20 a minute: a bucket of 5 that refills one request every 3 s, slow enough that timing
    // noise on a busy machine cannot change the counts below.
    let Some(app) = app_with_limit(backend, 20).await else { return };
    let team = app.team("Acme", Plan::Enterprise, None).await;
    let (_, _, noisy) = app.service_account(&team.owner_key, "Noisy").await;
    let (_, _, quiet) = app.service_account(&team.owner_key, "Quiet").await;
    for expected_remaining in (0..5).rev() {
        let reply = app.as_key(&noisy).get("/v0/me").await;
        assert_eq!(reply.status, 200);
        assert_eq!(header(&reply, "x-ratelimit-limit"), 20);
        assert_eq!(header(&reply, "x-ratelimit-remaining"), expected_remaining);
        assert!(header(&reply, "x-ratelimit-reset") <= 15);
    }
    let refused = app.as_key(&noisy).get("/v1/service-accounts").await;
    assert_eq!((refused.status, refused.code()), (429, "rate_limit_exceeded"));
    assert!((1..=3).contains(&header(&refused, "retry-after")));
    assert_eq!(header(&refused, "x-ratelimit-remaining"), 0);
    // Another key is untouched.
    let other = app.as_key(&quiet).get("/v0/me").await;
    assert_eq!((other.status, header(&other, "x-ratelimit-remaining")), (200, 4));
    // Once Retry-After has passed, one more request passes.
    tokio::time::sleep(
        std::time::Duration::from_secs(header(&refused, "retry-after"))
            + std::time::Duration::from_millis(100),
    )
    .await;
    assert_eq!(app.as_key(&noisy).get("/v0/me").await.status, 200);
}

async fn a_key_can_have_its_own_limit(backend: Backend) {
    let Some(app) = app_with_limit(backend, 60).await else { return };
    let team = app.team("Acme", Plan::Enterprise, None).await;
    let owner = app.as_key(&team.owner_key);
    let (sa, key_id, key) = app.service_account(&team.owner_key, "Strict").await;
    let path = format!("/v1/service-accounts/{sa}/api-keys/{key_id}");
    let set = owner.patch(&path, json!({ "rateLimitPerMinute": 4 })).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["rateLimitPerMinute"], 4);
    tokio::time::sleep(crate::harness::TEST_CACHE_TTL).await;
    let first = app.as_key(&key).get("/v0/me").await;
    assert_eq!((first.status, header(&first, "x-ratelimit-limit")), (200, 4));
    assert_eq!(app.as_key(&key).get("/v0/me").await.status, 429, "4 per minute: a bucket of one");
    let listed = owner.get(&format!("/v1/service-accounts/{sa}")).await;
    assert_eq!(listed.body["apiKeys"][0]["rateLimitPerMinute"], 4);
    // Validation and permissions.
    assert_eq!(owner.patch(&path, json!({ "rateLimitPerMinute": 0 })).await.code(), "validation_error");
    let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
    assert_eq!(app.as_key(&member_key).patch(&path, json!({ "rateLimitPerMinute": 10 })).await.status, 403);
    // Back to the server default.
    let cleared = owner.patch(&path, json!({ "rateLimitPerMinute": null })).await;
    assert!(cleared.body["rateLimitPerMinute"].is_null());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = app.as_key(&key).get("/v0/me").await;
    assert_eq!((after.status, header(&after, "x-ratelimit-limit")), (200, 60));
    let events = owner.get("/v1/audit-events?action=api_key.update").await;
    assert_eq!(events.body["events"].as_array().unwrap().len(), 2);
}

async fn the_default_suits_polling_and_floods_stay_isolated(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let team = app.team("Acme", Plan::Enterprise, None).await;
    let (_, _, poller) = app.service_account(&team.owner_key, "Poller").await;
    let (_, _, flooder) = app.service_account(&team.owner_key, "Flooder").await;
    // Ten polls a second for the default's whole burst: never refused.
    let first = app.as_key(&poller).get("/v0/me").await;
    assert!(header(&first, "x-ratelimit-limit") >= 600);
    let flood = {
        let caller = app.as_key(&flooder);
        tokio::spawn(async move {
            let mut refused = 0;
            for _ in 0..600 {
                if caller.get("/v0/me").await.status == 429 {
                    refused += 1;
                }
            }
            refused
        })
    };
    for _ in 0..150 {
        assert_eq!(app.as_key(&poller).get("/v0/me").await.status, 200);
    }
    assert!(flood.await.unwrap() > 0, "the flood itself is limited");
}

macro_rules! both {
    ($($name:ident),*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$name(tessera_store::Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$name(tessera_store::Backend::Postgres).await }
            }
        )*
    };
}

both!(
    refuses_past_the_limit_and_says_when_to_retry,
    a_key_can_have_its_own_limit,
    the_default_suits_polling_and_floods_stay_isolated
);
