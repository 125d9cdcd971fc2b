//! Request and response bodies. JSON names are camelCase; timestamps are RFC 3339 strings with
//! milliseconds. Response types never hold a plaintext key, except [`CreatedApiKey::key`].

use serde::{Deserialize, Deserializer, Serialize};
use tessera_domain::time::Timestamp;
use tessera_store::{ApiKeyRecord, Page, PageRequest, ServiceAccountWithKeys, User};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// `limit` and `cursor`, shared by every list route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` from the previous page.
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 100;

pub fn page_request(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::Validation(format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
    }
    Ok(PageRequest { after: cursor.filter(|c| !c.is_empty()), limit })
}

/// A key as listings show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaskedApiKey {
    #[schema(example = "key_0193a1b2c3d4e5f60718293a4b5c6d7e")]
    pub id: String,
    pub name: String,
    /// The prefix, `…` and the last 4 characters.
    #[schema(example = "tessera_sa_…x9Qz")]
    pub masked_key: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// Set while the key is in a rotation grace period (or was created with an expiry).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The key's own rate limit in requests per minute; `null` means the server's default.
    pub rate_limit_per_minute: Option<i64>,
    /// Extra permissions: `worker` lets the key run `tessera worker` for its team.
    pub permissions: Vec<&'static str>,
}

impl From<&ApiKeyRecord> for MaskedApiKey {
    fn from(key: &ApiKeyRecord) -> MaskedApiKey {
        MaskedApiKey {
            id: key.id.to_string(),
            name: key.name.clone(),
            masked_key: key.masked.clone(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            rate_limit_per_minute: key.rate_limit_per_minute,
            permissions: if key.worker { vec!["worker"] } else { Vec::new() },
        }
    }
}

/// A key just created: the only response that ever holds the secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    /// The full key. Shown once; it cannot be retrieved again.
    pub key: String,
    pub masked_key: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("id", &self.id).field("key", &"[REDACTED]").finish()
    }
}

impl CreatedApiKey {
    pub fn new(record: &ApiKeyRecord, plain: &tessera_domain::api_key::PlainApiKey) -> CreatedApiKey {
        CreatedApiKey {
            id: record.id.to_string(),
            name: record.name.clone(),
            key: plain.expose_secret().to_owned(),
            masked_key: record.masked.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountBody {
    #[schema(example = "sa_0193a1b2c3d4e5f60718293a4b5c6d7e")]
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// `active` or `archived`.
    pub status: &'static str,
    /// Who created it (`user_…`, or `operator` for operator commands).
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub archived_at: Option<Timestamp>,
    /// The most recent use of any of its live keys.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// Keys that can authenticate, masked.
    pub api_keys: Vec<MaskedApiKey>,
}

impl From<&ServiceAccountWithKeys> for ServiceAccountBody {
    fn from(with_keys: &ServiceAccountWithKeys) -> ServiceAccountBody {
        let account = &with_keys.account;
        ServiceAccountBody {
            id: account.id.to_string(),
            name: account.name.clone(),
            description: account.description.clone(),
            status: if account.archived_at.is_some() { "archived" } else { "active" },
            created_by: account.created_by.clone(),
            created_at: account.created_at,
            updated_at: account.updated_at,
            archived_at: account.archived_at,
            last_used_at: with_keys.keys.iter().filter_map(|k| k.last_used_at).max(),
            api_keys: with_keys.keys.iter().map(MaskedApiKey::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    /// 1–100 characters, no control characters; unique among the team's active accounts.
    #[schema(example = "Linear Integration")]
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceAccountResponse {
    pub service_account: ServiceAccountBody,
    pub api_key: CreatedApiKey,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateServiceAccountRequest {
    pub name: Option<String>,
    /// A string sets it; `null` or `""` clears it; leaving it out keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountList {
    pub service_accounts: Vec<ServiceAccountBody>,
    pub next_cursor: Option<String>,
}

impl From<&Page<ServiceAccountWithKeys>> for ServiceAccountList {
    fn from(page: &Page<ServiceAccountWithKeys>) -> ServiceAccountList {
        ServiceAccountList {
            service_accounts: page.items.iter().map(ServiceAccountBody::from).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveResponse {
    pub service_account: ServiceAccountBody,
    /// Keys this call revoked (empty if the account was already archived).
    pub revoked_key_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Label for the key; defaults to the account's name.
    pub name: Option<String>,
    /// `["worker"]` lets the key run `tessera worker` for its team (service-account keys only).
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyResponse {
    pub api_key: CreatedApiKey,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Keep the old key working this long (at most 604800, 7 days). Default 0: it stops at once.
    pub grace_period_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// Requests per minute for this key (1 to 1,000,000); `null` returns it to the server default.
    pub rate_limit_per_minute: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateKeyResponse {
    pub api_key: CreatedApiKey,
    pub previous_key: PreviousKey,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKey {
    pub id: String,
    pub masked_key: String,
    /// `revoked` (stopped at once) or `expiring` (works until `validUntil`).
    pub status: &'static str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// Until when the old key still works; absent when it stopped at once.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedKeyResponse {
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub revoked_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    pub api_keys: Vec<MaskedApiKey>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamBody {
    pub id: String,
    pub name: String,
    #[schema(example = "enterprise")]
    pub plan: String,
    /// Humans only: service accounts never take a seat.
    pub seats_used: i64,
    /// `null` means no limit.
    pub seat_limit: Option<i64>,
    /// Active service accounts.
    pub service_accounts: i64,
    pub archived_service_accounts: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub id: String,
    /// The integer id Cursor's `/v1/me` calls `userId`.
    pub user_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> UserBody {
        UserBody {
            id: user.id.to_string(),
            user_id: user.number,
            email: user.email.clone(),
            name: user.name.clone(),
            role: user.role.as_str().to_owned(),
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub users: Vec<UserBody>,
    pub next_cursor: Option<String>,
}
