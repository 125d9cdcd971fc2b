//! Who may do what: the tenancy matrix (team B never sees team A), the role matrix (members
//! and service accounts cannot manage), and both auth schemes on every route.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_domain::team::{Plan, Role};

use crate::harness::{Caller, on_both_backends};

/// Every authenticated route, with ids filled in, and whether it is for owners and admins only.
fn routes(
    sa: &str,
    key: &str,
    own_key: &str,
    integration: &str,
) -> Vec<(Method, String, Option<Value>, bool)> {
    let team_repos = json!({
        "provider": "git", "scope": "team", "name": "Repos",
        "repositories": [{ "url": format!("https://git.acme.test/acme/{}", crate::harness::uuid_simple()) }],
    });
    vec![
        (Method::GET, "/v0/me".into(), None, false),
        (Method::GET, "/v1/me".into(), None, false),
        (Method::GET, "/v1/team".into(), None, false),
        (Method::GET, "/v1/users".into(), None, true),
        (Method::GET, "/v1/service-accounts".into(), None, true),
        (
            Method::POST,
            "/v1/service-accounts".into(),
            Some(json!({ "name": format!("n-{}", crate::harness::uuid_simple()) })),
            true,
        ),
        (Method::GET, format!("/v1/service-accounts/{sa}"), None, true),
        (
            Method::PATCH,
            format!("/v1/service-accounts/{sa}"),
            Some(json!({ "description": "changed" })),
            true,
        ),
        (Method::POST, format!("/v1/service-accounts/{sa}/api-keys"), None, true),
        (
            Method::POST,
            format!("/v1/service-accounts/{sa}/api-keys/{key}/rotate"),
            Some(json!({ "gracePeriodSeconds": 60 })),
            true,
        ),
        (Method::DELETE, format!("/v1/service-accounts/{sa}/api-keys/{key}"), None, true),
        (Method::POST, format!("/v1/service-accounts/{sa}/archive"), None, true),
        (Method::GET, "/v1/me/api-keys".into(), None, false),
        (Method::POST, "/v1/me/api-keys".into(), None, false),
        (Method::DELETE, format!("/v1/me/api-keys/{own_key}"), None, false),
        (Method::GET, "/v1/audit-events".into(), None, true),
        (Method::GET, "/v1/audit-events/verify".into(), None, true),
        (Method::GET, "/v1/integrations".into(), None, false),
        (Method::POST, "/v1/integrations".into(), Some(team_repos), true),
        (Method::GET, format!("/v1/integrations/{integration}"), None, false),
        (Method::PATCH, format!("/v1/integrations/{integration}"), Some(json!({ "name": "Renamed" })), true),
        (Method::GET, "/v0/repositories".into(), None, false),
        (Method::GET, "/v1/repositories".into(), None, false),
        (Method::DELETE, format!("/v1/integrations/{integration}"), None, true),
    ]
}

