//! Commands that work on the database directly: `serve`, `init`, `users add`, `teams set-plan`.

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use tessera_domain::api_key::KeyKind;
use tessera_domain::audit::AuditContext;
use tessera_domain::ids::{TeamId, UserId, generate_user_number};
use tessera_domain::names::{Email, PersonName, TeamName};
use tessera_domain::principal::Actor;
use tessera_domain::team::{Plan, Role};
use tessera_domain::time::{Clock, SystemClock};
use tessera_server::App;
use tessera_server::keys::mint_key;
use tessera_store::teams::NewTeam;
use tessera_store::users::NewUser;
use tessera_store::{Store, StoreError};

use crate::cli::{DatabaseArgs, InitArgs, ServeArgs, SetPlanArgs, UsersAddArgs, WorkerArgs};
use crate::exit::CliError;
use crate::output::Output;
use crate::settings::{DatabaseSettings, FileSettings, LogFormat, ServeSettings, key_cache_ttl};

pub async fn serve(args: &ServeArgs, file: &FileSettings) -> anyhow::Result<()> {
    let settings = ServeSettings::resolve(args, file)?;
    init_logging(settings.log_format, settings.log_level);
    settings.database.prepare_data_dir()?;
    let secret = settings.database.load_secret()?;
    let store =
        Store::open(&settings.database.store_options(), &secret).await.context("opening the database")?;
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("binding {}", settings.server.listen))?;
    let address = listener.local_addr()?;
    let (state, background) = App::start(store.clone(), &secret, Arc::new(SystemClock), settings.server);
    tracing::info!(%address, backend = store.backend().as_str(), "Tessera listening on http://{address}");
    tessera_server::serve(listener, state, shutdown_signal()).await.context("serving")?;
    tracing::info!("Shutting down: flushing last-used times and audit events");
    background.shutdown().await;
    store.close().await;
    Ok(())
}

pub async fn worker(args: &WorkerArgs, file: &FileSettings) -> anyhow::Result<()> {
    init_logging(LogFormat::Text, tracing::Level::INFO);
    let settings = DatabaseSettings::resolve(&args.database, file, Some(4));
    settings.prepare_data_dir()?;
    let secret = settings.load_secret()?;
    let key = args
        .api_key
        .clone()
        .map(|k| k.0)
        .or_else(|| std::env::var("CURSOR_API_KEY").ok())
        .ok_or(CliError::NoApiKey)?;
    let parsed = tessera_domain::api_key::ParsedApiKey::parse(key.trim()).map_err(|_| CliError::Api {
        status: 401,
        code: "unauthorized".into(),
        message: "Invalid API key".into(),
    })?;
    let digest = tessera_domain::api_key::KeyHasher::new(&secret.api_key_digest_key()).digest_parsed(&parsed);
    let store = Store::open(&settings.store_options(), &secret).await.context("opening the database")?;
    let team = tessera_server::worker::authorize_worker_key(&store, &digest, SystemClock.now())
        .await
        .map_err(|reason| CliError::Api { status: 401, code: "unauthorized".into(), message: reason })?;
    let mut config = tessera_server::worker::WorkerConfig::new(
        args.work_dir.clone().unwrap_or_else(|| settings.data_dir.join("work")),
    );
    if let Some(lease) = &args.lease {
        config.lease = crate::settings::parse_duration(lease, "--lease")?;
        config.heartbeat_interval = (config.lease / 4).min(config.heartbeat_interval);
    }
    if let Some(max) = args.max_run_duration.as_ref().or(file.max_run_duration.as_ref()) {
        config.max_run_duration = crate::settings::parse_duration(max, "max_run_duration")?;
    }
    config.team = Some(team.clone());
    config.backends = file.agent_backends.clone();
    config.git_credentials = args.git_credentials_file.clone().or_else(|| file.git_credentials_file.clone());
    config.credential = Some(digest);
    tracing::info!(team.id = %team, worker.id = %config.id, "Worker for team {team} is waiting for runs");
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown.send(true);
    });
    let outcome =
        tessera_server::worker::run_worker(store.clone(), Arc::new(SystemClock), config, shutdown_rx).await;
    store.close().await;
    outcome
        .map_err(|reason| CliError::Api { status: 401, code: "unauthorized".into(), message: reason }.into())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

pub fn init_logging(format: LogFormat, level: tracing::Level) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // sqlx logs every statement at debug level; keep it to warnings unless tracing everything.
    let sqlx_level = if level == tracing::Level::TRACE { level } else { tracing::Level::WARN };
    let filter = Targets::new().with_default(level).with_target("sqlx", sqlx_level);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .try_init(),
    };
    let _ = result;
}

async fn open_store(
    database: &DatabaseArgs,
    file: &FileSettings,
) -> anyhow::Result<(Store, tessera_domain::secret::ServerSecret)> {
    init_logging(LogFormat::Text, tracing::Level::WARN);
    let settings = DatabaseSettings::resolve(database, file, None);
    settings.prepare_data_dir()?;
    let secret = settings.load_secret()?;
    let store = Store::open(&settings.store_options(), &secret).await.context("opening the database")?;
    Ok((store, secret))
}

