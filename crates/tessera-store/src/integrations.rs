//! Repository integrations and the repositories a principal may use.

use sqlx::Row;
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::{IntegrationId, TeamId, UserId};
use tessera_domain::integration::{CloneUrl, IntegrationScope, Provider, RepositoryUrl};
use tessera_domain::time::Timestamp;

use crate::models::{parse_column, ts};
use crate::{Store, StoreError, audit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEntry {
    pub url: RepositoryUrl,
    /// Where workers fetch and push; `None` means `url`.
    pub clone_url: Option<CloneUrl>,
}

impl RepositoryEntry {
    pub fn effective_clone_url(&self) -> &str {
        self.clone_url.as_ref().map_or(self.url.as_str(), CloneUrl::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub id: IntegrationId,
    pub team_id: TeamId,
    pub scope: IntegrationScope,
    /// The user a personal integration belongs to.
    pub owner_user_id: Option<UserId>,
    pub provider: Provider,
    pub name: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub repositories: Vec<RepositoryEntry>,
}

#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub id: IntegrationId,
    pub scope: IntegrationScope,
    pub owner_user_id: Option<UserId>,
    pub provider: Provider,
    pub name: String,
    pub repositories: Vec<RepositoryEntry>,
}

/// A repository a principal may launch on, and the integration that authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableRepository {
    pub repository: RepositoryEntry,
    pub integration_id: IntegrationId,
    pub scope: IntegrationScope,
}

const INTEGRATION_COLUMNS: &str =
    "id, team_id, scope, owner_user_id, provider, name, created_by, created_at, updated_at";

fn integration_from_row(row: &sqlx::any::AnyRow) -> Result<Integration, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let scope: String = row.try_get("scope")?;
    let owner: Option<String> = row.try_get("owner_user_id")?;
    let provider: String = row.try_get("provider")?;
    Ok(Integration {
        id: parse_column(&id, "integrations.id")?,
        team_id: parse_column(&team_id, "integrations.team_id")?,
        scope: parse_column(&scope, "integrations.scope")?,
        owner_user_id: owner.map(|o| parse_column(&o, "integrations.owner_user_id")).transpose()?,
        provider: parse_column(&provider, "integrations.provider")?,
        name: row.try_get("name")?,
        created_by: row.try_get("created_by")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        repositories: Vec::new(),
    })
}

