//! Batched `last_used_at` writes.
//!
//! A verified request only notes its key's use in memory, at most once per key per second;
//! a background task writes the notes every `last_used_flush_interval` in one transaction.
//! With the default interval of 15 s, `lastUsedAt` is accurate to well within a minute, and
//! the database sees one write per active key per interval instead of one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tessera_domain::ids::ApiKeyId;
use tessera_domain::time::Timestamp;
use tessera_store::Store;

use crate::auth::verifier::VerifiedKey;

const NOTE_GRANULARITY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct LastUsedBuffer {
    pending: Mutex<HashMap<ApiKeyId, Timestamp>>,
}

impl LastUsedBuffer {
    pub fn note(&self, key: &VerifiedKey, now: Timestamp) {
        if !key.claim_last_used(now, NOTE_GRANULARITY) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = pending.entry(key.principal.key_id().clone()).or_insert(now);
        *slot = (*slot).max(now);
    }

    fn take(&self) -> Vec<(ApiKeyId, Timestamp)> {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *pending).into_iter().collect()
    }

    /// Writes everything noted so far. On failure the notes go back into the buffer.
    pub async fn flush(&self, store: &Store) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(err) = store.record_last_used(&batch).await {
            tracing::warn!(error = %err, n_keys = batch.len(), "Could not write last-used times; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (key_id, at) in batch {
                let slot = pending.entry(key_id).or_insert(at);
                *slot = (*slot).max(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use tessera_domain::ids::{ServiceAccountId, TeamId};
    use tessera_domain::principal::Principal;

    use super::*;

    fn key() -> VerifiedKey {
        VerifiedKey {
            principal: Principal::ServiceAccount {
                team_id: TeamId::generate(),
                service_account_id: ServiceAccountId::generate(),
                key_id: ApiKeyId::generate(),
            },
            key_name: "k".into(),
            key_created_at: Timestamp::from_millis(0),
            expires_at: None,
            user: None,
            rate_limit_per_minute: None,
            last_noted_ms: AtomicI64::new(i64::MIN),
        }
    }

    #[test]
    fn many_uses_within_a_second_queue_one_write() {
        let buffer = LastUsedBuffer::default();
        let key = key();
        for offset in 0..500 {
            buffer.note(&key, Timestamp::from_millis(10_000 + offset));
        }
        let batch = buffer.take();
        assert_eq!(batch, vec![(key.principal.key_id().clone(), Timestamp::from_millis(10_000))]);
        // A second later the key is noted again, with the newer time.
        buffer.note(&key, Timestamp::from_millis(11_000));
        buffer.note(&key, Timestamp::from_millis(11_500));
        assert_eq!(buffer.take(), vec![(key.principal.key_id().clone(), Timestamp::from_millis(11_000))]);
        assert!(buffer.take().is_empty());
    }
}
