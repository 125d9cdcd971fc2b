//! Key verification, with a cache that can never outlive a revocation.
//!
//! A request's key is parsed (prefix, length, base62, CRC32) before anything else, so
//! look-alikes cost no lookup. Then its digest (HMAC-SHA-256 under the server's digest key)
//! is looked up in an in-process cache, and on a miss in the database, one indexed read.
//!
//! # Why a cached verdict can never accept a revoked key
//!
//! Several processes may share one database, and each has its own cache. The rule that keeps
//! them honest:
//!
//! 1. A cache entry records `confirmed_at`, the instant *before* the database read that
//!    produced it began, and is trusted only until `confirmed_at + ttl`.
//! 2. Every revocation (revoke, rotate without grace, archive, plan change) commits, and then
//!    waits `ttl` before it answers ([`Verifier::revocation_barrier`]).
//!
//! Any read that saw the key as live began before the revocation committed, so its entry
//! expires before the revocation answers. After the revoking request returns, no process
//! holds a trusted entry that accepts the key, and the next request reads the database. The
//! wait is measured on each process's monotonic clock; only elapsed time matters, never
//! agreement between machines' wall clocks.
//!
//! Expiry (`expires_at`, for keys in a rotation grace period) is checked against the request's
//! `now` on every use, cached or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tessera_domain::api_key::{KeyDigest, KeyHasher, ParsedApiKey};
use tessera_domain::ids::{ApiKeyId, TeamId};
use tessera_domain::principal::Principal;
use tessera_domain::time::Timestamp;
use tessera_store::{KeyLookup, KeyOwner, KeyUser, Store, StoreError};
use tokio::time::Instant;

use crate::auth::last_used::LastUsedBuffer;
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};

/// A key that verified, with what the API needs to answer `/v0/me` without another read.
#[derive(Debug)]
pub struct VerifiedKey {
    pub principal: Principal,
    pub key_name: String,
    pub key_created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub user: Option<KeyUser>,
    /// The key's own rate limit (requests per minute), if it has one.
    pub rate_limit_per_minute: Option<i64>,
    /// The last use this process queued for writing, in ms; keeps `last_used` writes rare.
    pub(crate) last_noted_ms: AtomicI64,
}

/// Why a credential was refused. All but `PlanRequired` answer the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    Archived,
    /// A service-account key of a team that is no longer on the Enterprise plan: 403.
    PlanRequired,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Missing => "missing",
            RejectReason::Malformed => "malformed",
            RejectReason::Unknown => "unknown",
            RejectReason::Revoked => "revoked",
            RejectReason::Expired => "expired",
            RejectReason::Archived => "archived",
            RejectReason::PlanRequired => "plan_required",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rejection {
    pub reason: RejectReason,
    /// Known when the key exists: lets the audit log say which key was tried.
    pub key_id: Option<ApiKeyId>,
    pub team_id: Option<TeamId>,
}