fn entry_from_row(row: &sqlx::any::AnyRow) -> Result<RepositoryEntry, StoreError> {
    let url: String = row.try_get("url")?;
    let clone_url: Option<String> = row.try_get("clone_url")?;
    Ok(RepositoryEntry {
        url: RepositoryUrl::parse(&url).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        clone_url: clone_url
            .map(|c| CloneUrl::parse(&c).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?,
    })
}

fn repositories_json(repositories: &[RepositoryEntry]) -> serde_json::Value {
    repositories
        .iter()
        .map(|r| serde_json::json!({ "url": r.url.as_str(), "cloneUrl": r.clone_url.as_ref().map(CloneUrl::as_str) }))
        .collect()
}

async fn insert_repositories(
    conn: &mut sqlx::AnyConnection,
    id: &IntegrationId,
    repositories: &[RepositoryEntry],
) -> Result<(), StoreError> {
    for (position, entry) in repositories.iter().enumerate() {
        sqlx::query(
            "insert into integration_repositories (integration_id, url, clone_url, position) values ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(entry.url.as_str())
        .bind(entry.clone_url.as_ref().map(CloneUrl::as_str))
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn create_integration(
        &self,
        team_id: &TeamId,
        integration: &NewIntegration,
        context: &AuditContext,
    ) -> Result<Integration, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = context.at.as_millis();
        let created_by = context.actor.id().unwrap_or(context.actor.kind()).to_owned();
        sqlx::query(
            "insert into integrations (id, team_id, scope, owner_user_id, provider, name, created_by, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(integration.id.as_str())
        .bind(team_id.as_str())
        .bind(integration.scope.as_str())
        .bind(integration.owner_user_id.as_ref().map(UserId::as_str))
        .bind(integration.provider.as_str())
        .bind(integration.name.as_str())
        .bind(created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_repositories(&mut tx, &integration.id, &integration.repositories).await?;
        let change = AuditChange {
            action: AuditAction::IntegrationCreate,
            target_type: "integration",
            target_id: integration.id.to_string(),
            details: serde_json::json!({
                "scope": integration.scope.as_str(),
                "provider": integration.provider.as_str(),
                "name": integration.name,
                "ownerUserId": integration.owner_user_id.as_ref().map(UserId::as_str),
                "repositories": repositories_json(&integration.repositories),
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        self.integration(team_id, &integration.id).await
    }

    /// One integration of the team, whoever it belongs to; callers decide visibility.
    pub async fn integration(&self, team_id: &TeamId, id: &IntegrationId) -> Result<Integration, StoreError> {
        let row = sqlx::query(&format!(
            "select {INTEGRATION_COLUMNS} from integrations where team_id = $1 and id = $2"
        ))
        .bind(team_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut integration = integration_from_row(&row)?;
        let rows = sqlx::query(
            "select url, clone_url from integration_repositories where integration_id = $1 order by position",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        integration.repositories = rows.iter().map(entry_from_row).collect::<Result<_, _>>()?;
        Ok(integration)
    }

    /// The team's integrations, plus `viewer`'s personal ones, oldest first.
    pub async fn list_integrations(
        &self,
        team_id: &TeamId,
        viewer: Option<&UserId>,
    ) -> Result<Vec<Integration>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {INTEGRATION_COLUMNS} from integrations where team_id = $1 \
             and (scope = 'team' or owner_user_id = $2) order by created_at, id"
        ))
        .bind(team_id.as_str())
        .bind(viewer.map_or("", UserId::as_str))
        .fetch_all(&self.pool)
        .await?;
        let mut integrations = Vec::with_capacity(rows.len());
        for row in &rows {
            let listed = integration_from_row(row)?;
            integrations.push(self.integration(team_id, &listed.id).await?);
        }
        Ok(integrations)
    }

    /// Renames an integration and/or replaces its repository list.
    pub async fn update_integration(
        &self,
        team_id: &TeamId,
        id: &IntegrationId,
        name: Option<&str>,
        repositories: Option<&[RepositoryEntry]>,
        context: &AuditContext,
    ) -> Result<Integration, StoreError> {
        let before = self.integration(team_id, id).await?;
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("update integrations set name = $1, updated_at = $2 where id = $3 and team_id = $4")
                .bind(name.unwrap_or(&before.name))
                .bind(context.at.as_millis())
                .bind(id.as_str())
                .bind(team_id.as_str())
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(repositories) = repositories {
            sqlx::query("delete from integration_repositories where integration_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            insert_repositories(&mut tx, id, repositories).await?;
        }
        let change = AuditChange {
            action: AuditAction::IntegrationUpdate,
            target_type: "integration",
            target_id: id.to_string(),
            details: serde_json::json!({
                "from": { "name": before.name, "repositories": repositories_json(&before.repositories) },
                "to": {
                    "name": name.unwrap_or(&before.name),
                    "repositories": repositories_json(repositories.unwrap_or(&before.repositories)),
                },
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        self.integration(team_id, id).await
    }

    pub async fn delete_integration(
        &self,
        team_id: &TeamId,
        id: &IntegrationId,
        context: &AuditContext,
    ) -> Result<(), StoreError> {
        let before = self.integration(team_id, id).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query("delete from integration_repositories where integration_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from integrations where id = $1 and team_id = $2")
            .bind(id.as_str())
            .bind(team_id.as_str())
            .execute(&mut *tx)
            .await?;
        let change = AuditChange {
            action: AuditAction::IntegrationDelete,
            target_type: "integration",
            target_id: id.to_string(),
            details: serde_json::json!({
                "scope": before.scope.as_str(),
                "name": before.name,
                "repositories": repositories_json(&before.repositories),
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether some user's personal integration in the team authorizes `url`.
    pub async fn repository_in_personal_integration(
        &self,
        team_id: &TeamId,
        url: &RepositoryUrl,
    ) -> Result<bool, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "select count(*) from integration_repositories r join integrations i on i.id = r.integration_id \
             where i.team_id = $1 and i.scope = 'personal' and r.url = $2",
        )
        .bind(team_id.as_str())
        .bind(url.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(count > 0)
    }

    /// Repositories `viewer` may launch on: the team's integrations, plus the viewer's personal
    /// ones when the viewer is a user (`None` for a service account). A repository authorized by
    /// both is reported once, through the team integration.
    pub async fn usable_repositories(
        &self,
        team_id: &TeamId,
        viewer: Option<&UserId>,
    ) -> Result<Vec<UsableRepository>, StoreError> {
        let rows = sqlx::query(
            "select r.url, r.clone_url, i.id, i.scope from integration_repositories r \
             join integrations i on i.id = r.integration_id \
             where i.team_id = $1 and (i.scope = 'team' or i.owner_user_id = $2) \
             order by case when i.scope = 'team' then 0 else 1 end, i.created_at, r.position",
        )
        .bind(team_id.as_str())
        .bind(viewer.map_or("", UserId::as_str))
        .fetch_all(&self.pool)
        .await?;
        let mut usable: Vec<UsableRepository> = Vec::with_capacity(rows.len());
        for row in &rows {
            let repository = entry_from_row(row)?;
            if usable.iter().any(|u| u.repository.url == repository.url) {
                continue;
            }
            let id: String = row.try_get("id")?;
            let scope: String = row.try_get("scope")?;
            usable.push(UsableRepository {
                repository,
                integration_id: parse_column(&id, "integrations.id")?,
                scope: parse_column(&scope, "integrations.scope")?,
            });
        }
        Ok(usable)
    }
}
