//! API keys: insert, look up by digest, rotate, revoke, and the batched `last_used_at` write.
//!
//! **Invariant:** the table holds digests only. A key can authenticate ("is live") while
//! `revoked_at` is null and `expires_at` is null or in the future; every live key appears in
//! its owner's listing and can be revoked.

use std::time::Duration;

use sqlx::{AnyConnection, Row};
use tessera_domain::api_key::KeyDigest;
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::{ApiKeyId, ServiceAccountId, TeamId, UserId};
use tessera_domain::time::Timestamp;

use crate::models::{opt_ts, parse_column, ts};
use crate::{ApiKeyRecord, KeyLookup, KeyOwner, KeyUser, NewApiKey, Store, StoreError, audit};

/// The most keys a service account (or a user) may hold at once.
pub const MAX_LIVE_KEYS: i64 = 10;

pub(crate) const KEY_COLUMNS: &str = "id, team_id, service_account_id, user_id, name, masked, created_by, \
     created_at, expires_at, revoked_at, last_used_at, replaced_by, rate_limit_per_minute, permissions";

pub(crate) fn key_from_row(row: &sqlx::any::AnyRow) -> Result<ApiKeyRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let service_account_id: Option<String> = row.try_get("service_account_id")?;
    let user_id: Option<String> = row.try_get("user_id")?;
    let replaced_by: Option<String> = row.try_get("replaced_by")?;
    let owner = owner_from(service_account_id, user_id, &id)?;
    Ok(ApiKeyRecord {
        id: parse_column(&id, "api_keys.id")?,
        team_id: parse_column(&team_id, "api_keys.team_id")?,
        owner,
        name: row.try_get("name")?,
        masked: row.try_get("masked")?,
        created_by: row.try_get("created_by")?,
        created_at: ts(row.try_get("created_at")?),
        expires_at: opt_ts(row.try_get("expires_at")?),
        revoked_at: opt_ts(row.try_get("revoked_at")?),
        last_used_at: opt_ts(row.try_get("last_used_at")?),
        replaced_by: replaced_by.map(|id| parse_column(&id, "api_keys.replaced_by")).transpose()?,
        rate_limit_per_minute: row.try_get("rate_limit_per_minute")?,
        worker: row.try_get::<String, _>("permissions")?.split(' ').any(|p| p == "worker"),
    })
}

/// The owner from the two owner columns; the schema's check constraint makes exactly one set.
fn owner_from(
    service_account_id: Option<String>,
    user_id: Option<String>,
    key_id: &str,
) -> Result<KeyOwner, StoreError> {
    match (service_account_id, user_id) {
        (Some(sa), None) => Ok(KeyOwner::ServiceAccount(parse_column(&sa, "api_keys.service_account_id")?)),
        (None, Some(user)) => Ok(KeyOwner::User(parse_column(&user, "api_keys.user_id")?)),
        _ => Err(StoreError::Corrupt(format!("api key {key_id} has no single owner"))),
    }
}

fn owner_columns(owner: &KeyOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        KeyOwner::ServiceAccount(id) => (Some(id.as_str()), None),
        KeyOwner::User(id) => (None, Some(id.as_str())),
    }
}

fn created_by(context: &AuditContext) -> String {
    match context.actor.id() {
        Some(id) => format!("{}:{id}", context.actor.kind()),
        None => context.actor.kind().to_owned(),
    }
}

pub(crate) async fn insert_key(
    conn: &mut AnyConnection,
    team_id: &TeamId,
    owner: &KeyOwner,
    key: &NewApiKey,
    context: &AuditContext,
) -> Result<ApiKeyRecord, StoreError> {
    let (service_account_id, user_id) = owner_columns(owner);
    let row = sqlx::query(&format!(
        "insert into api_keys (id, team_id, service_account_id, user_id, name, digest, masked, \
         created_by, created_at, expires_at, permissions) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning {KEY_COLUMNS}"
    ))
    .bind(key.id.as_str())
    .bind(team_id.as_str())
    .bind(service_account_id)
    .bind(user_id)
    .bind(key.name.as_str())
    .bind(key.digest.as_bytes().to_vec())
    .bind(key.masked.as_str())
    .bind(created_by(context))
    .bind(context.at.as_millis())
    .bind(key.expires_at.map(Timestamp::as_millis))
    .bind(if key.worker { "worker" } else { "" })
    .fetch_one(&mut *conn)
    .await?;
    key_from_row(&row)
}

