//! Teams: creation with the first owner, plan changes, the summary `GET /v1/team` shows.

use sqlx::{AnyConnection, Row};
use tessera_domain::audit::{AuditAction, AuditChange, AuditContext};
use tessera_domain::ids::TeamId;
use tessera_domain::names::TeamName;
use tessera_domain::team::Plan;

use crate::api_keys::insert_key_audited;
use crate::models::{parse_column, ts};
use crate::users::{NewUser, insert_user};
use crate::{KeyOwner, NewApiKey, Store, StoreError, Team, TeamSummary, User, audit};

#[derive(Debug, Clone)]
pub struct NewTeam {
    pub id: TeamId,
    pub name: TeamName,
    pub plan: Plan,
    pub seat_limit: Option<i64>,
}

const TEAM_COLUMNS: &str = "id, name, plan, seat_limit, created_at";

pub(crate) fn team_from_row(row: &sqlx::any::AnyRow) -> Result<Team, StoreError> {
    let id: String = row.try_get("id")?;
    let plan: String = row.try_get("plan")?;
    Ok(Team {
        id: parse_column(&id, "teams.id")?,
        name: row.try_get("name")?,
        plan: parse_column(&plan, "teams.plan")?,
        seat_limit: row.try_get("seat_limit")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

/// Locks the team's row for the rest of the transaction (a no-op update takes the row lock on
/// PostgreSQL; SQLite's write transaction already holds the database lock) and returns it.
pub(crate) async fn lock_team(conn: &mut AnyConnection, team_id: &TeamId) -> Result<Team, StoreError> {
    let row = sqlx::query(&format!(
        "update teams set updated_at = updated_at where id = $1 returning {TEAM_COLUMNS}"
    ))
    .bind(team_id.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    team_from_row(&row)
}

impl Store {
    /// Creates a team with its first owner (and, if given, the owner's first key).
    pub async fn create_team(
        &self,
        team: &NewTeam,
        owner: &NewUser,
        owner_key: Option<&NewApiKey>,
        context: &AuditContext,
    ) -> Result<(Team, User), StoreError> {
        let mut tx = self.begin_write().await?;
        let taken: Option<String> = sqlx::query_scalar("select id from teams where lower(name) = lower($1)")
            .bind(team.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::TeamNameTaken(team.name.to_string()));
        }
        let now = context.at.as_millis();
        let inserted = sqlx::query(&format!(
            "insert into teams (id, name, plan, seat_limit, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $5) returning {TEAM_COLUMNS}"
        ))
        .bind(team.id.as_str())
        .bind(team.name.as_str())
        .bind(team.plan.as_str())
        .bind(team.seat_limit)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let created = match inserted.map_err(StoreError::from) {
            Err(err) if err.is_unique_violation() => {
                return Err(StoreError::TeamNameTaken(team.name.to_string()));
            }
            other => team_from_row(&other?)?,
        };
        let change = AuditChange {
            action: AuditAction::TeamCreate,
            target_type: "team",
            target_id: team.id.to_string(),
            details: serde_json::json!({
                "name": team.name.as_str(),
                "plan": team.plan.as_str(),
                "seatLimit": team.seat_limit,
            }),
        };
        audit::append(&mut tx, &self.audit_key, Some(&team.id), context, &change).await?;
        let user = insert_user(&mut tx, &self.audit_key, &team.id, owner, context).await?;
        if let Some(key) = owner_key {
            let owner = KeyOwner::User(user.id.clone());
            insert_key_audited(&mut tx, &self.audit_key, &team.id, &owner, key, context).await?;
        }
        tx.commit().await?;
        Ok((created, user))
    }

    pub async fn find_team_by_name(&self, name: &str) -> Result<Option<Team>, StoreError> {
        let row = sqlx::query(&format!("select {TEAM_COLUMNS} from teams where lower(name) = lower($1)"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    pub async fn team(&self, team_id: &TeamId) -> Result<Team, StoreError> {
        let row = sqlx::query(&format!("select {TEAM_COLUMNS} from teams where id = $1"))
            .bind(team_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        team_from_row(&row)
    }

    pub async fn team_summary(&self, team_id: &TeamId) -> Result<TeamSummary, StoreError> {
        let team = self.team(team_id).await?;
        let row = sqlx::query(
            "select \
               (select count(*) from users where team_id = $1) as seats_used, \
               (select count(*) from service_accounts where team_id = $1 and archived_at is null) as active, \
               (select count(*) from service_accounts where team_id = $1 and archived_at is not null) as archived",
        )
        .bind(team_id.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(TeamSummary {
            team,
            seats_used: row.try_get("seats_used")?,
            service_accounts: row.try_get("active")?,
            archived_service_accounts: row.try_get("archived")?,
        })
    }

    /// Changes the plan. Returns the team as it was before and after.
    pub async fn set_team_plan(
        &self,
        team_id: &TeamId,
        plan: Plan,
        context: &AuditContext,
    ) -> Result<(Team, Team), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = lock_team(&mut tx, team_id).await?;
        let row = sqlx::query(&format!(
            "update teams set plan = $1, updated_at = $2 where id = $3 returning {TEAM_COLUMNS}"
        ))
        .bind(plan.as_str())
        .bind(context.at.as_millis())
        .bind(team_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let after = team_from_row(&row)?;
        if before.plan != plan {
            let change = AuditChange {
                action: AuditAction::TeamPlanChange,
                target_type: "team",
                target_id: team_id.to_string(),
                details: serde_json::json!({ "from": before.plan.as_str(), "to": plan.as_str() }),
            };
            audit::append(&mut tx, &self.audit_key, Some(team_id), context, &change).await?;
        }
        tx.commit().await?;
        Ok((before, after))
    }
}
