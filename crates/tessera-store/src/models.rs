//! What the store returns: rows already parsed into domain types.

use tessera_domain::api_key::KeyDigest;
use tessera_domain::ids::{ApiKeyId, ServiceAccountId, TeamId, UserId};
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::Timestamp;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub plan: Plan,
    /// Seats for humans; `None` means unlimited. Service accounts never take a seat.
    pub seat_limit: Option<i64>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSummary {
    pub team: Team,
    pub seats_used: i64,
    pub service_accounts: i64,
    pub archived_service_accounts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub team_id: TeamId,
    /// The integer `userId` Cursor's `/v1/me` reports.
    pub number: i64,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub team_id: TeamId,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub archived_at: Option<Timestamp>,
}

/// A service account with the keys that can still authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountWithKeys {
    pub account: ServiceAccount,
    pub keys: Vec<ApiKeyRecord>,
}

/// Whose key it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    ServiceAccount(ServiceAccountId),
    User(UserId),
}

/// An API key as listings show it: never the secret, never the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub team_id: TeamId,
    pub owner: KeyOwner,
    pub name: String,
    pub masked: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub replaced_by: Option<ApiKeyId>,
    /// Requests per minute; `None` means the server's default.
    pub rate_limit_per_minute: Option<i64>,
    /// May run `tessera worker` for its team.
    pub worker: bool,
}

impl ApiKeyRecord {
    /// Can this key authenticate at `now`?
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires_at| expires_at > now)
    }
}

/// A key to insert. The service layer builds it from a freshly generated plaintext key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub digest: KeyDigest,
    pub masked: String,
    pub expires_at: Option<Timestamp>,
    /// Grant the worker permission (service-account keys only).
    pub worker: bool,
}

/// Everything verification needs to know about a key, read in one query by digest.
#[derive(Debug, Clone)]
pub struct KeyLookup {
    pub key_id: ApiKeyId,
    pub digest: KeyDigest,
    pub team_id: TeamId,
    pub team_plan: Plan,
    pub owner: KeyOwner,
    pub key_name: String,
    pub key_created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Set when the key belongs to an archived service account.
    pub owner_archived_at: Option<Timestamp>,
    /// Present for user keys.
    pub user: Option<KeyUser>,
    /// Requests per minute; `None` means the server's default.
    pub rate_limit_per_minute: Option<i64>,
    /// May run `tessera worker` for its team.
    pub worker: bool,
}

#[derive(Debug, Clone)]
pub struct KeyUser {
    pub role: Role,
    pub email: String,
    pub number: i64,
    pub name: Option<String>,
}

/// A keyset page request.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub(crate) fn parse_column<T: std::str::FromStr>(value: &str, column: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

pub(crate) fn ts(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

pub(crate) fn opt_ts(millis: Option<i64>) -> Option<Timestamp> {
    millis.map(Timestamp::from_millis)
}
