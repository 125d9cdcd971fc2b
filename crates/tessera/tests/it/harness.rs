//! The one test harness: `TestApp` starts the real HTTP server on a random port over a fresh
//! database (a SQLite file in a temporary directory, or a PostgreSQL schema of its own), and
//! gives tests an HTTP client, the store, and fixture builders.
//!
//! PostgreSQL comes from `TESSERA_TEST_DATABASE_URL` (default: the local server on
//! 127.0.0.1:5432, user `postgres`). When it cannot be reached the PostgreSQL half of the suite
//! fails, unless `TESSERA_TEST_SKIP_POSTGRES=1` is set outside CI; under `CI=true` it always
//! runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use tessera_domain::api_key::KeyKind;
use tessera_domain::audit::AuditContext;
use tessera_domain::ids::{TeamId, UserId, generate_user_number};
use tessera_domain::names::{Email, TeamName};
use tessera_domain::principal::Actor;
use tessera_domain::secret::ServerSecret;
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::{Clock, SystemClock};
use tessera_server::config::ServerConfig;
use tessera_server::keys::mint_key;
use tessera_server::{App, AppState, Background};
use tessera_store::teams::NewTeam;
use tessera_store::users::NewUser;
use tessera_store::{Backend, Store, StoreOptions};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Key-cache TTL in tests: short, so revocations answer quickly, but long enough that warm
/// requests really hit the cache.
pub const TEST_CACHE_TTL: Duration = Duration::from_millis(150);

/// A fresh, empty database for one test. Dropped with the test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("tessera.db").display());
                Some(TestDb { backend, url, _dir: Some(dir), pg_schema: None })
            }
            Backend::Postgres => {
                let admin_url =
                    std::env::var("TESSERA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
                let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
                        let skip = std::env::var("TESSERA_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1");
                        if skip && !in_ci {
                            eprintln!(
                                "SKIPPING PostgreSQL test: TESSERA_TEST_SKIP_POSTGRES=1 and {admin_url} unreachable: {err}"
                            );
                            return None;
                        }
                        panic!(
                            "PostgreSQL at {admin_url} is unreachable ({err}). Start it, point \
                             TESSERA_TEST_DATABASE_URL elsewhere, or (outside CI) set TESSERA_TEST_SKIP_POSTGRES=1"
                        );
                    }
                };
                let schema = format!("t_{}", uuid_simple());
                sqlx::query(&format!("create schema {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
                Some(TestDb { backend, url, _dir: None, pg_schema: Some((admin_url, schema)) })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = self.pg_schema.take() {
            // Drop runs outside any runtime we may block; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    sqlx::query(&format!("drop schema if exists {schema} cascade"))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub fn uuid_simple() -> String {
    tessera_domain::ids::AuditEventId::generate().as_str().trim_start_matches("evt_").to_owned()
}

/// Everything the server logged in this test process, for "no secret in logs" checks.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().expect("log buffer")).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        if std::env::var("TEST_LOG").is_ok() {
            let _ = std::io::stderr().write_all(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let buffer = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || BufferWriter(buffer.clone()))
            .try_init();
    });
}

