//! Minting keys: the one place a plaintext key is born.

use tessera_domain::api_key::{KeyHasher, KeyKind, PlainApiKey};
use tessera_domain::ids::ApiKeyId;
use tessera_domain::time::Timestamp;
use tessera_store::NewApiKey;

/// A fresh key: the plaintext (to show once) and the row to store (digest and mask only).
pub fn mint_key(
    hasher: &KeyHasher,
    kind: KeyKind,
    name: &str,
    expires_at: Option<Timestamp>,
) -> (PlainApiKey, NewApiKey) {
    let plain = PlainApiKey::generate(kind);
    let row = NewApiKey {
        id: ApiKeyId::generate(),
        name: name.to_owned(),
        digest: hasher.digest_plain(&plain),
        masked: plain.masked(),
        expires_at,
        worker: false,
    };
    (plain, row)
}
