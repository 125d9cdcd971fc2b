//! Per-key rate limits: a token bucket for each API key, in this process's memory.
//!
//! A key's limit is its own `rate_limit_per_minute` if set, else the server's default (1200 per
//! minute, so automation that polls every 100 ms never hits it). A bucket holds a quarter of a
//! minute's allowance, so short bursts pass, and refills continuously. Buckets live in shards
//! behind separate locks, and a refused request costs one lock and no database work, so one
//! key's flood does not slow another key's requests.
//!
//! Every authenticated response says where the key stands: `X-RateLimit-Limit` (requests per
//! minute), `X-RateLimit-Remaining` (requests that would pass now) and `X-RateLimit-Reset`
//! (seconds until the bucket is full again). A refused request gets 429 `rate_limit_exceeded`
//! with `Retry-After` (seconds until one request would pass).
//!
//! With several server processes, each keeps its own buckets, so a key's effective limit is
//! the per-process limit times the number of processes behind the load balancer.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Instant;

use tessera_domain::ids::ApiKeyId;

const SHARDS: usize = 64;

/// What the bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit_per_minute: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full.
    pub reset_seconds: u64,
    /// Seconds until one more request would pass (0 when allowed).
    pub retry_after_seconds: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    default_per_minute: u64,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<ApiKeyId, Bucket>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("default_per_minute", &self.default_per_minute)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(default_per_minute: u64) -> RateLimiter {
        RateLimiter {
            default_per_minute: default_per_minute.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token from `key_id`'s bucket at `now`, if there is one.
    pub fn check(&self, key_id: &ApiKeyId, own_limit: Option<i64>, now: Instant) -> RateDecision {
        let limit = own_limit
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0)
            .unwrap_or(self.default_per_minute);
        let per_second = limit as f64 / 60.0;
        let capacity = (limit as f64 / 4.0).max(1.0);
        let shard = &self.shards[(self.hasher.hash_one(key_id) as usize) % SHARDS];
        let mut buckets = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Look up before inserting: the common case must not allocate a key.
        if !buckets.contains_key(key_id) {
            buckets.insert(key_id.clone(), Bucket { tokens: capacity, updated: now });
        }
        let Some(bucket) = buckets.get_mut(key_id) else {
            return RateDecision {
                allowed: true,
                limit_per_minute: limit,
                remaining: 0,
                reset_seconds: 0,
                retry_after_seconds: 0,
            };
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let seconds = |tokens: f64| (tokens / per_second).max(0.0).ceil() as u64;
        RateDecision {
            allowed,
            limit_per_minute: limit,
            remaining: bucket.tokens.floor() as u64,
            reset_seconds: seconds(capacity - bucket.tokens),
            retry_after_seconds: if allowed { 0 } else { seconds(1.0 - bucket.tokens).max(1) },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_a_quarter_minute_then_refusal_then_refill() {
        let limiter = RateLimiter::new(60);
        let key = ApiKeyId::generate();
        let start = Instant::now();
        for expected_remaining in (0..15).rev() {
            let decision = limiter.check(&key, None, start);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            assert_eq!(decision.limit_per_minute, 60);
        }
        let refused = limiter.check(&key, None, start);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_seconds, 1);
        assert_eq!(refused.reset_seconds, 15);
        // One token a second comes back.
        assert!(limiter.check(&key, None, start + Duration::from_millis(1000)).allowed);
        assert!(!limiter.check(&key, None, start + Duration::from_millis(1100)).allowed);
    }

    #[test]
    fn keys_have_their_own_buckets_and_limits() {
        let limiter = RateLimiter::new(60);
        let (noisy, quiet) = (ApiKeyId::generate(), ApiKeyId::generate());
        let now = Instant::now();
        while limiter.check(&noisy, None, now).allowed {}
        assert!(limiter.check(&quiet, None, now).allowed);
        let strict = ApiKeyId::generate();
        assert!(limiter.check(&strict, Some(4), now).allowed);
        assert!(!limiter.check(&strict, Some(4), now).allowed, "4 per minute: a bucket of one");
        assert_eq!(limiter.check(&quiet, Some(1200), now).limit_per_minute, 1200);
    }
}
