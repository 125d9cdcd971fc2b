//! Authentication: from an `Authorization` header to a [`tessera_domain::principal::Principal`].
//!
//! - [`credentials`] reads the key from `Bearer KEY` or HTTP Basic (`KEY:` with an empty password).
//! - [`verifier`] checks the key: shape and checksum, digest, cache, database.
//! - [`last_used`] batches `last_used_at` writes.
//! - [`failures`] writes failed authentications to the audit log off the request path.

pub mod credentials;
pub mod failures;
pub mod last_used;
pub mod verifier;

pub use verifier::{RejectReason, Rejection, VerifiedKey, Verifier};