async fn team_integration(caller: &Caller) -> String {
    let body = json!({
        "provider": "git", "scope": "team", "name": "Acme",
        "repositories": [{ "url": format!("https://git.acme.test/acme/{}", crate::harness::uuid_simple()) }],
    });
    let created = caller.post("/v1/integrations", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["integration"]["id"].as_str().unwrap().to_owned()
}

fn without_last_used(mut account: Value) -> Value {
    account.as_object_mut().unwrap().remove("lastUsedAt");
    for key in account["apiKeys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("lastUsedAt");
    }
    account
}

async fn own_key_id(caller: &Caller) -> String {
    caller.get("/v1/me/api-keys").await.body["apiKeys"][0]["id"].as_str().unwrap().to_owned()
}

on_both_backends! {
    async fn no_credential_of_team_b_reaches_team_a(app: TestApp) {
        let a = app.team("Team A", Plan::Enterprise, None).await;
        let (a_sa, a_key_id, a_sa_key) = app.service_account(&a.owner_key, "A Bot").await;
        let a_owner_key_id = own_key_id(&app.as_key(&a.owner_key)).await;
        let a_integration = team_integration(&app.as_key(&a.owner_key)).await;
        let b = app.team("Team B", Plan::Enterprise, None).await;
        let (b_sa, b_key_id, b_sa_key) = app.service_account(&b.owner_key, "B Bot").await;
        let (_, b_admin_key) = app.user(&b, "admin@b.test", Role::Admin).await;
        let a_before = app.as_key(&a.owner_key).get(&format!("/v1/service-accounts/{a_sa}")).await.body;

        for b_key in [&b.owner_key, &b_admin_key] {
            let b_caller = app.as_key(b_key);
            // Every route that names one of A's objects answers 404, never 403.
            for (method, path, body, _) in routes(&a_sa, &a_key_id, &a_owner_key_id, &a_integration) {
                let names_a = [&a_sa, &a_owner_key_id, &a_integration].iter().any(|id| path.contains(id.as_str()));
                if !names_a {
                    continue;
                }
                let reply = b_caller.send(method.clone(), &path, body).await;
                assert_eq!((reply.status, reply.code()), (404, "not_found"), "{method} {path}: {}", reply.text);
            }
            // A's key id under B's own account is not found either.
            for (method, path) in [
                (Method::POST, format!("/v1/service-accounts/{b_sa}/api-keys/{a_key_id}/rotate")),
                (Method::DELETE, format!("/v1/service-accounts/{b_sa}/api-keys/{a_key_id}")),
            ] {
                assert_eq!(b_caller.send(method, &path, None).await.status, 404, "{path}");
            }
            // Lists and filters show nothing of A.
            for path in [
                "/v1/service-accounts?archived=true".to_owned(),
                "/v1/users".to_owned(),
                "/v1/team".to_owned(),
                "/v1/me/api-keys".to_owned(),
                "/v1/integrations".to_owned(),
                "/v1/repositories".to_owned(),
                "/v0/repositories".to_owned(),
                "/v1/audit-events?limit=100".to_owned(),
                format!("/v1/audit-events?targetId={a_sa}"),
                format!("/v1/audit-events?actor={}", a.owner_id),
            ] {
                let reply = b_caller.get(&path).await;
                assert_eq!(reply.status, 200, "{path}");
                for secret_of_a in [a_sa.as_str(), a.id.as_str(), a.owner_id.as_str(), a_key_id.as_str(), a_integration.as_str()] {
                    assert!(!reply.text.contains(secret_of_a), "{path} leaks {secret_of_a}: {}", reply.text);
                }
            }
        }
        // A's service-account key sees only A.
        let from_a = app.as_key(&a_sa_key).get("/v0/me").await;
        assert_eq!(from_a.body["teamId"], a.id.as_str());
        assert_eq!(app.as_key(&b_sa_key).get("/v0/me").await.body["teamId"], b.id.as_str());
        // Nothing of A changed.
        let a_after = app.as_key(&a.owner_key).get(&format!("/v1/service-accounts/{a_sa}")).await.body;
        assert_eq!(a_before, a_after);
        assert_eq!(app.as_key(&a_sa_key).get("/v0/me").await.status, 200);
        let _ = b_key_id;
    }

    async fn members_and_service_accounts_cannot_manage(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (sa, key_id, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let (_, member_key) = app.user(&team, "member@acme.test", Role::Member).await;
        let (_, admin_key) = app.user(&team, "admin@acme.test", Role::Admin).await;
        let before = app.as_key(&team.owner_key).get(&format!("/v1/service-accounts/{sa}")).await.body;
        // The member revokes a spare key of its own, not the one it is calling with.
        let spare = app.as_key(&member_key).post("/v1/me/api-keys", json!({ "name": "spare" })).await;
        let member_own_key = spare.body["apiKey"]["id"].as_str().unwrap().to_owned();
        let integration = team_integration(&app.as_key(&team.owner_key)).await;

        for (who, key) in [("member", &member_key), ("service account", &sa_key)] {
            let caller = app.as_key(key);
            for (method, path, body, admin_only) in routes(&sa, &key_id, &member_own_key, &integration) {
                let reply = caller.send(method.clone(), &path, body).await;
                let own_keys_of_a_service_account = path.starts_with("/v1/me/api-keys") && who == "service account";
                if admin_only || own_keys_of_a_service_account {
                    assert_eq!((reply.status, reply.code()), (403, "role_forbidden"), "{who} {method} {path}");
                } else {
                    assert!(reply.status < 400, "{who} {method} {path}: {}", reply.text);
                }
            }
        }
        let after = app.as_key(&team.owner_key).get(&format!("/v1/service-accounts/{sa}")).await.body;
        // The service account's own calls above legitimately move its lastUsedAt.
        assert_eq!(without_last_used(before), without_last_used(after), "refused requests changed nothing");
        // Admins can manage, like owners.
        let admin = app.as_key(&admin_key);
        assert_eq!(admin.post("/v1/service-accounts", json!({ "name": "Admin Made" })).await.status, 201);
        assert_eq!(admin.get("/v1/audit-events").await.status, 200);
    }

    async fn every_route_takes_bearer_and_basic_and_refuses_neither(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        for scheme in ["bearer", "basic"] {
            let (sa, key_id, _) = app.service_account(&team.owner_key, &format!("Bot {scheme}")).await;
            let spare = app.as_key(&team.owner_key).post("/v1/me/api-keys", json!({})).await;
            let spare_id = spare.body["apiKey"]["id"].as_str().unwrap().to_owned();
            let caller = if scheme == "bearer" { app.as_key(&team.owner_key) } else { app.as_basic(&team.owner_key) };
            let integration = team_integration(&caller).await;
            for (method, path, body, _) in routes(&sa, &key_id, &spare_id, &integration) {
                let anonymous = app.anonymous().send(method.clone(), &path, body.clone()).await;
                assert_eq!(anonymous.status, 401, "{method} {path} without a key");
                let reply = caller.send(method.clone(), &path, body).await;
                assert!((200..300).contains(&reply.status), "{scheme} {method} {path}: {}", reply.text);
            }
        }
    }
}
