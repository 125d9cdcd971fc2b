//! Client commands: service accounts, whoami, audit. Each calls the API and prints the answer.

use serde_json::{Value, json};

use crate::cli::{AuditCommand, ClientArgs, IntegrationsCommand, KeysCommand, ServiceAccountsCommand};
use crate::client::ApiClient;
use crate::exit::CliError;
use crate::output::{Output, table};
use crate::settings::{ClientSettings, FileSettings, parse_duration};

fn client(args: &ClientArgs, file: &FileSettings) -> anyhow::Result<ApiClient> {
    ApiClient::new(ClientSettings::resolve(args, file)?)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_created_key(out: &Output, response: &Value, heading: String) {
    out.key_warning();
    out.print(response, || {
        let key = &response["apiKey"];
        format!("{heading}\nKey id: {}\nAPI key (shown once):\n{}\n", text(&key["id"]), text(&key["key"]))
    });
}

fn account_summary(account: &Value) -> String {
    let mut out =
        format!("{} {} ({})\n", text(&account["id"]), text(&account["name"]), text(&account["status"]));
    if let Some(description) = account["description"].as_str() {
        out.push_str(&format!("  {description}\n"));
    }
    out.push_str(&format!(
        "  created {}  last used {}\n",
        text(&account["createdAt"]),
        text(&account["lastUsedAt"])
    ));
    let keys: Vec<Vec<String>> = account["apiKeys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    vec![
                        text(&k["id"]),
                        text(&k["maskedKey"]),
                        text(&k["createdAt"]),
                        text(&k["lastUsedAt"]),
                        text(&k["expiresAt"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !keys.is_empty() {
        for line in table(&["KEY ID", "KEY", "CREATED", "LAST USED", "EXPIRES"], &keys).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

pub async fn service_accounts(
    command: &ServiceAccountsCommand,
    file: &FileSettings,
    out: &Output,
) -> anyhow::Result<()> {
    match command {
        ServiceAccountsCommand::Create { client: args, name, description } => {
            let api = client(args, file)?;
            let response = api
                .post("/v1/service-accounts", Some(json!({ "name": name, "description": description })))
                .await?;
            let account = &response["serviceAccount"];
            let heading =
                format!("Created service account {:?} ({}).", text(&account["name"]), text(&account["id"]));
            print_created_key(out, &response, heading);
        }
        ServiceAccountsCommand::List { client: args, archived } => {
            let api = client(args, file)?;
            let mut accounts = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec![("archived", archived.to_string()), ("limit", "100".to_owned())];
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.clone()));
                }
                let page = api.get("/v1/service-accounts", &query).await?;
                accounts.extend(page["serviceAccounts"].as_array().cloned().unwrap_or_default());
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let response = json!({ "serviceAccounts": accounts });
            out.print(&response, || {
                if accounts.is_empty() {
                    return "No service accounts.\n".to_owned();
                }
                accounts.iter().map(account_summary).collect::<Vec<_>>().join("\n")
            });
        }
        ServiceAccountsCommand::Get { client: args, id } => {
            let api = client(args, file)?;
            let account = api.get(&format!("/v1/service-accounts/{}", segment(id)?), &[]).await?;
            out.print(&account, || account_summary(&account));
        }
        ServiceAccountsCommand::Update { client: args, id, name, description } => {
            if name.is_none() && description.is_none() {
                return Err(CliError::Usage("give --name and/or --description".into()).into());
            }
            let api = client(args, file)?;
            let mut body = serde_json::Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            let account =
                api.patch(&format!("/v1/service-accounts/{}", segment(id)?), Value::Object(body)).await?;
            out.print(&account, || account_summary(&account));
        }
        ServiceAccountsCommand::Rotate { client: args, id, key_id, grace } => {
            let api = client(args, file)?;
            let id = segment(id)?;
            let key_id = match key_id {
                Some(key_id) => segment(key_id)?.to_owned(),
                None => only_key(&api.get(&format!("/v1/service-accounts/{id}"), &[]).await?)?,
            };
            let grace_seconds = grace.as_deref().map(|raw| parse_duration(raw, "--grace")).transpose()?;
            let body = grace_seconds.map(|g| json!({ "gracePeriodSeconds": g.as_secs() }));
            let response =
                api.post(&format!("/v1/service-accounts/{id}/api-keys/{key_id}/rotate"), body).await?;
            let previous = &response["previousKey"];
            let heading = match previous["validUntil"].as_str() {
                Some(until) => format!("Rotated key {key_id}. The old key keeps working until {until}."),
                None => format!("Rotated key {key_id}. The old key no longer works."),
            };
            print_created_key(out, &response, heading);
        }
        ServiceAccountsCommand::Keys(KeysCommand::Add { client: args, id, name, worker }) => {
            let api = client(args, file)?;
            let permissions: Vec<&str> = if *worker { vec!["worker"] } else { Vec::new() };
            let body = Some(json!({ "name": name, "permissions": permissions }));
            let response = api.post(&format!("/v1/service-accounts/{}/api-keys", segment(id)?), body).await?;
            print_created_key(out, &response, format!("Added a key to {id}."));
        }
        ServiceAccountsCommand::Keys(KeysCommand::Revoke { client: args, id, key_id }) => {
            let api = client(args, file)?;
            let response = api
                .delete(&format!("/v1/service-accounts/{}/api-keys/{}", segment(id)?, segment(key_id)?))
                .await?;
            out.print(&response, || {
                format!("Revoked key {} at {}.\n", text(&response["id"]), text(&response["revokedAt"]))
            });
        }
        ServiceAccountsCommand::Archive { client: args, id } => {
            let api = client(args, file)?;
            let response = api.post(&format!("/v1/service-accounts/{}/archive", segment(id)?), None).await?;
            out.print(&response, || {
                let n_revoked = response["revokedKeyIds"].as_array().map_or(0, Vec::len);
                format!(
                    "Archived {} ({}); revoked {n_revoked} key(s). Its record and audit history are kept.\n",
                    text(&response["serviceAccount"]["name"]),
                    text(&response["serviceAccount"]["id"])
                )
            });
        }
    }
    Ok(())
}

/// Ids go into URL paths; refuse anything that could change the path.
fn segment(raw: &str) -> anyhow::Result<&str> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(CliError::Usage(format!("{raw:?} is not an id")).into());
    }
    Ok(raw)
}

fn only_key(account: &Value) -> anyhow::Result<String> {
    let keys = account["apiKeys"].as_array().cloned().unwrap_or_default();
    match keys.as_slice() {
        [key] => Ok(text(&key["id"])),
        [] => {
            Err(CliError::Usage("the account has no live key to rotate; add one with `keys add`".into())
                .into())
        }
        _ => {
            let ids: Vec<String> =
                keys.iter().map(|k| format!("{} ({})", text(&k["id"]), text(&k["maskedKey"]))).collect();
            Err(CliError::Usage(format!(
                "the account has several keys; pick one with --key: {}",
                ids.join(", ")
            ))
            .into())
        }
    }
}

pub async fn whoami(args: &ClientArgs, file: &FileSettings, out: &Output) -> anyhow::Result<()> {
    let api = client(args, file)?;
    let me = api.get("/v1/me", &[]).await?;
    let team = api.get("/v1/team", &[]).await?;
    let response = json!({ "me": me, "team": team });
    out.print(&response, || {
        let who = match me["serviceAccountId"].as_str() {
            Some(id) => format!("service account {id}"),
            None => format!("user {} (userId {})", text(&me["userEmail"]), text(&me["userId"])),
        };
        format!(
            "Key {:?} of {who}\nTeam {:?} ({}) on the {} plan\n",
            text(&me["apiKeyName"]),
            text(&team["name"]),
            text(&team["id"]),
            text(&team["plan"])
        )
    });
    Ok(())
}

pub async fn audit(command: &AuditCommand, file: &FileSettings, out: &Output) -> anyhow::Result<()> {
    match command {
        AuditCommand::List { client: args, actor, action, target, limit } => {
            let api = client(args, file)?;
            let mut events: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            while events.len() < *limit as usize {
                let page_size = (*limit as usize - events.len()).min(100);
                let mut query = vec![("limit", page_size.to_string())];
                for (name, value) in [("actor", actor), ("action", action), ("targetId", target)] {
                    if let Some(value) = value {
                        query.push((name, value.clone()));
                    }
                }
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor.clone()));
                }
                let page = api.get("/v1/audit-events", &query).await?;
                events.extend(page["events"].as_array().cloned().unwrap_or_default());
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let response = json!({ "events": events });
            out.print(&response, || {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            text(&e["occurredAt"]),
                            text(&e["action"]),
                            format!("{}:{}", text(&e["actor"]["type"]), text(&e["actor"]["id"])),
                            text(&e["target"]["id"]),
                            text(&e["clientIp"]),
                        ]
                    })
                    .collect();
                table(&["TIME", "ACTION", "ACTOR", "TARGET", "CLIENT IP"], &rows)
            });
        }
        AuditCommand::Verify { client: args } => {
            let api = client(args, file)?;
            let report = api.get("/v1/audit-events/verify", &[]).await?;
            out.print(&report, || match report["valid"].as_bool() {
                Some(true) => {
                    format!("Audit chain intact: {} events verified.\n", text(&report["eventsChecked"]))
                }
                _ => format!(
                    "Audit chain BROKEN at event #{} ({}): {}\n",
                    text(&report["problem"]["sequence"]),
                    text(&report["problem"]["eventId"]),
                    text(&report["problem"]["kind"])
                ),
            });
            if report["valid"].as_bool() != Some(true) {
                return Err(CliError::AuditChainBroken.into());
            }
        }
    }
    Ok(())
}

