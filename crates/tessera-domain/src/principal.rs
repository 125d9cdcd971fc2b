//! Who is acting: the principal behind a request, and the actor recorded in the audit log.

use crate::ids::{ApiKeyId, ServiceAccountId, TeamId, UserId};
use crate::team::Role;

/// An authenticated caller. Built only by key verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User { team_id: TeamId, user_id: UserId, role: Role, key_id: ApiKeyId },
    ServiceAccount { team_id: TeamId, service_account_id: ServiceAccountId, key_id: ApiKeyId },
}

impl Principal {
    pub fn team_id(&self) -> &TeamId {
        match self {
            Principal::User { team_id, .. } | Principal::ServiceAccount { team_id, .. } => team_id,
        }
    }

    pub fn key_id(&self) -> &ApiKeyId {
        match self {
            Principal::User { key_id, .. } | Principal::ServiceAccount { key_id, .. } => key_id,
        }
    }

    /// `user_…` or `sa_…`: what logs and audit filters use.
    pub fn id_str(&self) -> &str {
        match self {
            Principal::User { user_id, .. } => user_id.as_str(),
            Principal::ServiceAccount { service_account_id, .. } => service_account_id.as_str(),
        }
    }

    /// Owners and admins of the team; never a service account.
    pub fn is_team_admin(&self) -> bool {
        matches!(self, Principal::User { role, .. } if role.is_admin())
    }

    pub fn actor(&self) -> Actor {
        match self {
            Principal::User { user_id, key_id, .. } => {
                Actor::User { user_id: user_id.clone(), key_id: Some(key_id.clone()) }
            }
            Principal::ServiceAccount { service_account_id, key_id, .. } => Actor::ServiceAccount {
                service_account_id: service_account_id.clone(),
                key_id: key_id.clone(),
            },
        }
    }
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User {
        user_id: UserId,
        key_id: Option<ApiKeyId>,
    },
    ServiceAccount {
        service_account_id: ServiceAccountId,
        key_id: ApiKeyId,
    },
    /// Someone running an operator command (`tessera init`, `tessera users add`) on the
    /// database directly; `name` is the operating-system user.
    Operator {
        name: String,
    },
    /// A caller whose credential did not verify.
    Anonymous,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ServiceAccount { .. } => "service_account",
            Actor::Operator { .. } => "operator",
            Actor::Anonymous => "anonymous",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User { user_id, .. } => Some(user_id.as_str()),
            Actor::ServiceAccount { service_account_id, .. } => Some(service_account_id.as_str()),
            Actor::Operator { name } => Some(name),
            Actor::Anonymous => None,
        }
    }

    pub fn key_id(&self) -> Option<&ApiKeyId> {
        match self {
            Actor::User { key_id, .. } => key_id.as_ref(),
            Actor::ServiceAccount { key_id, .. } => Some(key_id),
            Actor::Operator { .. } | Actor::Anonymous => None,
        }
    }
}
