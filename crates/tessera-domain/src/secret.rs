//! The server secret, and the keys derived from it.
//!
//! One 32-byte secret per deployment. Every process that shares a database must use the same
//! one: it keys the API-key digests (so a stolen database cannot even confirm a guessed key)
//! and the audit hash chain (so a database editor cannot forge a consistent chain).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server secret must be 64 hexadecimal characters (32 bytes)")]
pub struct InvalidServerSecret;

pub struct ServerSecret(SecretBox<[u8; 32]>);

impl ServerSecret {
    pub fn generate() -> ServerSecret {
        let mut bytes = [0u8; 32];
        #[expect(clippy::expect_used, reason = "no secret can be made without the OS CSPRNG")]
        getrandom::fill(&mut bytes).expect("the operating system's CSPRNG failed");
        ServerSecret(SecretBox::new(Box::new(bytes)))
    }

    pub fn from_hex(text: &str) -> Result<ServerSecret, InvalidServerSecret> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(InvalidServerSecret);
        }
        let mut bytes = [0u8; 32];
        for (slot, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| InvalidServerSecret)?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| InvalidServerSecret)?;
        }
        Ok(ServerSecret(SecretBox::new(Box::new(bytes))))
    }

    /// For writing a newly generated secret to its file, once.
    pub fn to_hex(&self) -> String {
        hex(self.0.expose_secret())
    }

    /// The key that API-key digests are computed with.
    pub fn api_key_digest_key(&self) -> [u8; 32] {
        self.derive(b"tessera/api-key-digest/v1")
    }

    /// The key that the audit hash chain is computed with.
    pub fn audit_chain_key(&self) -> [u8; 32] {
        self.derive(b"tessera/audit-chain/v1")
    }

    /// A public fingerprint, stored in the database, so that a process started with the wrong
    /// secret refuses to run instead of rejecting every key.
    pub fn fingerprint(&self) -> String {
        hex(&self.derive(b"tessera/fingerprint/v1")[..12])
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()).expect("any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret([REDACTED])")
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_distinct_derivations() {
        let secret = ServerSecret::generate();
        let again = ServerSecret::from_hex(&secret.to_hex()).map(|s| s.fingerprint());
        assert_eq!(again, Ok(secret.fingerprint()));
        assert_ne!(secret.api_key_digest_key(), secret.audit_chain_key());
        assert!(ServerSecret::from_hex("abc").is_err());
        assert!(ServerSecret::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{secret:?}"), "ServerSecret([REDACTED])");
    }
}
