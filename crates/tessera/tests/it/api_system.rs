//! The unauthenticated surface and cross-cutting behaviour: health, readiness, metrics,
//! OpenAPI, request ids, and the request log (which never holds a secret).

use serde_json::json;
use tessera_domain::team::Plan;

use crate::harness::{captured_logs, on_both_backends};

/// (method, path) of every route the server has, as the OpenAPI document must list them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v0/me"),
    ("get", "/v1/me"),
    ("get", "/v1/team"),
    ("get", "/v1/users"),
    ("post", "/v1/service-accounts"),
    ("get", "/v1/service-accounts"),
    ("get", "/v1/service-accounts/{id}"),
    ("patch", "/v1/service-accounts/{id}"),
    ("post", "/v1/service-accounts/{id}/archive"),
    ("post", "/v1/service-accounts/{id}/api-keys"),
    ("post", "/v1/service-accounts/{id}/api-keys/{keyId}/rotate"),
    ("delete", "/v1/service-accounts/{id}/api-keys/{keyId}"),
    ("patch", "/v1/service-accounts/{id}/api-keys/{keyId}"),
    ("post", "/v1/me/api-keys"),
    ("get", "/v1/me/api-keys"),
    ("delete", "/v1/me/api-keys/{keyId}"),
    ("get", "/v1/audit-events"),
    ("get", "/v1/audit-events/verify"),
    ("post", "/v1/integrations"),
    ("get", "/v1/integrations"),
    ("get", "/v1/integrations/{id}"),
    ("patch", "/v1/integrations/{id}"),
    ("delete", "/v1/integrations/{id}"),
    ("get", "/v0/repositories"),
    ("get", "/v1/repositories"),
    ("post", "/v0/agents"),
    ("get", "/v0/agents"),
    ("get", "/v0/agents/{id}"),
    ("delete", "/v0/agents/{id}"),
    ("post", "/v0/agents/{id}/stop"),
    ("post", "/v0/agents/{id}/followup"),
    ("get", "/v0/agents/{id}/conversation"),
    ("get", "/v0/models"),
    ("post", "/v1/agents"),
    ("get", "/v1/agents"),
    ("get", "/v1/agents/{id}"),
    ("delete", "/v1/agents/{id}"),
    ("post", "/v1/agents/{id}/archive"),
    ("post", "/v1/agents/{id}/unarchive"),
    ("post", "/v1/agents/{id}/runs"),
    ("get", "/v1/agents/{id}/runs"),
    ("get", "/v1/agents/{id}/runs/{runId}"),
    ("post", "/v1/agents/{id}/runs/{runId}/cancel"),
    ("get", "/v1/agents/{id}/runs/{runId}/stream"),
    ("get", "/v1/agents/{id}/usage"),
    ("get", "/v1/models"),
];

on_both_backends! {
    async fn health_readiness_and_openapi_need_no_key(app: TestApp) {
        let anonymous = app.anonymous();
        assert_eq!(anonymous.get("/healthz").await.body, json!({ "status": "ok" }));
        assert_eq!(anonymous.get("/readyz").await.body, json!({ "status": "ok" }));
        let document = anonymous.get("/openapi.json").await;
        assert_eq!(document.status, 200);
        assert!(document.body["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = document.body["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} missing from OpenAPI");
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, ROUTES.len(), "every route, and only those");
        let schemes = &document.body["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["basic"]["scheme"], "basic");
    }

    async fn readiness_fails_when_the_database_is_gone(app: TestApp) {
        app.store.close().await;
        let reply = app.anonymous().get("/readyz").await;
        assert_eq!((reply.status, reply.code()), (503, "not_ready"));
    }

    async fn metrics_report_requests_failures_and_the_cache(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        for _ in 0..3 {
            app.as_key(&team.owner_key).get("/v0/me").await;
        }
        app.as_key("tessera_sa_nope").get("/v0/me").await;
        let metrics = app.anonymous().get("/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = metrics.text;
        for expected in [
            "tessera_http_requests_total{route=\"/v0/me\",method=\"GET\",status=\"200\"} 3",
            "tessera_http_requests_total{route=\"/v0/me\",method=\"GET\",status=\"401\"} 1",
            "tessera_http_request_duration_seconds_bucket{le=",
            "tessera_auth_failures_total{reason=\"malformed\"} 1",
            "tessera_key_verifications_total{result=\"valid\"} 3",
            "tessera_key_cache_hit_ratio ",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let sample = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let (hits, misses) = (sample("tessera_key_cache_hits_total"), sample("tessera_key_cache_misses_total"));
        assert_eq!(hits + misses, 3.0, "three verifications of a well-formed key");
        assert!(misses >= 1.0);
        assert!((sample("tessera_key_cache_hit_ratio") - hits / 3.0).abs() < 1e-9);
        // A request that came through a proxy is not local: the endpoint hides.
        let proxied = app.anonymous().request(reqwest::Method::GET, "/metrics")
            .header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
        assert_eq!(proxied.status(), 404);
    }

    async fn each_request_gets_an_id_and_one_log_line_without_secrets(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Logged").await;
        let ok = app.as_key(&sa_key).get("/v0/me").await;
        let request_id = ok.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(request_id.starts_with("req_"));
        let echoed = app.as_key(&sa_key).request(reqwest::Method::GET, "/v0/me")
            .header("x-request-id", "ci-build-42").send().await.unwrap();
        assert_eq!(echoed.headers()["x-request-id"], "ci-build-42");
        let refused = app.as_key(&format!("{sa_key}x")).get("/v0/me").await;
        assert_eq!(refused.status, 401);
        let logs = captured_logs();
        let line = logs.lines().find(|l| l.contains(&request_id)).expect("request logged");
        let sa_id = ok.body["serviceAccountId"].as_str().unwrap();
        for field in ["GET", "/v0/me", "200", "latency_ms", sa_id] {
            assert!(line.contains(field), "{field} not in {line}");
        }
        assert_eq!(logs.lines().filter(|l| l.contains(&request_id)).count(), 1, "logged once");
        for secret in [&sa_key, &team.owner_key] {
            assert!(!logs.contains(&secret[11..]), "a key reached the log");
        }
    }
}
