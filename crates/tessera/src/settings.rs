//! Settings: flags, then `TESSERA_*` variables (clap reads both), then the optional TOML file,
//! then defaults. Everything is resolved here into typed values, once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tessera_domain::secret::ServerSecret;
use tessera_server::config::ServerConfig;
use tessera_store::StoreOptions;

use crate::cli::{ClientArgs, DatabaseArgs, ServeArgs};

/// The optional `--config` file. Keys match the long flags, with `_` for `-`. Not `Debug`: the
/// database URL may hold a password.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<u32>,
    pub secret_file: Option<PathBuf>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub key_cache_ttl: Option<String>,
    pub key_cache_capacity: Option<usize>,
    pub last_used_flush_interval: Option<String>,
    pub metrics_allow_remote: Option<bool>,
    pub trust_forwarded_for: Option<bool>,
    pub rate_limit_per_minute: Option<u64>,
    pub embedded_worker: Option<bool>,
    pub public_url: Option<String>,
    pub max_run_duration: Option<String>,
    pub git_credentials_file: Option<PathBuf>,
    /// `[[agent_backends]]` tables: agent CLIs offered as models.
    #[serde(default)]
    pub agent_backends: Vec<tessera_server::worker::command::CommandBackend>,
    pub url: Option<String>,
}