/// One running server over a test database.
pub struct TestApp {
    pub base_url: String,
    pub store: Store,
    pub state: AppState,
    pub db: Arc<TestDb>,
    pub secret_hex: String,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    background: Option<Background>,
    _work_dir: Option<tempfile::TempDir>,
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        key_cache_ttl: TEST_CACHE_TTL,
        key_cache_capacity: 10_000,
        last_used_flush_interval: Duration::from_millis(100),
        metrics_allow_remote: false,
        trust_forwarded_for: false,
        rate_limit_per_minute: 1200,
        embedded_worker: None,
        public_url: "http://tessera.test".to_owned(),
        agent_backends: Vec::new(),
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let db = Arc::new(TestDb::new(backend).await?);
        let secret = ServerSecret::generate();
        Some(TestApp::start(db, &secret, test_config(), Arc::new(SystemClock)).await)
    }

    /// A server with an embedded worker that executes runs quickly (short lease and heartbeat).
    pub async fn spawn_with_worker(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with_worker_limited(backend, Duration::from_secs(60)).await
    }

    /// A worker whose runs expire after `max_run_duration`.
    pub async fn spawn_with_worker_limited(backend: Backend, max_run_duration: Duration) -> Option<TestApp> {
        TestApp::spawn_with_worker_using(backend, max_run_duration, Vec::new()).await
    }

    /// A worker whose git reads credentials from `file`.
    pub async fn spawn_with_worker_credentials(
        backend: Backend,
        file: Option<std::path::PathBuf>,
    ) -> Option<TestApp> {
        TestApp::spawn_with_worker_configured(backend, Duration::from_secs(60), Vec::new(), file).await
    }

    /// A worker with agent CLIs configured as models.
    pub async fn spawn_with_worker_using(
        backend: Backend,
        max_run_duration: Duration,
        agent_backends: Vec<tessera_server::worker::command::CommandBackend>,
    ) -> Option<TestApp> {
        TestApp::spawn_with_worker_configured(backend, max_run_duration, agent_backends, None).await
    }

    async fn spawn_with_worker_configured(
        backend: Backend,
        max_run_duration: Duration,
        agent_backends: Vec<tessera_server::worker::command::CommandBackend>,
        git_credentials: Option<std::path::PathBuf>,
    ) -> Option<TestApp> {
        let work_dir = tempfile::tempdir().expect("work dir");
        let mut worker = tessera_server::worker::WorkerConfig::new(work_dir.path().to_path_buf());
        worker.lease = Duration::from_secs(3);
        worker.heartbeat_interval = Duration::from_millis(200);
        worker.poll_interval = Duration::from_millis(100);
        worker.max_run_duration = max_run_duration;
        worker.backends = agent_backends.clone();
        worker.git_credentials = git_credentials;
        let config = ServerConfig { embedded_worker: Some(worker), agent_backends, ..test_config() };
        let mut app = TestApp::spawn_with_config(backend, config).await?;
        app._work_dir = Some(work_dir);
        Some(app)
    }

    pub async fn spawn_with_config(backend: Backend, config: ServerConfig) -> Option<TestApp> {
        let db = Arc::new(TestDb::new(backend).await?);
        Some(TestApp::start(db, &ServerSecret::generate(), config, Arc::new(SystemClock)).await)
    }

    /// A second server over the same database, with its own pool and its own key cache: what
    /// another process of the deployment would be.
    pub async fn spawn_peer(&self) -> TestApp {
        let secret = ServerSecret::from_hex(&self.secret_hex).expect("secret");
        TestApp::start(self.db.clone(), &secret, test_config(), Arc::new(SystemClock)).await
    }

    async fn start(
        db: Arc<TestDb>,
        secret: &ServerSecret,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> TestApp {
        install_log_capture();
        let options = StoreOptions { url: db.url.clone(), max_connections: 5 };
        let store = Store::open(&options, secret).await.expect("open store");
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (state, background) = App::start(store.clone(), secret, clock, config);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tessera_server::serve(listener, state.clone(), async move {
            let _ = shutdown_rx.await;
        }));
        TestApp {
            base_url: format!("http://{addr}"),
            store,
            state,
            db,
            secret_hex: secret.to_hex(),
            http: reqwest::Client::new(),
            shutdown: Some(shutdown),
            background: Some(background),
            _work_dir: None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// Stops the server and flushes its background tasks.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(background) = self.background.take() {
            background.shutdown().await;
        }
    }

    /// A team created the way `tessera init` does, with an owner who holds a key.
    pub async fn team(&self, name: &str, plan: Plan, seats: Option<i64>) -> TeamFixture {
        let hasher = &self.state.hasher;
        let (plain, key) = mint_key(hasher, KeyKind::User, "default", None);
        let team = NewTeam {
            id: TeamId::generate(),
            name: TeamName::parse(name).expect("team name"),
            plan,
            seat_limit: seats,
        };
        let owner = NewUser {
            id: UserId::generate(),
            number: generate_user_number(),
            email: Email::parse(&format!("owner@{}.test", name.to_lowercase().replace(' ', "-")))
                .expect("email"),
            name: None,
            role: Role::Owner,
        };
        let (team, user) = self
            .store
            .create_team(&team, &owner, Some(&key), &operator_context())
            .await
            .expect("create team");
        TeamFixture { id: team.id, owner_id: user.id, owner_key: plain.expose_secret().to_owned() }
    }

    /// Adds a human with a key, the way `tessera users add --api-key` does.
    pub async fn user(&self, team: &TeamFixture, email: &str, role: Role) -> (UserId, String) {
        let (plain, key) = mint_key(&self.state.hasher, KeyKind::User, "default", None);
        let user = NewUser {
            id: UserId::generate(),
            number: generate_user_number(),
            email: Email::parse(email).expect("email"),
            name: Some(tessera_domain::names::PersonName::parse("Ada Lovelace").expect("name")),
            role,
        };
        let created =
            self.store.add_user(&team.id, &user, Some(&key), &operator_context()).await.expect("add user");
        (created.id, plain.expose_secret().to_owned())
    }

    pub fn as_key(&self, key: &str) -> Caller {
        Caller {
            http: self.http.clone(),
            base_url: self.base_url.clone(),
            auth: Auth::Bearer(key.to_owned()),
        }
    }

    pub fn as_basic(&self, key: &str) -> Caller {
        Caller { http: self.http.clone(), base_url: self.base_url.clone(), auth: Auth::Basic(key.to_owned()) }
    }

    pub fn anonymous(&self) -> Caller {
        Caller { http: self.http.clone(), base_url: self.base_url.clone(), auth: Auth::None }
    }

    /// Creates a service account as `admin_key`; returns (account id, key id, key).
    pub async fn service_account(&self, admin_key: &str, name: &str) -> (String, String, String) {
        let reply = self
            .as_key(admin_key)
            .post("/v1/service-accounts", serde_json::json!({ "name": name, "description": "test" }))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (
            reply.body["serviceAccount"]["id"].as_str().expect("id").to_owned(),
            reply.body["apiKey"]["id"].as_str().expect("key id").to_owned(),
            reply.body["apiKey"]["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Rows in a table, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar_i64(&format!("select count(*) from {table}")).await
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let pool = self.raw_pool().await;
        let value: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("scalar query");
        pool.close().await;
        value
    }

    /// A plain connection pool to the test database, for looking at (and tampering with) rows.
    pub async fn raw_pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&self.db.url).await.expect("raw pool")
    }
}

