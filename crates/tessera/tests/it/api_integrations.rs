//! Repository integrations: who may manage them, who may use them (service accounts only the
//! team's), validation, and the v0/v1 repository listings.

use serde_json::{Value, json};
use tessera_domain::team::{Plan, Role};

use crate::harness::{Caller, on_both_backends};

fn git(scope: &str, name: &str, repos: &[(&str, Option<&str>)]) -> Value {
    let repositories: Vec<Value> =
        repos.iter().map(|(url, clone)| json!({ "url": url, "cloneUrl": clone })).collect();
    json!({ "provider": "git", "scope": scope, "name": name, "repositories": repositories })
}

async fn repository_urls(caller: &Caller) -> Vec<String> {
    let v1 = caller.get("/v1/repositories").await;
    assert_eq!(v1.status, 200, "{}", v1.text);
    v1.body["items"].as_array().unwrap().iter().map(|r| r["url"].as_str().unwrap().to_owned()).collect()
}

on_both_backends! {
    async fn service_accounts_use_only_team_integrations(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
        let owner = app.as_key(&team.owner_key);
        let member = app.as_key(&member_key);
        let sa = app.as_key(&sa_key);

        // Only a personal integration: the service account has nothing to launch on.
        let personal = owner
            .post("/v1/integrations", git("personal", "Mine", &[("https://github.com/acme/private", None)]))
            .await;
        assert_eq!(personal.status, 201, "{}", personal.text);
        assert_eq!(personal.body["integration"]["ownerUserId"], team.owner_id.as_str());
        assert_eq!(repository_urls(&sa).await, Vec::<String>::new());
        assert_eq!(repository_urls(&owner).await, ["https://github.com/acme/private"]);
        assert_eq!(repository_urls(&member).await, Vec::<String>::new(), "another user's personal integration");

        // A team-level integration: everyone, service accounts included.
        let team_level = owner
            .post("/v1/integrations", git("team", "Acme repos", &[
                ("https://github.com/acme/widgets.git", Some("file:///srv/git/widgets.git")),
                ("https://github.com/acme/gadgets", None),
            ]))
            .await;
        assert_eq!(team_level.status, 201, "{}", team_level.text);
        let repos = &team_level.body["integration"]["repositories"];
        assert_eq!(repos[0], json!({ "url": "https://github.com/acme/widgets", "cloneUrl": "file:///srv/git/widgets.git" }));
        assert_eq!(repos[1], json!({ "url": "https://github.com/acme/gadgets", "cloneUrl": null }));
        assert_eq!(repository_urls(&sa).await, ["https://github.com/acme/widgets", "https://github.com/acme/gadgets"]);
        assert_eq!(
            repository_urls(&owner).await,
            ["https://github.com/acme/widgets", "https://github.com/acme/gadgets", "https://github.com/acme/private"]
        );
        let v0 = sa.get("/v0/repositories").await;
        assert_eq!(v0.body["repositories"][0], json!({ "owner": "acme", "name": "widgets", "repository": "https://github.com/acme/widgets" }));
    }

    async fn who_may_manage_integrations(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, _, sa_key) = app.service_account(&team.owner_key, "Bot").await;
        let (_, member_key) = app.user(&team, "dev@acme.test", Role::Member).await;
        let (_, admin_key) = app.user(&team, "admin@acme.test", Role::Admin).await;
        let (owner, member, admin, sa) =
            (app.as_key(&team.owner_key), app.as_key(&member_key), app.as_key(&admin_key), app.as_key(&sa_key));
        let body = git("team", "Repos", &[("https://git.acme.test/acme/widgets", None)]);
        for (who, caller) in [("member", &member), ("service account", &sa)] {
            let refused = caller.post("/v1/integrations", body.clone()).await;
            assert_eq!((refused.status, refused.code()), (403, "role_forbidden"), "{who}");
        }
        assert_eq!(sa.post("/v1/integrations", git("personal", "x", &[("https://h/o/r", None)])).await.status, 403);
        let created = admin.post("/v1/integrations", body).await;
        assert_eq!(created.status, 201);
        let id = created.body["integration"]["id"].as_str().unwrap().to_owned();
        // Everyone in the team sees a team-level integration; only admins change it.
        for caller in [&member, &sa] {
            assert_eq!(caller.get(&format!("/v1/integrations/{id}")).await.status, 200);
            assert_eq!(caller.patch(&format!("/v1/integrations/{id}"), json!({ "name": "x" })).await.status, 403);
            assert_eq!(caller.delete(&format!("/v1/integrations/{id}")).await.status, 403);
        }
        let renamed = owner
            .patch(&format!("/v1/integrations/{id}"), json!({ "name": "Renamed", "repositories": [{ "url": "https://git.acme.test/acme/gadgets" }] }))
            .await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        assert_eq!(renamed.body["integration"]["name"], "Renamed");
        assert_eq!(renamed.body["integration"]["repositories"].as_array().unwrap().len(), 1);
        // A member's personal integration is theirs alone; to admins it does not exist.
        let mine = member.post("/v1/integrations", git("personal", "Mine", &[("https://git.acme.test/dev/sandbox", None)])).await;
        assert_eq!(mine.status, 201);
        let mine_id = mine.body["integration"]["id"].as_str().unwrap().to_owned();
        assert_eq!(owner.get(&format!("/v1/integrations/{mine_id}")).await.status, 404);
        assert_eq!(owner.delete(&format!("/v1/integrations/{mine_id}")).await.status, 404);
        let listed = owner.get("/v1/integrations").await;
        assert!(!listed.text.contains(&mine_id));
        assert_eq!(member.delete(&format!("/v1/integrations/{mine_id}")).await.status, 200);
        assert_eq!(member.get(&format!("/v1/integrations/{mine_id}")).await.status, 404);
        assert_eq!(owner.delete(&format!("/v1/integrations/{id}")).await.status, 200);
        assert_eq!(repository_urls(&sa).await, Vec::<String>::new());
        let events = owner.get("/v1/audit-events?limit=100").await;
        for action in ["integration.create", "integration.update", "integration.delete"] {
            assert!(events.text.contains(action), "{action} not audited");
        }
    }

    async fn integration_input_is_validated(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let owner = app.as_key(&team.owner_key);
        let before = app.count("integrations").await;
        for (what, body) in [
            ("unknown provider", json!({ "provider": "gitlab", "scope": "team", "name": "x", "repositories": [{ "url": "https://h/o/r" }] })),
            ("unknown scope", json!({ "provider": "git", "scope": "org", "name": "x", "repositories": [{ "url": "https://h/o/r" }] })),
            ("no repositories", git("team", "x", &[])),
            ("not a url", git("team", "x", &[("acme/widgets", None)])),
            ("credentials in url", git("team", "x", &[("https://u:ghp_x@github.com/acme/widgets", None)])),
            ("credentials in clone url", git("team", "x", &[("https://github.com/acme/w", Some("https://u:tok@github.com/acme/w"))])),
            ("listed twice", git("team", "x", &[("https://github.com/acme/w", None), ("https://GITHUB.com/acme/w.git", None)])),
            ("empty name", git("team", " ", &[("https://github.com/acme/w", None)])),
            ("unknown field", json!({ "provider": "git", "scope": "team", "name": "x", "repositories": [{ "url": "https://h/o/r", "token": "t" }] })),
        ] {
            let reply = owner.post("/v1/integrations", body).await;
            assert_eq!((reply.status, reply.code()), (400, "validation_error"), "{what}: {}", reply.text);
        }
        assert_eq!(app.count("integrations").await, before);
        assert_eq!(owner.get("/v1/integrations/int_123").await.status, 404);
    }

    async fn another_team_never_sees_an_integration(app: TestApp) {
        let a = app.team("Team A", Plan::Enterprise, None).await;
        let b = app.team("Team B", Plan::Enterprise, None).await;
        let created = app.as_key(&a.owner_key)
            .post("/v1/integrations", git("team", "A repos", &[("https://github.com/a/secret", None)]))
            .await;
        let id = created.body["integration"]["id"].as_str().unwrap().to_owned();
        let b_owner = app.as_key(&b.owner_key);
        assert_eq!(b_owner.get(&format!("/v1/integrations/{id}")).await.status, 404);
        assert_eq!(b_owner.patch(&format!("/v1/integrations/{id}"), json!({ "name": "x" })).await.status, 404);
        assert_eq!(b_owner.delete(&format!("/v1/integrations/{id}")).await.status, 404);
        assert!(!b_owner.get("/v1/integrations").await.text.contains(&id));
        assert_eq!(repository_urls(&b_owner).await, Vec::<String>::new());
    }
}
