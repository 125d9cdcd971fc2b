//! Embedded migrations, one tree per backend, applied with sqlx's migrator.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::{Backend, StoreError};

/// (version, description, SQL) for each backend, in order. Never edit an applied migration:
/// sqlx records its checksum and refuses to start if it changed.
const SQLITE: &[(i64, &str, &str)] = &[
    (1, "core", include_str!("../migrations/sqlite/0001_core.sql")),
    (2, "integrations", include_str!("../migrations/sqlite/0002_integrations.sql")),
    (3, "key_rate_limits", include_str!("../migrations/sqlite/0003_key_rate_limits.sql")),
    (4, "agents", include_str!("../migrations/sqlite/0004_agents.sql")),
    (5, "agent_create_digest", include_str!("../migrations/sqlite/0005_agent_create_digest.sql")),
    (6, "key_permissions", include_str!("../migrations/sqlite/0006_key_permissions.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "core", include_str!("../migrations/postgres/0001_core.sql")),
    (2, "integrations", include_str!("../migrations/postgres/0002_integrations.sql")),
    (3, "key_rate_limits", include_str!("../migrations/postgres/0003_key_rate_limits.sql")),
    (4, "agents", include_str!("../migrations/postgres/0004_agents.sql")),
    (5, "agent_create_digest", include_str!("../migrations/postgres/0005_agent_create_digest.sql")),
    (6, "key_permissions", include_str!("../migrations/postgres/0006_key_permissions.sql")),
];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core_compat::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

mod futures_core_compat {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let source = match backend {
        Backend::Sqlite => Embedded(SQLITE),
        Backend::Postgres => Embedded(POSTGRES),
    };
    let migrator = Migrator::new(source).await?;
    migrator.run(pool).await?;
    Ok(())
}
