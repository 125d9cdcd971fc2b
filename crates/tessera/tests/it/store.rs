//! The storage contract, run against SQLite and PostgreSQL through the same `Store` interface:
//! migrations, the secret fingerprint, lookups, concurrent writers and the audit chain.

use std::time::Duration;

use tessera_domain::api_key::KeyKind;
use tessera_domain::ids::{ApiKeyId, ServiceAccountId};
use tessera_domain::names::ServiceAccountName;
use tessera_domain::secret::ServerSecret;
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::{Clock, SystemClock, Timestamp};
use tessera_server::keys::mint_key;
use tessera_store::service_accounts::NewServiceAccount;
use tessera_store::{KeyOwner, PageRequest, Store, StoreError, StoreOptions};

use crate::harness::{on_both_backends, operator_context};

fn new_account(name: &str) -> NewServiceAccount {
    NewServiceAccount {
        id: ServiceAccountId::generate(),
        name: ServiceAccountName::parse(name).unwrap(),
        description: None,
    }
}

on_both_backends! {
    async fn migrations_are_idempotent_and_the_secret_must_match(app: TestApp) {
        let options = StoreOptions { url: app.db.url.clone(), max_connections: 2 };
        let same = ServerSecret::from_hex(&app.secret_hex).unwrap();
        let reopened = Store::open(&options, &same).await.expect("reopen with the same secret");
        reopened.close().await;
        assert_eq!(app.count("_sqlx_migrations").await, 6);
        let other = Store::open(&options, &ServerSecret::generate()).await;
        assert!(matches!(other, Err(StoreError::SecretMismatch)), "{other:?}");
    }

    async fn lookup_finds_a_key_by_digest_with_its_owner(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (plain, key) = mint_key(&app.state.hasher, KeyKind::ServiceAccount, "Bot", None);
        let account = new_account("Bot");
        let created = app.store.create_service_account(&team.id, &account, &key, &operator_context()).await.unwrap();
        let found = app.store.lookup_key(&app.state.hasher.digest_plain(&plain)).await.unwrap().expect("found");
        assert_eq!(found.key_id, created.keys[0].id);
        assert_eq!(found.team_id, team.id);
        assert_eq!(found.team_plan, Plan::Enterprise);
        assert_eq!(found.owner, KeyOwner::ServiceAccount(account.id.clone()));
        assert!(found.revoked_at.is_none() && found.owner_archived_at.is_none() && found.user.is_none());
        let (stranger, _) = mint_key(&app.state.hasher, KeyKind::ServiceAccount, "x", None);
        assert!(app.store.lookup_key(&app.state.hasher.digest_plain(&stranger)).await.unwrap().is_none());
    }

    async fn concurrent_writers_keep_one_unbroken_chain(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let mut tasks = Vec::new();
        for idx in 0..16 {
            let store = app.store.clone();
            let hasher = app.state.hasher.clone();
            let team_id = team.id.clone();
            tasks.push(tokio::spawn(async move {
                let (_, key) = mint_key(&hasher, KeyKind::ServiceAccount, "k", None);
                store.create_service_account(&team_id, &new_account(&format!("Bot {idx}")), &key, &operator_context()).await
            }));
        }
        for task in tasks {
            task.await.unwrap().expect("every concurrent create succeeds");
        }
        let report = app.store.verify_audit_chain(&team.id).await.unwrap();
        assert_eq!(report.problem, None);
        // team.create, user.add, api_key.create, then two events per account.
        assert_eq!(report.events_checked, 3 + 16 * 2);
    }

    async fn concurrent_creates_of_one_name_make_one_account(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = app.store.clone();
            let hasher = app.state.hasher.clone();
            let team_id = team.id.clone();
            tasks.push(tokio::spawn(async move {
                let (_, key) = mint_key(&hasher, KeyKind::ServiceAccount, "k", None);
                store.create_service_account(&team_id, &new_account("Same Name"), &key, &operator_context()).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::NameTaken(_)) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(created, 1);
        assert_eq!(app.count("service_accounts").await, 1);
    }

    async fn last_used_times_never_move_backwards(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let keys = app.store.live_user_keys(&team.id, &team.owner_id, SystemClock.now()).await.unwrap();
        let key_id: ApiKeyId = keys[0].id.clone();
        let later = Timestamp::from_millis(2_000_000_000_000);
        let earlier = Timestamp::from_millis(1_900_000_000_000);
        app.store.record_last_used(&[(key_id.clone(), later)]).await.unwrap();
        app.store.record_last_used(&[(key_id.clone(), earlier)]).await.unwrap();
        let keys = app.store.live_user_keys(&team.id, &team.owner_id, SystemClock.now()).await.unwrap();
        assert_eq!(keys[0].last_used_at, Some(later));
    }

    async fn grace_expiry_is_judged_at_the_given_time(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        let (_, key) = mint_key(&app.state.hasher, KeyKind::ServiceAccount, "Bot", None);
        let account = new_account("Bot");
        let created = app.store.create_service_account(&team.id, &account, &key, &operator_context()).await.unwrap();
        let (_, successor) = mint_key(&app.state.hasher, KeyKind::ServiceAccount, "Bot", None);
        let context = operator_context();
        let rotation = app.store
            .rotate_service_account_key(&team.id, &account.id, &created.keys[0].id, &successor, Some(Duration::from_secs(60)), &context)
            .await
            .unwrap();
        let expires_at = rotation.old_key.expires_at.expect("grace sets an expiry");
        assert_eq!(expires_at, context.at.saturating_add(Duration::from_secs(60)));
        assert!(rotation.old_key.is_live(context.at));
        assert!(!rotation.old_key.is_live(expires_at));
        let at_expiry = app.store.service_account(&team.id, &account.id, expires_at).await.unwrap();
        assert_eq!(at_expiry.keys.len(), 1, "at its expiry the old key is no longer listed");
        // A second rotation of the same key loses.
        let (_, another) = mint_key(&app.state.hasher, KeyKind::ServiceAccount, "Bot", None);
        let again = app.store
            .rotate_service_account_key(&team.id, &account.id, &created.keys[0].id, &another, None, &operator_context())
            .await;
        assert!(matches!(again, Err(StoreError::AlreadyRotated)), "{again:?}");
    }

    async fn users_page_in_creation_order(app: TestApp) {
        let team = app.team("Acme", Plan::Enterprise, None).await;
        for idx in 0..4 {
            app.user(&team, &format!("u{idx}@acme.test"), Role::Member).await;
        }
        let mut emails = Vec::new();
        let mut after = None;
        loop {
            let page = app.store.list_users(&team.id, &PageRequest { after: after.clone(), limit: 2 }).await.unwrap();
            emails.extend(page.items.iter().map(|u| u.email.clone()));
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(emails, ["owner@acme.test", "u0@acme.test", "u1@acme.test", "u2@acme.test", "u3@acme.test"]);
        let bad = app.store.list_users(&team.id, &PageRequest { after: Some("!!".into()), limit: 2 }).await;
        assert!(matches!(bad, Err(StoreError::InvalidCursor)));
    }
}
