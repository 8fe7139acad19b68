//! Harness: databases with the webhooks tables, and a `Webhooks` whose
//! resolver answers for the test names.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use tenantkit::{Db, testing};
use tenantkit_webhooks::{
    Webhooks,
    catalogue::EventCatalogue,
    secret_box::SecretBox,
    ssrf::{Lookup, UrlPolicy},
};

fn migrate_all(db: &Db) -> Pin<Box<dyn Future<Output = tenantkit::Result<()>> + Send + '_>> {
    Box::pin(async move {
        db.migrate().await?;
        Webhooks::migrate(db).await
    })
}

pub(crate) async fn sqlite() -> Db {
    let db = testing::sqlite().await;
    Webhooks::migrate(&db).await.expect("webhooks migrations");
    db
}

pub(crate) async fn postgres_database() -> Option<testing::PgTestDatabase> {
    let (webhooks, _) = tenantkit_webhooks::endpoints::migrators();
    let migrators = [tenantkit::store::postgres_migrator(), &webhooks];
    testing::postgres_database_with("tenantkit_webhooks_test", &migrators, migrate_all).await
}

pub(crate) async fn postgres() -> Option<Db> {
    Some(testing::runtime_db(&postgres_database().await?, 10).await)
}

/// `hooks.partner.test` is public; `internal.partner.test` resolves to a private address.
pub(crate) fn webhooks() -> Webhooks {
    let table: HashMap<String, Vec<std::net::IpAddr>> = [
        ("hooks.partner.test", "93.184.216.34"),
        ("other.partner.test", "93.184.216.35"),
        ("internal.partner.test", "10.1.2.3"),
    ]
    .into_iter()
    .map(|(name, ip)| (name.to_owned(), vec![ip.parse().unwrap()]))
    .collect();
    let policy = UrlPolicy::strict().with_lookup(Lookup::Table(Arc::new(table)));
    let keys = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
    Webhooks::new(policy, keys, EventCatalogue::tenantkit())
}

pub(crate) use tenantkit::testing::tenant;

/// Declares each `async fn name(db: Db)` as a test on SQLite and on
/// PostgreSQL ([`tenantkit::backend_tests`] with this harness).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        tenantkit::backend_tests!(crate::common; $($name),+);
    };
}
pub(crate) use on_both_backends;

/// A `Webhooks` whose policy lets deliveries reach receivers on loopback
/// over plain http (the `webhooks.allow_networks` setting).
pub(crate) fn local_webhooks() -> Webhooks {
    let policy = UrlPolicy::strict()
        .with_http(true)
        .allow_network("127.0.0.1/32".parse().unwrap());
    let keys = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
    Webhooks::new(policy, keys, EventCatalogue::tenantkit())
}

pub(crate) use tenantkit_webhooks::testing::{Behaviour, Receiver};

/// Databases for worker tests. A worker serves every tenant of its
/// database, so on PostgreSQL each test gets a database of its own (tests
/// run in parallel); those of earlier runs are dropped first.
pub(crate) mod isolated {
    use tenantkit::{Db, testing};

    pub(crate) use super::sqlite;

    const PREFIX: &str = "tkwh_iso";

    pub(crate) async fn postgres() -> Option<Db> {
        static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        SWEPT.get_or_init(sweep).await;
        let (webhooks, _) = tenantkit_webhooks::endpoints::migrators();
        let migrators = [tenantkit::store::postgres_migrator(), &webhooks];
        let prefix = format!(
            "{PREFIX}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let database =
            testing::postgres_database_with(&prefix, &migrators, super::migrate_all).await?;
        Some(testing::runtime_db(&database, 10).await)
    }

    /// Drops the databases earlier runs left.
    async fn sweep() {
        let Ok(pool) = sqlx::PgPool::connect(&testing::admin_url()).await else {
            return;
        };
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                .bind(format!("{PREFIX}_%"))
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        for (name,) in names {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
        }
        pool.close().await;
    }
}
