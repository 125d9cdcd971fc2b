//! Service accounts: create (with the first key), list with their live keys, rename, archive.

use sqlx::Row;
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::{ApiKeyId, ServiceAccountId, TeamId};
use tessera_domain::names::{Description, ServiceAccountName};
use tessera_domain::time::Timestamp;

use crate::api_keys::{KEY_COLUMNS, insert_key_audited, key_from_row, lock_active_service_account};
use crate::models::{opt_ts, parse_column, ts};
use crate::teams::lock_team;
use crate::users::{decode_keyset, keyset, trim_page};
use crate::{
    KeyOwner, NewApiKey, Page, PageRequest, ServiceAccount, ServiceAccountWithKeys, Store, StoreError, audit,
};

#[derive(Debug, Clone)]
pub struct NewServiceAccount {
    pub id: ServiceAccountId,
    pub name: ServiceAccountName,
    pub description: Option<Description>,
}

/// A partial update; `None` leaves a field as it is. `description: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountUpdate {
    pub name: Option<ServiceAccountName>,
    pub description: Option<Option<Description>>,
}

const ACCOUNT_COLUMNS: &str =
    "id, team_id, name, description, created_by, created_at, updated_at, archived_at";

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<ServiceAccount, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    Ok(ServiceAccount {
        id: parse_column(&id, "service_accounts.id")?,
        team_id: parse_column(&team_id, "service_accounts.team_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_by: row.try_get("created_by")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        archived_at: opt_ts(row.try_get("archived_at")?),
    })
}

async fn name_is_taken(
    conn: &mut sqlx::AnyConnection,
    team_id: &TeamId,
    name: &ServiceAccountName,
    except: Option<&ServiceAccountId>,
) -> Result<bool, StoreError> {
    let existing: Option<String> = sqlx::query_scalar(
        "select id from service_accounts where team_id = $1 and lower(name) = lower($2) \
         and archived_at is null",
    )
    .bind(team_id.as_str())
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(existing.is_some_and(|id| Some(id.as_str()) != except.map(ServiceAccountId::as_str)))
}

fn map_name_violation(err: sqlx::Error, name: &ServiceAccountName) -> StoreError {
    let err = StoreError::from(err);
    if err.is_unique_violation() { StoreError::NameTaken(name.to_string()) } else { err }
}

