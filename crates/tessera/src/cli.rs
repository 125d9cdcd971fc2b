//! The command line: one binary, one subcommand per process role or client action.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tessera: service accounts, API keys and audit for automating coding agents.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// An optional TOML file of settings (flags and TESSERA_* variables take precedence).
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (embedded SQLite in ./tessera-data unless --database-url says otherwise).
    Serve(ServeArgs),
    /// Run agent runs for one team, as a separate process (needs a service-account key with the
    /// worker permission, and the database and server secret the servers use).
    Worker(WorkerArgs),
    /// Operator: create a team with its first owner, and print the owner's API key once.
    Init(InitArgs),
    /// Operator: manage a team's human users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Operator: manage teams.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Manage service accounts over the API (needs an admin's key).
    #[command(subcommand, name = "service-accounts", alias = "sa")]
    ServiceAccounts(ServiceAccountsCommand),
    /// Show who the configured API key belongs to.
    Whoami(ClientArgs),
    /// Read and verify the team's audit log (needs an admin's key).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Authorize repositories for agent runs (team-level needs an admin's key).
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
}

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// Authorize plain-git repositories, by URL (and where workers clone them from).
    AddGit {
        #[command(flatten)]
        client: ClientArgs,
        /// team (service accounts may use it; admins only) or personal (yours alone).
        #[arg(long)]
        scope: String,
        #[arg(long)]
        name: String,
        /// URL[=CLONE_URL], e.g. https://github.com/acme/widgets=file:///srv/git/widgets.git
        #[arg(long = "repo", value_name = "URL[=CLONE_URL]", required = true)]
        repos: Vec<String>,
    },
    /// List the team's integrations and your personal ones.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove an integration.
    Remove {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
}

/// Where the database and the server secret are.
#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// Directory for the embedded SQLite database and the server secret [default: ./tessera-data]
    #[arg(long, env = "TESSERA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// postgres://… or sqlite://… [default: sqlite in the data directory]
    #[arg(long, env = "TESSERA_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// File holding the server secret (64 hex characters) [default: DATA_DIR/server.secret]
    #[arg(long, env = "TESSERA_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "TESSERA_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level: error, warn, info, debug or trace [default: info]
    #[arg(long, env = "TESSERA_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// How long a key verification is cached; also how long a revocation waits to answer [default: 1s]
    #[arg(long, env = "TESSERA_KEY_CACHE_TTL", value_name = "DURATION")]
    pub key_cache_ttl: Option<String>,
    /// How many verified keys the cache holds [default: 100000]
    #[arg(long, env = "TESSERA_KEY_CACHE_CAPACITY", value_name = "N")]
    pub key_cache_capacity: Option<usize>,
    /// How often last-used times are written [default: 15s]
    #[arg(long, env = "TESSERA_LAST_USED_FLUSH_INTERVAL", value_name = "DURATION")]
    pub last_used_flush_interval: Option<String>,
    /// Serve /metrics to non-loopback clients too [default: false]
    #[arg(long, env = "TESSERA_METRICS_ALLOW_REMOTE", value_name = "BOOL")]
    pub metrics_allow_remote: Option<bool>,
    /// Take client IPs from X-Forwarded-For (only behind your own proxy) [default: false]
    #[arg(long, env = "TESSERA_TRUST_FORWARDED_FOR", value_name = "BOOL")]
    pub trust_forwarded_for: Option<bool>,
    /// Requests per minute per API key, unless the key has its own limit [default: 1200]
    #[arg(long, env = "TESSERA_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub rate_limit_per_minute: Option<u64>,
    /// Run a worker inside the server to execute agent runs [default: true]
    #[arg(long, env = "TESSERA_EMBEDDED_WORKER", value_name = "BOOL")]
    pub embedded_worker: Option<bool>,
    /// The base URL clients reach this server at, for links in responses [default: http://LISTEN]
    #[arg(long, env = "TESSERA_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Longest an agent run may take before it ends EXPIRED [default: 1h]
    #[arg(long, env = "TESSERA_MAX_RUN_DURATION", value_name = "DURATION")]
    pub max_run_duration: Option<String>,
    /// Git credential-store file for clone URLs that need a password or token
    #[arg(long, env = "TESSERA_GIT_CREDENTIALS_FILE", value_name = "FILE")]
    pub git_credentials_file: Option<PathBuf>,
    /// Database connection pool size [default: 10]
    #[arg(long, env = "TESSERA_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    pub database_max_connections: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A service-account key with the worker permission; prefer TESSERA_API_KEY (or CURSOR_API_KEY).
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<SecretArg>,
    /// Where runs check out repositories [default: DATA_DIR/work]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// How long a claimed run stays this worker's without a heartbeat [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub lease: Option<String>,
    /// Longest a run may take before it ends EXPIRED [default: 1h]
    #[arg(long, env = "TESSERA_MAX_RUN_DURATION", value_name = "DURATION")]
    pub max_run_duration: Option<String>,
    /// Git credential-store file for clone URLs that need a password or token
    #[arg(long, env = "TESSERA_GIT_CREDENTIALS_FILE", value_name = "FILE")]
    pub git_credentials_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The team's name (unique on this server).
    #[arg(long)]
    pub team: String,
    /// The first owner's e-mail address.
    #[arg(long)]
    pub admin_email: String,
    /// The first owner's display name.
    #[arg(long)]
    pub admin_name: Option<String>,
    /// free, pro, business or enterprise (service accounts need enterprise).
    #[arg(long, default_value = "enterprise")]
    pub plan: String,
    /// Seat limit for humans (service accounts never take a seat) [default: unlimited]
    #[arg(long)]
    pub seats: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a human to a team, within its seat limit.
    Add(UsersAddArgs),
}

