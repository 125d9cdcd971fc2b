//! Tessera's HTTP API server.
//!
//! Read in this order:
//! - [`App`]: everything a request handler can reach (store, clock, verifier, metrics).
//! - [`api`]: the route table (`api::router`) and one module per resource; handlers are thin:
//!   authenticate, authorize, parse, call the store, shape the answer.
//! - [`extract`]: the `Authenticated` extractor and JSON/query extractors with our errors.
//! - [`auth`]: key verification and its cache.
//! - [`error`]: the one error envelope.
//! - [`middleware`]: request ids, the request log line, HTTP metrics.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
pub mod worker;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use tessera_domain::api_key::KeyHasher;
use tessera_domain::secret::ServerSecret;
use tessera_domain::time::Clock;
use tessera_store::Store;
use tessera_store::audit::StandaloneEvent;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::Verifier;
use crate::auth::last_used::LastUsedBuffer;
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Everything a handler can reach. Built once per process; tests build their own.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub hasher: KeyHasher,
    pub verifier: Verifier,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    pub rate_limiter: ratelimit::RateLimiter,
    last_used: Arc<LastUsedBuffer>,
    failures: mpsc::Sender<StandaloneEvent>,
}

/// The axum state: a cheap handle to the [`App`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The background tasks of an [`App`]: the last-used flusher and the failure-audit writer.
#[derive(Debug)]
pub struct Background {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks after a final flush of what they hold.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl App {
    /// Builds the app and starts its background tasks on the current Tokio runtime.
    pub fn start(
        store: Store,
        secret: &ServerSecret,
        clock: Arc<dyn Clock>,
        config: ServerConfig,
    ) -> (AppState, Background) {
        let hasher = KeyHasher::new(&secret.api_key_digest_key());
        let metrics = Arc::new(Metrics::default());
        let last_used = Arc::new(LastUsedBuffer::default());
        let verifier = Verifier::new(
            store.clone(),
            hasher.clone(),
            config.key_cache_ttl,
            config.key_cache_capacity,
            metrics.clone(),
            last_used.clone(),
        );
        let (failures, failure_events) = mpsc::channel(auth::failures::CHANNEL_CAPACITY);
        let (shutdown, shutdown_rx) = watch::channel(false);

        let flusher = {
            let store = store.clone();
            let last_used = last_used.clone();
            let interval = config.last_used_flush_interval;
            let mut shutdown_rx = shutdown_rx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => last_used.flush(&store).await,
                        _ = shutdown_rx.changed() => break,
                    }
                }
                last_used.flush(&store).await;
            })
        };
        let writer =
            tokio::spawn(auth::failures::run_writer(store.clone(), failure_events, shutdown_rx.clone()));
        let mut tasks = vec![flusher, writer];
        if let Some(worker) = config.embedded_worker.clone() {
            let run = worker::run_worker(store.clone(), clock.clone(), worker, shutdown_rx.clone());
            tasks.push(tokio::spawn(async move {
                let _ = run.await;
            }));
        }
        // Runs whose worker died are ended (or retried) even when no worker of ours is running.
        let recovery = {
            let (store, clock, mut shutdown_rx) = (store.clone(), clock.clone(), shutdown_rx);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                            if let Err(err) = store.recover_expired_leases(clock.now()).await {
                                tracing::warn!(error = %err, "Could not recover expired run leases");
                            }
                        }
                        _ = shutdown_rx.changed() => break,
                    }
                }
            })
        };
        tasks.push(recovery);
        let rate_limiter = ratelimit::RateLimiter::new(config.rate_limit_per_minute);
        let app = App { store, clock, hasher, verifier, metrics, config, rate_limiter, last_used, failures };
        (AppState(Arc::new(app)), Background { shutdown, tasks })
    }

    /// Writes batched last-used times now (tests and shutdown).
    pub async fn flush_last_used(&self) {
        self.last_used.flush(&self.store).await;
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = api::router(state);
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