/// Inserts a key and records `api_key.create`.
pub(crate) async fn insert_key_audited(
    conn: &mut AnyConnection,
    audit_key: &[u8; 32],
    team_id: &TeamId,
    owner: &KeyOwner,
    key: &NewApiKey,
    context: &AuditContext,
) -> Result<ApiKeyRecord, StoreError> {
    let record = insert_key(conn, team_id, owner, key, context).await?;
    let change = AuditChange {
        action: AuditAction::ApiKeyCreate,
        target_type: "api_key",
        target_id: record.id.to_string(),
        details: key_details(&record),
    };
    audit::append(conn, audit_key, Some(team_id), context, &change).await?;
    Ok(record)
}

fn key_details(record: &ApiKeyRecord) -> serde_json::Value {
    let (service_account_id, user_id) = owner_columns(&record.owner);
    serde_json::json!({
        "serviceAccountId": service_account_id,
        "userId": user_id,
        "keyName": record.name,
        "maskedKey": record.masked,
        "expiresAt": record.expires_at.map(|t| t.to_rfc3339()),
        "worker": record.worker,
    })
}

/// Locks a service account's row for the rest of the transaction and fails if it is archived.
pub(crate) async fn lock_active_service_account(
    conn: &mut AnyConnection,
    team_id: &TeamId,
    service_account_id: &ServiceAccountId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let archived_at: Option<Option<i64>> = sqlx::query_scalar(
        "update service_accounts set updated_at = $1 where id = $2 and team_id = $3 returning archived_at",
    )
    .bind(now.as_millis())
    .bind(service_account_id.as_str())
    .bind(team_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    match archived_at {
        None => Err(StoreError::NotFound),
        Some(Some(_)) => Err(StoreError::ServiceAccountArchived),
        Some(None) => Ok(()),
    }
}

async fn count_live_keys(
    conn: &mut AnyConnection,
    owner: &KeyOwner,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let (column, id) = match owner {
        KeyOwner::ServiceAccount(id) => ("service_account_id", id.as_str()),
        KeyOwner::User(id) => ("user_id", id.as_str()),
    };
    let count = sqlx::query_scalar(&format!(
        "select count(*) from api_keys where {column} = $1 and revoked_at is null \
         and (expires_at is null or expires_at > $2)"
    ))
    .bind(id)
    .bind(now.as_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(count)
}

/// What a rotation produced: the successor, and the old key as it now stands (revoked, or
/// expiring at the end of the grace period).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub new_key: ApiKeyRecord,
    pub old_key: ApiKeyRecord,
}

impl Store {
    /// Adds a key to an active service account, up to [`MAX_LIVE_KEYS`].
    pub async fn add_service_account_key(
        &self,
        team_id: &TeamId,
        service_account_id: &ServiceAccountId,
        key: &NewApiKey,
        context: &AuditContext,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        lock_active_service_account(&mut tx, team_id, service_account_id, context.at).await?;
        let owner = KeyOwner::ServiceAccount(service_account_id.clone());
        if count_live_keys(&mut tx, &owner, context.at).await? >= MAX_LIVE_KEYS {
            return Err(StoreError::KeyLimitReached { max: MAX_LIVE_KEYS });
        }
        let record = insert_key_audited(&mut tx, &self.audit_key, team_id, &owner, key, context).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Adds a key to a user, up to [`MAX_LIVE_KEYS`].
    pub async fn add_user_key(
        &self,
        team_id: &TeamId,
        user_id: &UserId,
        key: &NewApiKey,
        context: &AuditContext,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let locked: Option<String> = sqlx::query_scalar(
            "update users set updated_at = $1 where id = $2 and team_id = $3 returning id",
        )
        .bind(context.at.as_millis())
        .bind(user_id.as_str())
        .bind(team_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Err(StoreError::NotFound);
        }
        let owner = KeyOwner::User(user_id.clone());
        if count_live_keys(&mut tx, &owner, context.at).await? >= MAX_LIVE_KEYS {
            return Err(StoreError::KeyLimitReached { max: MAX_LIVE_KEYS });
        }
        let record = insert_key_audited(&mut tx, &self.audit_key, team_id, &owner, key, context).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces a live key of a service account with `new_key`.
    ///
    /// Without a grace period the old key is revoked in the same transaction; with one, it
    /// expires at `now + grace`. The old key's `replaced_by` is set by a conditional update,
    /// so of two concurrent rotations exactly one succeeds and the other gets
    /// [`StoreError::AlreadyRotated`]: a key never has two live successors.
    pub async fn rotate_service_account_key(
        &self,
        team_id: &TeamId,
        service_account_id: &ServiceAccountId,
        key_id: &ApiKeyId,
        new_key: &NewApiKey,
        grace: Option<Duration>,
        context: &AuditContext,
    ) -> Result<Rotation, StoreError> {
        let now = context.at;
        let mut tx = self.begin_write().await?;
        lock_active_service_account(&mut tx, team_id, service_account_id, now).await?;
        let row = sqlx::query(&format!(
            "select {KEY_COLUMNS} from api_keys where id = $1 and team_id = $2 and service_account_id = $3"
        ))
        .bind(key_id.as_str())
        .bind(team_id.as_str())
        .bind(service_account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let old = key_from_row(&row)?;
        if old.replaced_by.is_some() {
            return Err(StoreError::AlreadyRotated);
        }
        if !old.is_live(now) {
            return Err(StoreError::KeyNotActive);
        }
        let (revoked_at, expires_at) = match grace {
            None => (Some(now), old.expires_at),
            Some(grace) => {
                let end = now.saturating_add(grace);
                (None, Some(old.expires_at.map_or(end, |current| current.min(end))))
            }
        };
        let updated = sqlx::query(&format!(
            "update api_keys set replaced_by = $1, revoked_at = $2, revoked_reason = $3, expires_at = $4 \
             where id = $5 and replaced_by is null and revoked_at is null returning {KEY_COLUMNS}"
        ))
        .bind(new_key.id.as_str())
        .bind(revoked_at.map(Timestamp::as_millis))
        .bind(revoked_at.map(|_| "rotated"))
        .bind(expires_at.map(Timestamp::as_millis))
        .bind(key_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::AlreadyRotated)?;
        let old_key = key_from_row(&updated)?;
        let owner = KeyOwner::ServiceAccount(service_account_id.clone());
        let new_record = insert_key(&mut tx, team_id, &owner, new_key, context).await?;
        let change = AuditChange {
            action: AuditAction::ApiKeyRotate,
            target_type: "api_key",
            target_id: key_id.to_string(),
            details: serde_json::json!({
                "serviceAccountId": service_account_id.as_str(),
                "newKeyId": new_record.id.as_str(),
                "newMaskedKey": new_record.masked,
                "gracePeriodSeconds": grace.map(|g| g.as_secs()),
                "oldKeyExpiresAt": old_key.expires_at.filter(|_| grace.is_some()).map(|t| t.to_rfc3339()),
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(Rotation { new_key: new_record, old_key })
    }

    /// Revokes one key of `owner` now. Keys in a rotation grace period can be revoked too.
    pub async fn revoke_key(
        &self,
        team_id: &TeamId,
        owner: &KeyOwner,
        key_id: &ApiKeyId,
        context: &AuditContext,
    ) -> Result<ApiKeyRecord, StoreError> {
        let (service_account_id, user_id) = owner_columns(owner);
        let owner_clause = match owner {
            KeyOwner::ServiceAccount(_) => "service_account_id = $3",
            KeyOwner::User(_) => "user_id = $3",
        };
        let owner_id = service_account_id.or(user_id).unwrap_or_default();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "select {KEY_COLUMNS} from api_keys where id = $1 and team_id = $2 and {owner_clause}"
        ))
        .bind(key_id.as_str())
        .bind(team_id.as_str())
        .bind(owner_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let existing = key_from_row(&row)?;
        if existing.revoked_at.is_some() {
            return Err(StoreError::KeyNotActive);
        }
        let row = sqlx::query(&format!(
            "update api_keys set revoked_at = $1, revoked_reason = 'revoked' where id = $2 \
             and revoked_at is null returning {KEY_COLUMNS}"
        ))
        .bind(context.at.as_millis())
        .bind(key_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::KeyNotActive)?;
        let revoked = key_from_row(&row)?;
        let change = AuditChange {
            action: AuditAction::ApiKeyRevoke,
            target_type: "api_key",
            target_id: key_id.to_string(),
            details: key_details(&revoked),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Sets (or, with `None`, clears) a service-account key's own rate limit.
    pub async fn set_key_rate_limit(
        &self,
        team_id: &TeamId,
        service_account_id: &ServiceAccountId,
        key_id: &ApiKeyId,
        per_minute: Option<i64>,
        context: &AuditContext,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "update api_keys set rate_limit_per_minute = $1 where id = $2 and team_id = $3 \
             and service_account_id = $4 returning {KEY_COLUMNS}"
        ))
        .bind(per_minute)
        .bind(key_id.as_str())
        .bind(team_id.as_str())
        .bind(service_account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let record = key_from_row(&row)?;
        if !record.is_live(context.at) {
            return Err(StoreError::KeyNotActive);
        }
        let change = AuditChange {
            action: AuditAction::ApiKeyUpdate,
            target_type: "api_key",
            target_id: key_id.to_string(),
            details: serde_json::json!({ "rateLimitPerMinute": per_minute }),
        };
        audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// A user's keys that can still authenticate, oldest first.
    pub async fn live_user_keys(
        &self,
        team_id: &TeamId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {KEY_COLUMNS} from api_keys where team_id = $1 and user_id = $2 \
             and revoked_at is null and (expires_at is null or expires_at > $3) order by created_at, id"
        ))
        .bind(team_id.as_str())
        .bind(user_id.as_str())
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Everything verification needs, in one indexed read by digest.
    pub async fn lookup_key(&self, digest: &KeyDigest) -> Result<Option<KeyLookup>, StoreError> {
        let row = sqlx::query(
            "select k.id, k.digest, k.team_id, t.plan, k.service_account_id, k.user_id, k.name, \
             k.created_at, k.expires_at, k.revoked_at, k.rate_limit_per_minute, k.permissions, sa.archived_at, \
             u.role, u.email, u.number, u.name as user_name \
             from api_keys k \
             join teams t on t.id = k.team_id \
             left join service_accounts sa on sa.id = k.service_account_id \
             left join users u on u.id = k.user_id \
             where k.digest = $1",
        )
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key_id: String = row.try_get("id")?;
        let stored_digest: Vec<u8> = row.try_get("digest")?;
        let team_id: String = row.try_get("team_id")?;
        let plan: String = row.try_get("plan")?;
        let service_account_id: Option<String> = row.try_get("service_account_id")?;
        let user_id: Option<String> = row.try_get("user_id")?;
        let owner = owner_from(service_account_id, user_id, &key_id)?;
        let user = match row.try_get::<Option<String>, _>("role")? {
            Some(role) => Some(KeyUser {
                role: parse_column(&role, "users.role")?,
                email: row.try_get("email")?,
                number: row.try_get("number")?,
                name: row.try_get("user_name")?,
            }),
            None => None,
        };
        Ok(Some(KeyLookup {
            key_id: parse_column(&key_id, "api_keys.id")?,
            digest: KeyDigest::try_from_slice(&stored_digest)
                .ok_or_else(|| StoreError::Corrupt("digest length".into()))?,
            team_id: parse_column(&team_id, "api_keys.team_id")?,
            team_plan: parse_column(&plan, "teams.plan")?,
            owner,
            key_name: row.try_get("name")?,
            key_created_at: ts(row.try_get("created_at")?),
            expires_at: opt_ts(row.try_get("expires_at")?),
            revoked_at: opt_ts(row.try_get("revoked_at")?),
            owner_archived_at: opt_ts(row.try_get("archived_at")?),
            user,
            rate_limit_per_minute: row.try_get("rate_limit_per_minute")?,
            worker: row.try_get::<String, _>("permissions")?.split(' ').any(|p| p == "worker"),
        }))
    }

    /// Writes a batch of last-use times in one transaction. A time never moves backwards.
    pub async fn record_last_used(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (key_id, at) in uses {
            sqlx::query(
                "update api_keys set last_used_at = $1 where id = $2 \
                 and (last_used_at is null or last_used_at < $1)",
            )
            .bind(at.as_millis())
            .bind(key_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