impl FileSettings {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileSettings> {
        let Some(path) = path else { return Ok(FileSettings::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the database is, and the secret that goes with it.
pub struct DatabaseSettings {
    pub data_dir: PathBuf,
    pub url: String,
    pub secret_file: PathBuf,
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("data_dir", &self.data_dir)
            .field("url", &tessera_store::redact_password(&self.url))
            .field("secret_file", &self.secret_file)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseSettings {
    pub fn resolve(
        args: &DatabaseArgs,
        file: &FileSettings,
        max_connections: Option<u32>,
    ) -> DatabaseSettings {
        let data_dir =
            args.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| "tessera-data".into());
        let url = args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("tessera.db").display()));
        let secret_file = args
            .secret_file
            .clone()
            .or_else(|| file.secret_file.clone())
            .unwrap_or_else(|| data_dir.join("server.secret"));
        let max_connections = max_connections.or(file.database_max_connections).unwrap_or(10);
        DatabaseSettings { data_dir, url, secret_file, max_connections }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions { url: self.url.clone(), max_connections: self.max_connections }
    }

    /// Creates the data directory when the embedded SQLite database lives there.
    pub fn prepare_data_dir(&self) -> anyhow::Result<()> {
        if self.url.starts_with("sqlite:") {
            std::fs::create_dir_all(&self.data_dir)
                .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        }
        Ok(())
    }

    /// `TESSERA_SECRET` (hex) if set; else the secret file, created with a fresh secret (mode
    /// 0600) on first use. Every process sharing a database must load the same secret.
    pub fn load_secret(&self) -> anyhow::Result<ServerSecret> {
        if let Ok(hex) = std::env::var("TESSERA_SECRET") {
            return ServerSecret::from_hex(&hex).context("TESSERA_SECRET");
        }
        let path = &self.secret_file;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                ServerSecret::from_hex(&text).with_context(|| format!("reading secret {}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let secret = ServerSecret::generate();
                write_private(path, &secret.to_hex())
                    .with_context(|| format!("writing new secret {}", path.display()))?;
                tracing::info!(path = %path.display(), "Generated a new server secret");
                Ok(secret)
            }
            Err(err) => Err(err).with_context(|| format!("reading secret {}", path.display())),
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

pub fn parse_duration(raw: &str, what: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(raw.trim())
        .with_context(|| format!("{what}: {raw:?} is not a duration like 500ms, 30s or 1h"))
}

/// Everything `tessera serve` needs.
#[derive(Debug)]
pub struct ServeSettings {
    pub database: DatabaseSettings,
    pub server: ServerConfig,
    pub log_format: LogFormat,
    pub log_level: tracing::Level,
}

impl ServeSettings {
    pub fn resolve(args: &ServeArgs, file: &FileSettings) -> anyhow::Result<ServeSettings> {
        let database = DatabaseSettings::resolve(&args.database, file, args.database_max_connections);
        let defaults = ServerConfig::default();
        let listen: SocketAddr = match args.listen.as_ref().or(file.listen.as_ref()) {
            Some(raw) => raw.parse().with_context(|| format!("listen: {raw:?} is not ADDR:PORT"))?,
            None => defaults.listen,
        };
        let duration = |flag: &Option<String>, file: &Option<String>, default: Duration, what: &str| {
            flag.as_ref().or(file.as_ref()).map_or(Ok(default), |raw| parse_duration(raw, what))
        };
        let mut server = ServerConfig {
            listen,
            key_cache_ttl: duration(
                &args.key_cache_ttl,
                &file.key_cache_ttl,
                defaults.key_cache_ttl,
                "key_cache_ttl",
            )?,
            key_cache_capacity: args
                .key_cache_capacity
                .or(file.key_cache_capacity)
                .unwrap_or(defaults.key_cache_capacity),
            last_used_flush_interval: duration(
                &args.last_used_flush_interval,
                &file.last_used_flush_interval,
                defaults.last_used_flush_interval,
                "last_used_flush_interval",
            )?,
            metrics_allow_remote: args.metrics_allow_remote.or(file.metrics_allow_remote).unwrap_or(false),
            trust_forwarded_for: args.trust_forwarded_for.or(file.trust_forwarded_for).unwrap_or(false),
            rate_limit_per_minute: args
                .rate_limit_per_minute
                .or(file.rate_limit_per_minute)
                .unwrap_or(defaults.rate_limit_per_minute),
            ..ServerConfig::default()
        };
        server.agent_backends = file.agent_backends.clone();
        server.public_url = args
            .public_url
            .clone()
            .or_else(|| file.public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}"));
        if args.embedded_worker.or(file.embedded_worker).unwrap_or(true) {
            let mut worker = tessera_server::worker::WorkerConfig::new(database.data_dir.join("work"));
            worker.backends = file.agent_backends.clone();
            worker.git_credentials =
                args.git_credentials_file.clone().or_else(|| file.git_credentials_file.clone());
            worker.max_run_duration = duration(
                &args.max_run_duration,
                &file.max_run_duration,
                worker.max_run_duration,
                "max_run_duration",
            )?;
            server.embedded_worker = Some(worker);
        }
        if server.rate_limit_per_minute == 0 {
            bail!("rate_limit_per_minute must be at least 1");
        }
        if server.last_used_flush_interval > Duration::from_secs(60) {
            bail!("last_used_flush_interval must be at most 60s, so lastUsedAt stays accurate to a minute");
        }
        let log_format = match args.log_format.as_deref().or(file.log_format.as_deref()).unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log_format: {other:?} is not text or json"),
        };
        let level = args.log_level.as_deref().or(file.log_level.as_deref()).unwrap_or("info");
        let log_level =
            level.parse().map_err(|_| anyhow::anyhow!("log_level: {level:?} is not a log level"))?;
        Ok(ServeSettings { database, server, log_format, log_level })
    }
}

/// The key-cache TTL an operator command should wait out after a change that revokes access
/// (it is the server's setting; read from the same flags, variables and file).
pub fn key_cache_ttl(file: &FileSettings) -> anyhow::Result<Duration> {
    match std::env::var("TESSERA_KEY_CACHE_TTL").ok().or_else(|| file.key_cache_ttl.clone()) {
        Some(raw) => parse_duration(&raw, "key_cache_ttl"),
        None => Ok(ServerConfig::default().key_cache_ttl),
    }
}

/// Base URL and key for client commands.
pub struct ClientSettings {
    pub base_url: String,
    pub api_key: String,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .finish()
    }
}

impl ClientSettings {
    pub fn resolve(args: &ClientArgs, file: &FileSettings) -> anyhow::Result<ClientSettings> {
        let base_url = args
            .url
            .clone()
            .or_else(|| file.url.clone())
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let api_key = args
            .api_key
            .clone()
            .map(|secret| secret.0)
            .or_else(|| std::env::var("CURSOR_API_KEY").ok())
            .filter(|key| !key.trim().is_empty())
            .ok_or(crate::exit::CliError::NoApiKey)?;
        Ok(ClientSettings { base_url, api_key: api_key.trim().to_owned() })
    }
}
