//! Prefixed identifiers.
//!
//! Every id is a type prefix and 32 lowercase hex digits of a UUIDv7, for example
//! `sa_0193a1b2c3d4e5f60718293a4b5c6d7e`. The prefix tells a reader (and a support engineer
//! reading a log line) what kind of object it names; UUIDv7 keeps ids roughly time-ordered.
//! An id of the wrong shape does not parse, and the API answers 404 for it.

use std::fmt;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random, time-ordered id.
            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(raw: &str) -> Result<$name, InvalidId> {
                let hex = raw.strip_prefix($prefix).ok_or(InvalidId { kind: $kind })?;
                let is_hex = hex.len() == 32
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !is_hex {
                    return Err(InvalidId { kind: $kind });
                }
                Ok($name(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(raw: &str) -> Result<$name, InvalidId> {
                $name::parse(raw)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let raw = String::deserialize(deserializer)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A team: the tenant. Every other object belongs to exactly one team.
    TeamId, "team_", "team"
);
prefixed_id!(
    /// A human member of a team.
    UserId, "user_", "user"
);
prefixed_id!(
    /// A service account: a non-human member of a team.
    ServiceAccountId, "sa_", "service account"
);
prefixed_id!(
    /// One API key of a user or a service account. Not secret.
    ApiKeyId, "key_", "API key"
);
prefixed_id!(
    /// One audit event.
    AuditEventId, "evt_", "audit event"
);
prefixed_id!(
    /// A repository integration: a set of repositories a team (or one user) has authorized.
    IntegrationId, "int_", "integration"
);

/// A random positive integer below 2^53 (safe in JavaScript), used as the `userId` that
/// Cursor's `/v1/me` reports as a number.
pub fn generate_user_number() -> i64 {
    let mut bytes = [0u8; 8];
    #[expect(clippy::expect_used, reason = "no id can be made without the OS CSPRNG")]
    getrandom::fill(&mut bytes).expect("the operating system's CSPRNG failed");
    let value = u64::from_le_bytes(bytes) >> 11;
    i64::try_from(value).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = ServiceAccountId::generate();
        assert!(id.as_str().starts_with("sa_"));
        assert_eq!(ServiceAccountId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn rejects_wrong_shapes() {
        for raw in [
            "",
            "sa_",
            "sa_123",
            "key_0193a1b2c3d4e5f60718293a4b5c6d7e",
            "sa_0193A1B2C3D4E5F60718293A4B5C6D7E",
            "sa_0193a1b2c3d4e5f60718293a4b5c6d7e0",
            "sa_0193a1b2c3d4e5f60718293a4b5c6d7g",
            "../sa_0193a1b2c3d4e5f60718293a4b5c6d7e",
        ] {
            assert!(ServiceAccountId::parse(raw).is_err(), "{raw:?} parsed");
        }
    }
}