impl Rejection {
    pub fn bare(reason: RejectReason) -> Rejection {
        Rejection { reason, key_id: None, team_id: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("credential rejected: {}", .0.reason.as_str())]
    Rejected(Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
enum Verdict {
    Live(Arc<VerifiedKey>),
    Rejected(Rejection),
}

#[derive(Clone)]
struct CacheEntry {
    digest: KeyDigest,
    verdict: Verdict,
    confirmed_at: Instant,
}

pub struct Verifier {
    store: Store,
    hasher: KeyHasher,
    cache: quick_cache::sync::Cache<KeyDigest, CacheEntry>,
    ttl: Duration,
    metrics: Arc<Metrics>,
    last_used: Arc<LastUsedBuffer>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(
        store: Store,
        hasher: KeyHasher,
        ttl: Duration,
        capacity: usize,
        metrics: Arc<Metrics>,
        last_used: Arc<LastUsedBuffer>,
    ) -> Verifier {
        Verifier {
            store,
            hasher,
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            ttl,
            metrics,
            last_used,
        }
    }

    /// Verifies a presented key at `now`.
    pub async fn verify(&self, presented: &str, now: Timestamp) -> Result<Arc<VerifiedKey>, VerifyError> {
        let outcome = self.verify_inner(presented, now).await;
        match &outcome {
            Ok(key) => {
                self.metrics.key_verifications.get_or_create(&ResultLabels { result: "valid" }).inc();
                self.last_used.note(key, now);
            }
            Err(VerifyError::Rejected(rejection)) => {
                self.metrics.key_verifications.get_or_create(&ResultLabels { result: "rejected" }).inc();
                self.note_failure(rejection.reason);
            }
            Err(VerifyError::Store(_)) => {
                self.metrics.key_verifications.get_or_create(&ResultLabels { result: "error" }).inc();
            }
        }
        outcome
    }

    /// Counts a failure that never reached verification (no or unreadable header).
    pub fn note_failure(&self, reason: RejectReason) {
        self.metrics.auth_failures.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
    }

    async fn verify_inner(&self, presented: &str, now: Timestamp) -> Result<Arc<VerifiedKey>, VerifyError> {
        let parsed = ParsedApiKey::parse(presented)
            .map_err(|_| VerifyError::Rejected(Rejection::bare(RejectReason::Malformed)))?;
        let digest = self.hasher.digest_parsed(&parsed);
        let verdict = match self.cache.get(&digest) {
            Some(entry) if entry.confirmed_at.elapsed() < self.ttl && entry.digest.ct_eq(&digest) => {
                self.metrics.key_cache_hits.inc();
                entry.verdict
            }
            _ => {
                self.metrics.key_cache_misses.inc();
                let confirmed_at = Instant::now();
                let lookup = self.store.lookup_key(&digest).await?;
                let verdict = verdict_from(lookup, &digest);
                self.cache.insert(digest, CacheEntry { digest, verdict: verdict.clone(), confirmed_at });
                verdict
            }
        };
        match verdict {
            Verdict::Rejected(rejection) => Err(VerifyError::Rejected(rejection)),
            Verdict::Live(key) if key.expires_at.is_some_and(|expires_at| expires_at <= now) => {
                Err(VerifyError::Rejected(Rejection {
                    reason: RejectReason::Expired,
                    key_id: Some(key.principal.key_id().clone()),
                    team_id: Some(key.principal.team_id().clone()),
                }))
            }
            Verdict::Live(key) => Ok(key),
        }
    }

    /// Waits until no process can still trust a cache entry read before a revocation that
    /// has just committed. Call it after the commit and before answering.
    pub async fn revocation_barrier(&self) {
        tokio::time::sleep(self.ttl).await;
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn verdict_from(lookup: Option<KeyLookup>, digest: &KeyDigest) -> Verdict {
    let Some(lookup) = lookup.filter(|found| found.digest.ct_eq(digest)) else {
        return Verdict::Rejected(Rejection::bare(RejectReason::Unknown));
    };
    let reject = |reason| {
        Verdict::Rejected(Rejection {
            reason,
            key_id: Some(lookup.key_id.clone()),
            team_id: Some(lookup.team_id.clone()),
        })
    };
    if lookup.owner_archived_at.is_some() {
        return reject(RejectReason::Archived);
    }
    if lookup.revoked_at.is_some() {
        return reject(RejectReason::Revoked);
    }
    let principal = match (&lookup.owner, &lookup.user) {
        (KeyOwner::ServiceAccount(id), _) => {
            if !lookup.team_plan.allows_service_accounts() {
                return reject(RejectReason::PlanRequired);
            }
            Principal::ServiceAccount {
                team_id: lookup.team_id.clone(),
                service_account_id: id.clone(),
                key_id: lookup.key_id.clone(),
            }
        }
        (KeyOwner::User(id), Some(user)) => Principal::User {
            team_id: lookup.team_id.clone(),
            user_id: id.clone(),
            role: user.role,
            key_id: lookup.key_id.clone(),
        },
        (KeyOwner::User(_), None) => return reject(RejectReason::Unknown),
    };
    Verdict::Live(Arc::new(VerifiedKey {
        principal,
        key_name: lookup.key_name,
        key_created_at: lookup.key_created_at,
        expires_at: lookup.expires_at,
        user: lookup.user,
        rate_limit_per_minute: lookup.rate_limit_per_minute,
        last_noted_ms: AtomicI64::new(i64::MIN),
    }))
}

impl VerifiedKey {
    /// Claims the right to queue a last-use write for `now`, at most once per `granularity`.
    pub(crate) fn claim_last_used(&self, now: Timestamp, granularity: Duration) -> bool {
        let now_ms = now.as_millis();
        let granularity_ms = i64::try_from(granularity.as_millis()).unwrap_or(i64::MAX);
        let previous = self.last_noted_ms.load(Ordering::Relaxed);
        if previous != i64::MIN && now_ms.saturating_sub(previous) < granularity_ms {
            return false;
        }
        self.last_noted_ms.compare_exchange(previous, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}
