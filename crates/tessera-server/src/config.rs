//! The server's settings, already resolved from flags, environment and file by the binary.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long a cached key verification is trusted. Also how long a revocation waits before
    /// it answers, so that no process can accept the key afterwards (see `auth::verifier`).
    pub key_cache_ttl: Duration,
    /// How many verified keys the cache holds.
    pub key_cache_capacity: usize,
    /// How often batched `last_used_at` times are written.
    pub last_used_flush_interval: Duration,
    /// Serve `/metrics` to non-loopback clients too.
    pub metrics_allow_remote: bool,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Requests per minute per key, unless the key has its own limit.
    pub rate_limit_per_minute: u64,
    /// Run a worker inside the server process (the default for `tessera serve`).
    pub embedded_worker: Option<crate::worker::WorkerConfig>,
    /// The base URL agents' `url` fields point at.
    pub public_url: String,
    /// Agent CLIs clients may select as models (besides `tessera-scripted`).
    pub agent_backends: Vec<crate::worker::command::CommandBackend>,
}

impl ServerConfig {
    /// The models clients may select; the first is what `default` (or no model) means.
    pub fn models(&self) -> Vec<String> {
        self.agent_backends
            .iter()
            .map(|b| b.model.clone())
            .chain(std::iter::once(crate::worker::scripted::MODEL.to_owned()))
            .collect()
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            key_cache_ttl: Duration::from_secs(1),
            key_cache_capacity: 100_000,
            last_used_flush_interval: Duration::from_secs(15),
            metrics_allow_remote: false,
            trust_forwarded_for: false,
            rate_limit_per_minute: 1200,
            embedded_worker: None,
            public_url: "http://127.0.0.1:8080".to_owned(),
            agent_backends: Vec::new(),
        }
    }
}

/// Request bodies above this size get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