pub async fn integrations(
    command: &IntegrationsCommand,
    file: &FileSettings,
    out: &Output,
) -> anyhow::Result<()> {
    match command {
        IntegrationsCommand::AddGit { client: args, scope, name, repos } => {
            let repositories: Vec<Value> = repos
                .iter()
                .map(|spec| match spec.split_once('=') {
                    Some((url, clone_url)) => json!({ "url": url, "cloneUrl": clone_url }),
                    None => json!({ "url": spec }),
                })
                .collect();
            let api = client(args, file)?;
            let body =
                json!({ "provider": "git", "scope": scope, "name": name, "repositories": repositories });
            let response = api.post("/v1/integrations", Some(body)).await?;
            out.print(&response, || {
                let integration = &response["integration"];
                format!(
                    "Created {} integration {:?} ({}) with {} repositories.\n",
                    text(&integration["scope"]),
                    text(&integration["name"]),
                    text(&integration["id"]),
                    integration["repositories"].as_array().map_or(0, Vec::len)
                )
            });
        }
        IntegrationsCommand::List { client: args } => {
            let api = client(args, file)?;
            let response = api.get("/v1/integrations", &[]).await?;
            out.print(&response, || {
                let mut rows = Vec::new();
                for integration in response["integrations"].as_array().cloned().unwrap_or_default() {
                    for repository in integration["repositories"].as_array().cloned().unwrap_or_default() {
                        rows.push(vec![
                            text(&integration["id"]),
                            text(&integration["scope"]),
                            text(&integration["name"]),
                            text(&repository["url"]),
                            text(&repository["cloneUrl"]),
                        ]);
                    }
                }
                if rows.is_empty() {
                    return "No integrations.\n".to_owned();
                }
                table(&["ID", "SCOPE", "NAME", "REPOSITORY", "CLONE URL"], &rows)
            });
        }
        IntegrationsCommand::Remove { client: args, id } => {
            let api = client(args, file)?;
            let response = api.delete(&format!("/v1/integrations/{}", segment(id)?)).await?;
            out.print(&response, || format!("Removed integration {}.\n", text(&response["id"])));
        }
    }
    Ok(())
}
