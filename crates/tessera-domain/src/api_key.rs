//! The API key format, masking and digests.
//!
//! A key is `<prefix><body><checksum>`:
//! - `prefix` names the kind: `tessera_sa_` (service account) or `tessera_u_` (user);
//! - `body` is 43 base62 characters from the operating system's CSPRNG (256 bits);
//! - `checksum` is the CRC32 of `prefix + body`, as 6 base62 digits, zero-padded.
//!
//! The checksum lets secret scanners (and our own parser) reject look-alikes without a database
//! lookup, the way GitHub's token format does. It adds no secrecy.
//!
//! **Invariant:** the plaintext lives only in [`PlainApiKey`], whose `Debug` and `Display`
//! print a redaction. What is stored is a [`KeyDigest`]: HMAC-SHA-256 of the whole key, keyed
//! with a key derived from the server secret.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters in a key: 43 × log2(62) ≈ 256.07 bits.
pub const BODY_LEN: usize = 43;
/// Base62 digits of the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;

/// Which kind of principal a key belongs to. The prefix is part of the format: never change one,
/// since that silently invalidates every key of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    ServiceAccount,
    User,
}

impl KeyKind {
    pub const ALL: [KeyKind; 2] = [KeyKind::ServiceAccount, KeyKind::User];

    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::ServiceAccount => "tessera_sa_",
            KeyKind::User => "tessera_u_",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::ServiceAccount => "service_account",
            KeyKind::User => "user",
        }
    }
}

/// A full API key in plaintext. It is built once, returned once, and dropped.
pub struct PlainApiKey {
    kind: KeyKind,
    secret: SecretString,
}

impl PlainApiKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate(kind: KeyKind) -> PlainApiKey {
        let mut text = String::with_capacity(kind.prefix().len() + BODY_LEN + CHECKSUM_LEN);
        text.push_str(kind.prefix());
        push_random_base62(&mut text, BODY_LEN);
        let checksum = crc32fast::hash(text.as_bytes());
        push_base62_fixed(&mut text, checksum, CHECKSUM_LEN);
        PlainApiKey { kind, secret: SecretString::from(text) }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key text. Every call site is a place where the secret leaves its box.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// What listings show: the prefix, `…` and the last 4 characters.
    pub fn masked(&self) -> String {
        mask(self.secret.expose_secret())
    }
}

impl std::fmt::Debug for PlainApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainApiKey({}[REDACTED])", self.kind.prefix())
    }
}

impl std::fmt::Display for PlainApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[REDACTED]", self.kind.prefix())
    }
}

/// Why a presented credential is not a well-formed key. Callers answer all of these with the
/// same 401; the variant is only for the audit log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    #[error("unknown key prefix")]
    UnknownPrefix,
    #[error("wrong key length")]
    WrongLength,
    #[error("key contains characters outside base62")]
    NotBase62,
    #[error("key checksum does not match")]
    BadChecksum,
}

/// A presented key that has the right shape and checksum. It borrows the request's text and is
/// never stored.
#[derive(Clone, Copy)]
pub struct ParsedApiKey<'a> {
    kind: KeyKind,
    text: &'a str,
}

impl<'a> ParsedApiKey<'a> {
    pub fn parse(text: &'a str) -> Result<ParsedApiKey<'a>, MalformedKey> {
        let kind = KeyKind::ALL
            .into_iter()
            .find(|kind| text.starts_with(kind.prefix()))
            .ok_or(MalformedKey::UnknownPrefix)?;
        let rest = &text[kind.prefix().len()..];
        if rest.len() != BODY_LEN + CHECKSUM_LEN {
            return Err(MalformedKey::WrongLength);
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MalformedKey::NotBase62);
        }
        let (signed, checksum) = text.split_at(text.len() - CHECKSUM_LEN);
        let mut expected = String::with_capacity(CHECKSUM_LEN);
        push_base62_fixed(&mut expected, crc32fast::hash(signed.as_bytes()), CHECKSUM_LEN);
        if expected.as_bytes().ct_eq(checksum.as_bytes()).unwrap_u8() != 1 {
            return Err(MalformedKey::BadChecksum);
        }
        Ok(ParsedApiKey { kind, text })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }
}

impl std::fmt::Debug for ParsedApiKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParsedApiKey({}[REDACTED])", self.kind.prefix())
    }
}

/// `tessera_sa_…Ab12`: enough to recognise a key, far too little to use it.
pub fn mask(key_text: &str) -> String {
    let prefix = KeyKind::ALL
        .into_iter()
        .map(KeyKind::prefix)
        .find(|prefix| key_text.starts_with(prefix))
        .unwrap_or("");
    let last4_start = key_text.len().saturating_sub(4).max(prefix.len());
    format!("{prefix}…{}", &key_text[last4_start..])
}

/// HMAC-SHA-256 of a key under the server's digest key: what the database stores and indexes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> KeyDigest {
        KeyDigest(bytes)
    }

    pub fn try_from_slice(bytes: &[u8]) -> Option<KeyDigest> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyDigest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality, for the final check after a lookup.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// Computes [`KeyDigest`]s. Holds the keyed HMAC state, so each digest costs only the