impl Store {
    /// Creates a service account with its first key. Refused unless the team is on the
    /// Enterprise plan. Service accounts take no seat, so the seat limit is not consulted.
    pub async fn create_service_account(
        &self,
        team_id: &TeamId,
        account: &NewServiceAccount,
        first_key: &NewApiKey,
        context: &AuditContext,
    ) -> Result<ServiceAccountWithKeys, StoreError> {
        let mut tx = self.begin_write().await?;
        let team = lock_team(&mut tx, team_id).await?;
        if !team.plan.allows_service_accounts() {
            return Err(StoreError::PlanRequired);
        }
        if name_is_taken(&mut tx, team_id, &account.name, None).await? {
            return Err(StoreError::NameTaken(account.name.to_string()));
        }
        let now = context.at.as_millis();
        let created_by = context.actor.id().unwrap_or(context.actor.kind()).to_owned();
        let row = sqlx::query(&format!(
            "insert into service_accounts (id, team_id, name, description, created_by, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $6) returning {ACCOUNT_COLUMNS}"
        ))
        .bind(account.id.as_str())
        .bind(team_id.as_str())
        .bind(account.name.as_str())
        .bind(account.description.as_ref().map(Description::as_str))
        .bind(created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| map_name_violation(err, &account.name))?;
        let created = account_from_row(&row)?;
        let change = AuditChange {
            action: AuditAction::ServiceAccountCreate,
            target_type: "service_account",
            target_id: account.id.to_string(),
            details: serde_json::json!({
                "name": account.name.as_str(),
                "description": account.description.as_ref().map(Description::as_str),
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        let owner = KeyOwner::ServiceAccount(account.id.clone());
        let key = insert_key_audited(&mut tx, &self.audit_key, team_id, &owner, first_key, context).await?;
        tx.commit().await?;
        Ok(ServiceAccountWithKeys { account: created, keys: vec![key] })
    }

    /// One service account of the team, with its live keys. Archived accounts are found too.
    pub async fn service_account(
        &self,
        team_id: &TeamId,
        id: &ServiceAccountId,
        now: Timestamp,
    ) -> Result<ServiceAccountWithKeys, StoreError> {
        let row = sqlx::query(&format!(
            "select {ACCOUNT_COLUMNS} from service_accounts where team_id = $1 and id = $2"
        ))
        .bind(team_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let account = account_from_row(&row)?;
        let mut with_keys = self.attach_live_keys(vec![account], now).await?;
        with_keys.pop().ok_or(StoreError::NotFound)
    }

    /// The team's service accounts in order of creation, each with its live keys.
    pub async fn list_service_accounts(
        &self,
        team_id: &TeamId,
        include_archived: bool,
        page: &PageRequest,
        now: Timestamp,
    ) -> Result<Page<ServiceAccountWithKeys>, StoreError> {
        let (after_created, after_id) = match &page.after {
            Some(cursor) => decode_keyset(cursor)?,
            None => (i64::MIN, String::new()),
        };
        let archived_clause = if include_archived { "" } else { "and archived_at is null" };
        let rows = sqlx::query(&format!(
            "select {ACCOUNT_COLUMNS} from service_accounts where team_id = $1 {archived_clause} \
             and (created_at > $2 or (created_at = $2 and id > $3)) order by created_at, id limit $4"
        ))
        .bind(team_id.as_str())
        .bind(after_created)
        .bind(after_id)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut accounts = rows.iter().map(account_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor =
            trim_page(&mut accounts, page.limit, |a| keyset(a.created_at.as_millis(), a.id.as_str()));
        let items = self.attach_live_keys(accounts, now).await?;
        Ok(Page { items, next_cursor })
    }

    /// Loads the live keys of many accounts in one query.
    async fn attach_live_keys(
        &self,
        accounts: Vec<ServiceAccount>,
        now: Timestamp,
    ) -> Result<Vec<ServiceAccountWithKeys>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..accounts.len()).map(|idx| format!("${}", idx + 2)).collect();
        let sql = format!(
            "select {KEY_COLUMNS} from api_keys where revoked_at is null \
             and (expires_at is null or expires_at > $1) and service_account_id in ({}) \
             order by created_at, id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(now.as_millis());
        for account in &accounts {
            query = query.bind(account.id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(accounts
            .into_iter()
            .map(|account| {
                let own_keys = keys
                    .iter()
                    .filter(|key| matches!(&key.owner, KeyOwner::ServiceAccount(id) if *id == account.id))
                    .cloned()
                    .collect();
                ServiceAccountWithKeys { account, keys: own_keys }
            })
            .collect())
    }

    /// Renames or re-describes an active service account.
    pub async fn update_service_account(
        &self,
        team_id: &TeamId,
        id: &ServiceAccountId,
        update: &ServiceAccountUpdate,
        context: &AuditContext,
    ) -> Result<ServiceAccountWithKeys, StoreError> {
        let mut tx = self.begin_write().await?;
        lock_active_service_account(&mut tx, team_id, id, context.at).await?;
        let before = sqlx::query(&format!("select {ACCOUNT_COLUMNS} from service_accounts where id = $1"))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let before = account_from_row(&before)?;
        if let Some(name) = &update.name
            && name_is_taken(&mut tx, team_id, name, Some(id)).await?
        {
            return Err(StoreError::NameTaken(name.to_string()));
        }
        let new_name = update.name.as_ref().map_or(before.name.clone(), |n| n.as_str().to_owned());
        let new_description = match &update.description {
            Some(description) => description.as_ref().map(|d| d.as_str().to_owned()),
            None => before.description.clone(),
        };
        let row = sqlx::query(&format!(
            "update service_accounts set name = $1, description = $2, updated_at = $3 where id = $4 \
             returning {ACCOUNT_COLUMNS}"
        ))
        .bind(new_name.as_str())
        .bind(new_description.as_deref())
        .bind(context.at.as_millis())
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| match &update.name {
            Some(name) => map_name_violation(err, name),
            None => StoreError::from(err),
        })?;
        let after = account_from_row(&row)?;
        if before.name != after.name || before.description != after.description {
            let change = AuditChange {
                action: AuditAction::ServiceAccountUpdate,
                target_type: "service_account",
                target_id: id.to_string(),
                details: serde_json::json!({
                    "from": { "name": before.name, "description": before.description },
                    "to": { "name": after.name, "description": after.description },
                }),
            };
            audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        }
        tx.commit().await?;
        self.service_account(team_id, id, context.at).await
    }

    /// Archives a service account and revokes every key it has, in one transaction. The
    /// account and its history stay. Archiving an archived account changes nothing.
    pub async fn archive_service_account(
        &self,
        team_id: &TeamId,
        id: &ServiceAccountId,
        context: &AuditContext,
    ) -> Result<(ServiceAccountWithKeys, Vec<ApiKeyId>), StoreError> {
        let now = context.at.as_millis();
        let mut tx = self.begin_write().await?;
        match lock_active_service_account(&mut tx, team_id, id, context.at).await {
            Ok(()) => {}
            Err(StoreError::ServiceAccountArchived) => {
                drop(tx);
                return Ok((self.service_account(team_id, id, context.at).await?, Vec::new()));
            }
            Err(err) => return Err(err),
        }
        let revoked: Vec<String> = sqlx::query_scalar(
            "update api_keys set revoked_at = $1, revoked_reason = 'archived' \
             where service_account_id = $2 and revoked_at is null returning id",
        )
        .bind(now)
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("update service_accounts set archived_at = $1, updated_at = $1 where id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let revoked_ids = revoked
            .iter()
            .map(|raw| parse_column(raw, "api_keys.id"))
            .collect::<Result<Vec<ApiKeyId>, _>>()?;
        let change = AuditChange {
            action: AuditAction::ServiceAccountArchive,
            target_type: "service_account",
            target_id: id.to_string(),
            details: serde_json::json!({ "revokedKeyIds": revoked }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok((self.service_account(team_id, id, context.at).await?, revoked_ids))
    }
}
