//! `/v1/team` and `/v1/users`.

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::api::types::{PageQuery, TeamBody, UserBody, UserList, page_request};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppQuery, Authenticated};

/// The caller's team: plan, human seats used and their limit, service-account counts.
#[utoipa::path(
    get, path = "/v1/team", tag = "team",
    responses((status = 200, body = TeamBody), (status = 401, body = ErrorBody))
)]
pub async fn get_team(State(app): State<AppState>, caller: Authenticated) -> ApiResult<Json<TeamBody>> {
    let summary = app.store.team_summary(caller.principal().team_id()).await?;
    Ok(Json(TeamBody {
        id: summary.team.id.to_string(),
        name: summary.team.name,
        plan: summary.team.plan.as_str().to_owned(),
        seats_used: summary.seats_used,
        seat_limit: summary.team.seat_limit,
        service_accounts: summary.service_accounts,
        archived_service_accounts: summary.archived_service_accounts,
        created_at: summary.team.created_at,
    }))
}

/// The team's human members (owners and admins only).
#[utoipa::path(
    get, path = "/v1/users", tag = "team", params(PageQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_users(
    State(app): State<AppState>,
    caller: Authenticated,
    AppQuery(query): AppQuery<PageQuery>,
) -> ApiResult<Json<UserList>> {
    caller.require_admin()?;
    let page = page_request(query.limit, query.cursor)?;
    let listed = app.store.list_users(caller.principal().team_id(), &page).await?;
    Ok(Json(UserList {
        users: listed.items.iter().map(UserBody::from).collect(),
        next_cursor: listed.next_cursor,
    }))
}
