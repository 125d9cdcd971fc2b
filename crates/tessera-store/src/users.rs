//! Humans: adding them within the seat limit, listing them.

use sqlx::{AnyConnection, Row};
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::{TeamId, UserId};
use tessera_domain::names::{Email, PersonName};
use tessera_domain::team::Role;

use crate::api_keys::insert_key_audited;
use crate::models::{parse_column, ts};
use crate::teams::lock_team;
use crate::{
    KeyOwner, NewApiKey, Page, PageRequest, Store, StoreError, User, audit, decode_cursor, encode_cursor,
};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub number: i64,
    pub email: Email,
    pub name: Option<PersonName>,
    pub role: Role,
}

const USER_COLUMNS: &str = "id, team_id, number, email, name, role, created_at";

pub(crate) fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let team_id: String = row.try_get("team_id")?;
    let role: String = row.try_get("role")?;
    Ok(User {
        id: parse_column(&id, "users.id")?,
        team_id: parse_column(&team_id, "users.team_id")?,
        number: row.try_get("number")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: parse_column(&role, "users.role")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

/// Inserts a user and its audit event, checking the e-mail is free in the team.
pub(crate) async fn insert_user(
    conn: &mut AnyConnection,
    audit_key: &[u8; 32],
    team_id: &TeamId,
    user: &NewUser,
    context: &AuditContext,
) -> Result<User, StoreError> {
    let taken: Option<String> = sqlx::query_scalar("select id from users where team_id = $1 and email = $2")
        .bind(team_id.as_str())
        .bind(user.email.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::EmailTaken(user.email.to_string()));
    }
    let now = context.at.as_millis();
    let row = sqlx::query(&format!(
        "insert into users (id, team_id, number, email, name, role, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning {USER_COLUMNS}"
    ))
    .bind(user.id.as_str())
    .bind(team_id.as_str())
    .bind(user.number)
    .bind(user.email.as_str())
    .bind(user.name.as_ref().map(PersonName::as_str))
    .bind(user.role.as_str())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let change = AuditChange {
        action: AuditAction::UserAdd,
        target_type: "user",
        target_id: user.id.to_string(),
        details: serde_json::json!({ "email": user.email.as_str(), "role": user.role.as_str() }),
    };
    audit::append(conn, audit_key, Some(team_id), context, &change).await?;
    user_from_row(&row)
}

impl Store {
    /// Adds a human to a team, refusing when every seat is taken.
    pub async fn add_user(
        &self,
        team_id: &TeamId,
        user: &NewUser,
        key: Option<&NewApiKey>,
        context: &AuditContext,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        let team = lock_team(&mut tx, team_id).await?;
        if let Some(limit) = team.seat_limit {
            let seats_used: i64 = sqlx::query_scalar("select count(*) from users where team_id = $1")
                .bind(team_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if seats_used >= limit {
                return Err(StoreError::SeatLimitReached { limit });
            }
        }
        let created = insert_user(&mut tx, &self.audit_key, team_id, user, context).await?;
        if let Some(key) = key {
            let owner = KeyOwner::User(created.id.clone());
            insert_key_audited(&mut tx, &self.audit_key, team_id, &owner, key, context).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn user(&self, team_id: &TeamId, user_id: &UserId) -> Result<User, StoreError> {
        let row = sqlx::query(&format!("select {USER_COLUMNS} from users where team_id = $1 and id = $2"))
            .bind(team_id.as_str())
            .bind(user_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    pub async fn find_user_by_email(
        &self,
        team_id: &TeamId,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("select {USER_COLUMNS} from users where team_id = $1 and email = $2"))
            .bind(team_id.as_str())
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Users in order of creation.
    pub async fn list_users(&self, team_id: &TeamId, page: &PageRequest) -> Result<Page<User>, StoreError> {
        let after = match &page.after {
            Some(cursor) => Some(decode_keyset(cursor)?),
            None => None,
        };
        let (after_created, after_id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(&format!(
            "select {USER_COLUMNS} from users where team_id = $1 \
             and (created_at > $2 or (created_at = $2 and id > $3)) \
             order by created_at, id limit $4"
        ))
        .bind(team_id.as_str())
        .bind(after_created)
        .bind(after_id)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor =
            trim_page(&mut items, page.limit, |u| keyset(u.created_at.as_millis(), u.id.as_str()));
        Ok(Page { items, next_cursor })
    }
}

/// `created_at.id`, the sort key of creation-ordered listings, as an opaque cursor.
pub(crate) fn keyset(created_at: i64, id: &str) -> String {
    encode_cursor(&format!("{created_at}.{id}"))
}

pub(crate) fn decode_keyset(cursor: &str) -> Result<(i64, String), StoreError> {
    let text = decode_cursor(cursor).ok_or(StoreError::InvalidCursor)?;
    let (created, id) = text.split_once('.').ok_or(StoreError::InvalidCursor)?;
    Ok((created.parse().map_err(|_| StoreError::InvalidCursor)?, id.to_owned()))
}

/// Drops the look-ahead row and returns the cursor for the next page, if there is one.
pub(crate) fn trim_page<T>(
    items: &mut Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor_of)
    } else {
        None
    }
}