/// compression of the key text.
#[derive(Clone)]
pub struct KeyHasher {
    keyed: Hmac<Sha256>,
}

impl KeyHasher {
    pub fn new(digest_key: &[u8; 32]) -> KeyHasher {
        #[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let keyed = Hmac::<Sha256>::new_from_slice(digest_key).expect("HMAC takes any key length");
        KeyHasher { keyed }
    }

    pub fn digest_parsed(&self, key: &ParsedApiKey<'_>) -> KeyDigest {
        self.digest_text(key.text)
    }

    pub fn digest_plain(&self, key: &PlainApiKey) -> KeyDigest {
        self.digest_text(key.expose_secret())
    }

    fn digest_text(&self, text: &str) -> KeyDigest {
        let mut mac = self.keyed.clone();
        mac.update(text.as_bytes());
        KeyDigest(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

fn push_random_base62(out: &mut String, n_chars: usize) {
    let mut pushed = 0;
    let mut buf = [0u8; 64];
    while pushed < n_chars {
        // The OS CSPRNG failing is not something a caller can recover from.
        #[expect(clippy::expect_used, reason = "no key can be made without the OS CSPRNG")]
        getrandom::fill(&mut buf).expect("the operating system's CSPRNG failed");
        // Rejection sampling: 248 = 4 × 62, so accepted bytes map uniformly onto base62.
        for byte in buf.iter().copied().filter(|b| *b < 248) {
            if pushed == n_chars {
                break;
            }
            out.push(char::from(BASE62[usize::from(byte % 62)]));
            pushed += 1;
        }
    }
}

fn push_base62_fixed(out: &mut String, mut value: u32, width: usize) {
    let mut digits = [b'0'; 8];
    for slot in digits[..width].iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.extend(digits[..width].iter().map(|b| char::from(*b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        for kind in KeyKind::ALL {
            let key = PlainApiKey::generate(kind);
            let text = key.expose_secret();
            assert!(text.starts_with(kind.prefix()));
            assert_eq!(text.len(), kind.prefix().len() + BODY_LEN + CHECKSUM_LEN);
            let parsed = ParsedApiKey::parse(text).map(|p| p.kind());
            assert_eq!(parsed, Ok(kind));
        }
    }

    #[test]
    fn keys_are_distinct() {
        let a = PlainApiKey::generate(KeyKind::User);
        let b = PlainApiKey::generate(KeyKind::User);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn any_single_character_change_is_caught_by_the_checksum_or_alphabet() {
        let key = PlainApiKey::generate(KeyKind::ServiceAccount);
        let text = key.expose_secret().to_owned();
        let prefix_len = KeyKind::ServiceAccount.prefix().len();
        for idx in prefix_len..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[idx] = if bytes[idx] == b'a' { b'b' } else { b'a' };
            let tampered = String::from_utf8(bytes).unwrap_or_default();
            assert_eq!(ParsedApiKey::parse(&tampered).err(), Some(MalformedKey::BadChecksum));
        }
    }

    #[test]
    fn rejects_look_alikes() {
        assert_eq!(ParsedApiKey::parse("crsr_abc").err(), Some(MalformedKey::UnknownPrefix));
        assert_eq!(ParsedApiKey::parse("tessera_sa_abc").err(), Some(MalformedKey::WrongLength));
        let key = PlainApiKey::generate(KeyKind::User);
        let with_symbol = key.expose_secret().replacen('A', "-", 1).replacen('b', "-", 1);
        if with_symbol != key.expose_secret() {
            assert_eq!(ParsedApiKey::parse(&with_symbol).err(), Some(MalformedKey::NotBase62));
        }
    }

    #[test]
    fn masking_shows_prefix_and_last_four() {
        let key = PlainApiKey::generate(KeyKind::ServiceAccount);
        let text = key.expose_secret();
        assert_eq!(key.masked(), format!("tessera_sa_…{}", &text[text.len() - 4..]));
    }

    #[test]
    fn debug_and_display_redact() {
        let key = PlainApiKey::generate(KeyKind::ServiceAccount);
        let body = &key.expose_secret()[11..];
        for printed in [format!("{key:?}"), format!("{key}")] {
            assert!(!printed.contains(body), "{printed}");
            assert!(printed.contains("REDACTED"));
        }
        let parsed = ParsedApiKey::parse(key.expose_secret()).map(|p| format!("{p:?}"));
        assert!(!parsed.unwrap_or_default().contains(body));
    }

    #[test]
    fn digests_depend_on_the_server_key() {
        let key = PlainApiKey::generate(KeyKind::User);
        let a = KeyHasher::new(&[1; 32]).digest_plain(&key);
        let b = KeyHasher::new(&[2; 32]).digest_plain(&key);
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&KeyHasher::new(&[1; 32]).digest_plain(&key)));
    }

    #[test]
    fn base62_checksum_is_zero_padded() {
        let mut out = String::new();
        push_base62_fixed(&mut out, 61, CHECKSUM_LEN);
        assert_eq!(out, "00000z");
        out.clear();
        push_base62_fixed(&mut out, u32::MAX, CHECKSUM_LEN);
        assert_eq!(out, "4gfFC3");
    }
}
