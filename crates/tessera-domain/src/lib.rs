//! Tessera's domain: the types every other crate speaks in.
//!
//! Nothing here does I/O. Values are parsed once at the edge (HTTP body, CLI flag, database row)
//! into these types, so holding a `ServiceAccountName` is proof that the name is valid.
//!
//! Layout:
//! - [`agent`]: cloud agents and runs: ids, statuses, prompts, branch names.
//! - [`ids`]: prefixed identifiers (`sa_…`, `key_…`, `user_…`, `team_…`).
//! - [`api_key`]: the key format (prefix, random body, CRC32 checksum), masking and digests.
//! - [`names`]: validated names, descriptions and e-mail addresses.
//! - [`integration`]: repository integrations: scopes, providers, repository URLs.
//! - [`team`]: plans and roles.
//! - [`principal`]: who is acting on a request.
//! - [`audit`]: audit actions and the hash chain over audit events.
//! - [`secret`]: the server secret and the keys derived from it.
//! - [`time`]: timestamps and the clock, which is always passed in.

pub mod agent;
pub mod api_key;
pub mod audit;
pub mod ids;
pub mod integration;
pub mod names;
pub mod principal;
pub mod secret;
pub mod team;
pub mod time;