fn operator_context() -> AuditContext {
    let name =
        std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "operator".into());
    AuditContext { actor: Actor::Operator { name }, client_ip: None, request_id: None, at: SystemClock.now() }
}

fn usage(err: impl std::fmt::Display) -> anyhow::Error {
    CliError::Usage(err.to_string()).into()
}

async fn find_team(store: &Store, name: &str) -> anyhow::Result<tessera_store::Team> {
    store
        .find_team_by_name(name)
        .await?
        .ok_or_else(|| anyhow::Error::from(StoreError::NotFound).context(format!("no team named {name:?}")))
}

pub async fn init(args: &InitArgs, file: &FileSettings, out: &Output) -> anyhow::Result<()> {
    let team_name = TeamName::parse(&args.team).map_err(usage)?;
    let email = Email::parse(&args.admin_email).map_err(usage)?;
    let name = args.admin_name.as_deref().map(PersonName::parse).transpose().map_err(usage)?;
    let plan: Plan = args.plan.parse().map_err(usage)?;
    if args.seats.is_some_and(|seats| seats < 1) {
        return Err(usage("--seats must be at least 1 (the owner takes a seat)"));
    }
    let (store, secret) = open_store(&args.database, file).await?;
    let hasher = tessera_domain::api_key::KeyHasher::new(&secret.api_key_digest_key());
    let team = NewTeam { id: TeamId::generate(), name: team_name, plan, seat_limit: args.seats };
    let owner =
        NewUser { id: UserId::generate(), number: generate_user_number(), email, name, role: Role::Owner };
    let (plain, key) = mint_key(&hasher, KeyKind::User, "default", None);
    let context = operator_context();
    let (team, user) = store.create_team(&team, &owner, Some(&key), &context).await?;
    store.close().await;
    out.key_warning();
    out.print(
        &json!({
            "team": { "id": team.id, "name": team.name, "plan": team.plan, "seatLimit": team.seat_limit },
            "user": { "id": user.id, "email": user.email, "role": user.role },
            "apiKey": { "id": key.id, "key": plain.expose_secret(), "maskedKey": key.masked },
        }),
        || {
            format!(
                "Created team {:?} ({}) on the {} plan.\nOwner: {} ({})\nAPI key (shown once):\n{}\n",
                team.name,
                team.id,
                team.plan,
                user.email,
                user.id,
                plain.expose_secret()
            )
        },
    );
    Ok(())
}

pub async fn users_add(args: &UsersAddArgs, file: &FileSettings, out: &Output) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(usage)?;
    let role: Role = args.role.parse().map_err(usage)?;
    let name = args.name.as_deref().map(PersonName::parse).transpose().map_err(usage)?;
    let (store, secret) = open_store(&args.database, file).await?;
    let team = find_team(&store, &args.team).await?;
    let hasher = tessera_domain::api_key::KeyHasher::new(&secret.api_key_digest_key());
    let minted = args.api_key.then(|| mint_key(&hasher, KeyKind::User, "default", None));
    let user = NewUser { id: UserId::generate(), number: generate_user_number(), email, name, role };
    let created =
        store.add_user(&team.id, &user, minted.as_ref().map(|(_, key)| key), &operator_context()).await?;
    store.close().await;
    if minted.is_some() {
        out.key_warning();
    }
    out.print(
        &json!({
            "user": { "id": created.id, "email": created.email, "role": created.role, "teamId": team.id },
            "apiKey": minted.as_ref().map(|(plain, key)| json!({
                "id": key.id, "key": plain.expose_secret(), "maskedKey": key.masked,
            })),
        }),
        || {
            let mut text =
                format!("Added {} ({}) to {:?} as {}.\n", created.email, created.id, team.name, created.role);
            if let Some((plain, _)) = &minted {
                text.push_str(&format!("API key (shown once):\n{}\n", plain.expose_secret()));
            }
            text
        },
    );
    Ok(())
}

pub async fn set_plan(args: &SetPlanArgs, file: &FileSettings, out: &Output) -> anyhow::Result<()> {
    let plan: Plan = args.plan.parse().map_err(usage)?;
    let (store, _secret) = open_store(&args.database, file).await?;
    let team = find_team(&store, &args.team).await?;
    let (before, after) = store.set_team_plan(&team.id, plan, &operator_context()).await?;
    store.close().await;
    if before.plan.allows_service_accounts() && !after.plan.allows_service_accounts() {
        // Servers may hold cached verdicts for this team's service-account keys; wait them out
        // so that when this command returns, no server accepts those keys.
        tokio::time::sleep(key_cache_ttl(file)?).await;
    }
    out.print(
        &json!({ "team": { "id": after.id, "name": after.name, "plan": after.plan, "previousPlan": before.plan } }),
        || format!("Team {:?} is now on the {} plan (was {}).\n", after.name, after.plan, before.plan),
    );
    Ok(())
}