#[derive(Debug, Args)]
pub struct UsersAddArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The team's name.
    #[arg(long)]
    pub team: String,
    #[arg(long)]
    pub email: String,
    /// admin or member (or owner).
    #[arg(long)]
    pub role: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Also issue the user an API key, printed once.
    #[arg(long)]
    pub api_key: bool,
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Change a team's plan (recorded in the audit log).
    SetPlan(SetPlanArgs),
}

#[derive(Debug, Args)]
pub struct SetPlanArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[arg(long)]
    pub team: String,
    /// free, pro, business or enterprise.
    #[arg(long)]
    pub plan: String,
}

/// Where the API is and which key to use.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Tessera's base URL [default: http://127.0.0.1:8080]
    #[arg(long, env = "TESSERA_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The API key; prefer the TESSERA_API_KEY (or CURSOR_API_KEY) variable, since flags show up in `ps`.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<SecretArg>,
}

/// A secret from the command line or environment; `Debug` never prints it.
#[derive(Clone)]
pub struct SecretArg(pub String);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(raw: &str) -> Result<SecretArg, Self::Err> {
        Ok(SecretArg(raw.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account; prints its first API key once.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// Name it after its purpose, e.g. "Linear Integration".
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List service accounts with their keys masked.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Include archived accounts.
        #[arg(long)]
        archived: bool,
    },
    /// Show one service account.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
    /// Rename a service account or change its description.
    Update {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// New description ("" clears it).
        #[arg(long)]
        description: Option<String>,
    },
    /// Replace a key with a new one, printed once. The old key stops at once unless --grace is given.
    Rotate {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        /// The key to rotate (needed when the account has several).
        #[arg(long = "key", value_name = "KEY_ID")]
        key_id: Option<String>,
        /// Keep the old key working this long, e.g. 1h (at most 7d).
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
    },
    /// Manage a service account's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Archive a service account: revoke every key; keep the record and its history.
    Archive {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a key (printed once); an account holds at most 10.
    Add {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Give the key the worker permission, for `tessera worker`.
        #[arg(long)]
        worker: bool,
    },
    /// Revoke one key now.
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only events by this actor (user_… or sa_…).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, e.g. api_key.rotate.
        #[arg(long)]
        action: Option<String>,
        /// Only events about this object id.
        #[arg(long)]
        target: Option<String>,
        /// At most this many events [default: 50].
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Check the hash chain; exits 9 if an event was altered or deleted.
    Verify {
        #[command(flatten)]
        client: ClientArgs,
    },
}
