//! Plans and roles.

use std::fmt;
use std::str::FromStr;

/// A team's plan. Service accounts exist only on [`Plan::Enterprise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Business,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Pro, Plan::Business, Plan::Enterprise];

    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Business => "business",
            Plan::Enterprise => "enterprise",
        }
    }

    pub const fn allows_service_accounts(self) -> bool {
        matches!(self, Plan::Enterprise)
    }
}

/// A human's role in their team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Owners and admins manage service accounts, keys and people.
    pub const fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Plan {
    type Err = UnknownVariant;
    fn from_str(raw: &str) -> Result<Plan, UnknownVariant> {
        Plan::ALL.into_iter().find(|plan| plan.as_str() == raw).ok_or_else(|| UnknownVariant {
            kind: "plan",
            value: raw.to_owned(),
            expected: "free, pro, business, enterprise",
        })
    }
}

impl FromStr for Role {
    type Err = UnknownVariant;
    fn from_str(raw: &str) -> Result<Role, UnknownVariant> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw).ok_or_else(|| UnknownVariant {
            kind: "role",
            value: raw.to_owned(),
            expected: "owner, admin, member",
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for plan in Plan::ALL {
            assert_eq!(plan.as_str().parse::<Plan>(), Ok(plan));
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Enterprise".parse::<Plan>().is_err());
    }

    #[test]
    fn only_enterprise_has_service_accounts() {
        let allowed: Vec<Plan> = Plan::ALL.into_iter().filter(|p| p.allows_service_accounts()).collect();
        assert_eq!(allowed, vec![Plan::Enterprise]);
    }
}
