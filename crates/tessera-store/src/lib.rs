//! Tessera's storage: one interface ([`Store`]) over two real backends, SQLite and PostgreSQL.
//!
//! Both backends run the same SQL through sqlx's `Any` driver. The SQL is written in the subset
//! the two share (`$n` placeholders in order of first use, `returning`, partial unique indexes,
//! bigint millisecond timestamps), and each backend has its own migration tree under
//! `migrations/`, kept in step by name. Where the dialects must differ, the code branches on
//! [`Backend`] in one place (see `Store::begin_write`).
//!
//! Every write that changes what a principal can do happens in one transaction together with
//! its audit event (see [`audit`]). Reads that the API serves filter by team id first, so a
//! foreign id is indistinguishable from a missing one.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod integrations;
mod migrations;
pub mod models;
pub mod service_accounts;
pub mod teams;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tessera_domain::secret::ServerSecret;

pub use models::*;

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything that can go wrong in the store. The domain variants are decided inside the
/// transaction that would have made the change, so the check and the change cannot race.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("the pagination cursor is not valid")]
    InvalidCursor,
    #[error("a team named {0:?} already exists")]
    TeamNameTaken(String),
    #[error("a user with e-mail {0:?} is already in this team")]
    EmailTaken(String),
    #[error("an active service account named {0:?} already exists")]
    NameTaken(String),
    #[error("all {limit} seats of the team are taken")]
    SeatLimitReached { limit: i64 },
    #[error("service accounts are available on the Enterprise plan only")]
    PlanRequired,
    #[error("the service account is archived")]
    ServiceAccountArchived,
    #[error("the service account already has {max} live keys")]
    KeyLimitReached { max: i64 },
    #[error("the key is revoked or expired")]
    KeyNotActive,
    #[error("the key was already rotated")]
    AlreadyRotated,
    #[error("the agent is archived")]
    AgentArchived,
    #[error("an agent with this id already exists")]
    AgentIdTaken,
    #[error("another run of the agent is active")]
    AgentBusy,
    #[error("the agent has no active run")]
    RunNotActive,
    #[error("the worker no longer holds the run's lease")]
    LeaseLost,
    #[error("the database holds a secret fingerprint that does not match this server's secret")]
    SecretMismatch,
    #[error("database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
    }
}

/// How to open the database.
#[derive(Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[REDACTED]@host/db`, for logs and `Debug`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:[REDACTED]@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_password("postgres://u:p4ss@h:5432/db"),
            "postgres://u:[REDACTED]@h:5432/db"
        );
        assert_eq!(super::redact_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_password("sqlite://data/t.db"), "sqlite://data/t.db");
        let options = super::StoreOptions { url: "postgres://u:p4ss@h/db".into(), max_connections: 1 };
        assert!(!format!("{options:?}").contains("p4ss"));
    }
}

/// The storage handle. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite's one writer, in this process (see `begin_write`).
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    backend: Backend,
    audit_key: [u8; 32],
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Store {
    /// Connects, applies pending migrations, and checks (or, on a new database, records) the
    /// fingerprint of the server secret.
    pub async fn open(options: &StoreOptions, secret: &ServerSecret) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(&options.url)?;
        let connect_options = AnyConnectOptions::from_str(&options.url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes a
                        // second writer (another process) wait instead of failing.
                        conn.execute("pragma journal_mode = wal").await?;
                        conn.execute("pragma synchronous = normal").await?;
                        conn.execute("pragma busy_timeout = 10000").await?;
                        conn.execute("pragma foreign_keys = on").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options)
            .await?;
        migrations::run(&pool, backend).await?;
        let store = Store {
            pool,
            sqlite_writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            backend,
            audit_key: secret.audit_chain_key(),
        };
        store.check_secret_fingerprint(&secret.fingerprint()).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `select 1`, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction for writing. On SQLite it takes the write lock up front (`begin
    /// immediate`): a deferred transaction that reads and then writes fails with
    /// `SQLITE_BUSY` instead of waiting when another connection wrote in between.
    ///
    /// SQLite also queues this process's writers on an async mutex first: they then take turns
    /// in order instead of meeting `SQLITE_BUSY` and sleeping in SQLite's busy handler, which
    /// backs off by up to 100 ms at a time. The busy timeout still covers other processes.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let (tx, turn) = match self.backend {
            Backend::Sqlite => {
                let turn = self.sqlite_writer.clone().lock_owned().await;
                (self.pool.begin_with("begin immediate").await?, Some(turn))
            }
            Backend::Postgres => (self.pool.begin().await?, None),
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    async fn check_secret_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let stored: Option<String> = sqlx::query_scalar("select value from server_settings where name = $1")
            .bind("secret_fingerprint")
            .fetch_optional(&mut *tx)
            .await?;
        match stored {
            Some(stored) if stored == fingerprint => {}
            Some(_) => return Err(StoreError::SecretMismatch),
            None => {
                sqlx::query("insert into server_settings (name, value) values ($1, $2)")
                    .bind("secret_fingerprint")
                    .bind(fingerprint)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A write transaction; on SQLite it also holds this process's writer turn until it ends.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// An opaque keyset cursor: base64url of the sort key of the last item on the previous page.
pub fn encode_cursor(sort_key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort_key)
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()
}
