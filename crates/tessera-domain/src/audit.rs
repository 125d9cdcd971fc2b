//! Audit actions, and the hash chain that makes the audit log tamper-evident.
//!
//! Events form one chain per stream (a team's id, or `system` for failures that belong to no
//! team). Each event stores `hash = HMAC(audit_key, prev_hash ‖ canonical JSON of the event)`,
//! and the stream's head (last sequence number and hash) is stored beside the events. Altering
//! an event breaks its hash; deleting one breaks the next event's `prev_hash` or, for the last
//! event, the head. Keying the chain with the server secret means that someone who can edit the
//! database but does not hold the secret cannot recompute a consistent chain.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::principal::Actor;
use crate::time::Timestamp;

/// The stream for events that belong to no team (unknown or malformed keys).
pub const SYSTEM_STREAM: &str = "system";
/// `prev_hash` of the first event of every stream.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

macro_rules! actions {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// Everything the audit log records. The strings are part of the API (`action=` filter).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant),+ }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Option<AuditAction> {
                AuditAction::ALL.iter().copied().find(|action| action.as_str() == raw)
            }
        }
    };
}

actions! {
    TeamCreate => "team.create",
    TeamPlanChange => "team.plan_change",
    UserAdd => "user.add",
    ServiceAccountCreate => "service_account.create",
    ServiceAccountUpdate => "service_account.update",
    ServiceAccountArchive => "service_account.archive",
    ApiKeyCreate => "api_key.create",
    ApiKeyRotate => "api_key.rotate",
    ApiKeyRevoke => "api_key.revoke",
    ApiKeyUpdate => "api_key.update",
    AuthFailure => "auth.failure",
    IntegrationCreate => "integration.create",
    IntegrationUpdate => "integration.update",
    IntegrationDelete => "integration.delete",
    AgentCreate => "agent.create",
    AgentFollowup => "agent.followup",
    AgentStop => "agent.stop",
    AgentDelete => "agent.delete",
    AgentArchive => "agent.archive",
    AgentUnarchive => "agent.unarchive",
}

/// Who acted, from where, in which request, and when: everything about an audited change that
/// is not the change itself. Built once per request and handed to every store write.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub at: Timestamp,
}

/// What happened, to what.
#[derive(Debug, Clone)]
pub struct AuditChange {
    pub action: AuditAction,
    pub target_type: &'static str,
    pub target_id: String,
    /// Extra facts (old and new name, grace period…). Never a secret.
    pub details: serde_json::Value,
}

/// The fields of one event that the chain hash covers, in a fixed order.
#[derive(Debug, serde::Serialize)]
pub struct ChainedFields<'a> {
    pub id: &'a str,
    pub stream: &'a str,
    pub seq: i64,
    pub team_id: Option<&'a str>,
    pub occurred_at: i64,
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub actor_key_id: Option<&'a str>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
}

pub fn chain_hash(audit_key: &[u8; 32], prev_hash: &[u8; 32], fields: &ChainedFields<'_>) -> [u8; 32] {
    #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(audit_key).expect("any key length");
    mac.update(prev_hash);
    // Serializing a struct of strings and integers cannot fail.
    let canonical = serde_json::to_vec(fields).unwrap_or_default();
    mac.update(&canonical);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(action: &str) -> ChainedFields<'_> {
        ChainedFields {
            id: "evt_1",
            stream: "team_1",
            seq: 1,
            team_id: Some("team_1"),
            occurred_at: 1,
            actor_type: "user",
            actor_id: Some("user_1"),
            actor_key_id: None,
            action,
            target_type: None,
            target_id: None,
            client_ip: None,
            request_id: None,
            details: "{}",
        }
    }

    #[test]
    fn hash_covers_fields_previous_hash_and_key() {
        let key = [7; 32];
        let base = chain_hash(&key, &GENESIS_HASH, &fields("a"));
        assert_ne!(base, chain_hash(&key, &GENESIS_HASH, &fields("b")));
        assert_ne!(base, chain_hash(&key, &[1; 32], &fields("a")));
        assert_ne!(base, chain_hash(&[8; 32], &GENESIS_HASH, &fields("a")));
        assert_eq!(base, chain_hash(&key, &GENESIS_HASH, &fields("a")));
    }

    #[test]
    fn action_strings_round_trip() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
        }
        assert_eq!(AuditAction::parse("service_account.delete"), None);
    }
}