pub fn operator_context() -> AuditContext {
    AuditContext {
        actor: Actor::Operator { name: "test".into() },
        client_ip: None,
        request_id: None,
        at: SystemClock.now(),
    }
}

pub struct TeamFixture {
    pub id: TeamId,
    pub owner_id: UserId,
    pub owner_key: String,
}

#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic(String),
}

/// An HTTP client acting with one credential.
#[derive(Clone)]
pub struct Caller {
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Caller {
    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(reqwest::Method::POST, path, None).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request")).await
    }

    /// A request builder with this caller's credential, for raw bodies and headers.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base_url));
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(key) => request.bearer_auth(key),
            Auth::Basic(key) => request.basic_auth(key, Some("")),
        }
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

/// Polls a v0 agent until its status is terminal (or 30 s pass) and returns it.
pub async fn wait_for_end(caller: &Caller, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let agent = caller.get(&format!("/v0/agents/{id}")).await;
        assert_eq!(agent.status, 200, "{}", agent.text);
        let status = agent.body["status"].as_str().unwrap_or("").to_owned();
        if !["CREATING", "RUNNING"].contains(&status.as_str()) || std::time::Instant::now() > deadline {
            return agent.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Declares each test once and runs it on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($app: $crate::harness::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::harness::TestApp::spawn(tessera_store::Backend::Sqlite).await.expect("sqlite");
                    run(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::harness::TestApp::spawn(tessera_store::Backend::Postgres).await {
                        run(app).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// A real git repository to run agents on: a bare "origin" with one commit on `main`.
pub struct GitFixture {
    _dir: tempfile::TempDir,
    pub bare: std::path::PathBuf,
    /// `file://…/origin.git`, usable as a clone URL.
    pub clone_url: String,
}

pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.test", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl GitFixture {
    pub fn new() -> GitFixture {
        let dir = tempfile::tempdir().expect("git dir");
        let bare = dir.path().join("origin.git");
        git(dir.path(), &["init", "--quiet", "--bare", "origin.git"]);
        let seed = dir.path().join("seed");
        git(dir.path(), &["clone", "--quiet", bare.to_str().unwrap(), "seed"]);
        std::fs::write(seed.join("README.md"), "# Widgets\n").unwrap();
        git(&seed, &["add", "README.md"]);
        git(&seed, &["commit", "--quiet", "-m", "Initial commit"]);
        git(&seed, &["push", "--quiet", "origin", "HEAD:main"]);
        let clone_url = format!("file://{}", bare.display());
        GitFixture { _dir: dir, bare, clone_url }
    }

    /// The directory that holds `origin.git`.
    pub fn root(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A file's content on a branch of origin, if the branch and file exist.
    pub fn file_on(&self, branch: &str, path: &str) -> Option<String> {
        let output = std::process::Command::new("git")
            .args(["--git-dir", self.bare.to_str().unwrap(), "show", &format!("{branch}:{path}")])
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The message of the newest commit on a branch of origin.
    pub fn last_message(&self, branch: &str) -> String {
        git(&self.bare, &["log", "-1", "--format=%B", branch])
    }
}

/// Like `on_both_backends!`, with an embedded worker executing runs.
macro_rules! on_both_backends_with_worker {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($app: $crate::harness::TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::harness::TestApp::spawn_with_worker(tessera_store::Backend::Sqlite).await.expect("sqlite");
                    run(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::harness::TestApp::spawn_with_worker(tessera_store::Backend::Postgres).await {
                        run(app).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use on_both_backends_with_worker;
