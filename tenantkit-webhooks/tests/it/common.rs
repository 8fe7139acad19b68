//! Harness: databases with the webhooks tables, and a `Webhooks` whose
//! resolver answers for the test names.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use serde_json::json;
use tenantkit::{Db, TenantContext, testing};
use tenantkit_webhooks::{
    NewWebhook, WebhookId, Webhooks,
    catalogue::EventCatalogue,
    outbox::MessageId,
    secret_box::SecretBox,
    ssrf::{Lookup, UrlPolicy},
    transport::Transport,
    worker::{Worker, WorkerOptions},
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
    let webhooks = tenantkit_webhooks::schema::migrations();
    let migrators = [tenantkit::store::core_migrations(), &webhooks];
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
    Webhooks::new(policy, keys, catalogue())
}

/// The built-in event types without their schemas: these tests are about
/// storing and delivering messages, not their payloads (an application's
/// catalogue may well have types without a schema). `publishing.rs` checks
/// the schemas with [`EventCatalogue::tenantkit`].
pub(crate) fn catalogue() -> EventCatalogue {
    EventCatalogue::tenantkit()
        .types()
        .iter()
        .try_fold(EventCatalogue::default(), |c, t| {
            c.with(&t.name, &t.description, t.example.clone())
        })
        .unwrap()
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

/// Installs the TLS crypto provider (ring) the HTTP client needs, once.
pub(crate) fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loopback allowed (as `webhooks.allow_networks = ["127.0.0.1/32"]`
/// would), plain http allowed; installs the TLS provider the process needs.
pub(crate) fn local_policy() -> UrlPolicy {
    tls_provider();
    UrlPolicy::strict()
        .with_http(true)
        .allow_network("127.0.0.1/32".parse().unwrap())
}

/// A `Webhooks` whose deliveries may reach receivers on loopback.
pub(crate) fn local_webhooks() -> Webhooks {
    let keys = SecretBox::new([SecretBox::generate_key().as_str()]).unwrap();
    Webhooks::new(local_policy(), keys, catalogue())
}

/// A transport with `w`'s policy, giving up after `timeout`.
pub(crate) fn transport(w: &Webhooks, timeout: std::time::Duration) -> Transport {
    tls_provider();
    Transport::with_timeout(w.policy().clone(), timeout).unwrap()
}

/// A worker on `db` with `options`, a 2 s transport and no budget.
pub(crate) fn worker(db: &Db, w: &Webhooks, options: WorkerOptions) -> Worker {
    Worker::new(
        db.clone(),
        w.clone(),
        transport(w, std::time::Duration::from_secs(2)),
    )
    .with_options(options)
    .with_limits(None)
}

/// An endpoint of `t` at `url` for every event type: its id and secret.
pub(crate) async fn endpoint(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    url: String,
) -> (WebhookId, String) {
    let mut tx = db.begin(t).await.unwrap();
    let created = w
        .create(
            &mut tx,
            &NewWebhook {
                url,
                event_types: vec!["*".into()],
                description: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (created.webhook.id, created.secret)
}

/// `n` `user.created` events of `t`, in one transaction.
pub(crate) async fn publish(db: &Db, w: &Webhooks, t: &TenantContext, n: usize) -> Vec<MessageId> {
    let mut tx = db.begin(t).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let published = w
            .publish(&mut tx, "user.created", json!({ "n": i }))
            .await
            .unwrap();
        ids.push(published.id);
    }
    tx.commit().await.unwrap();
    ids
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
        let webhooks = tenantkit_webhooks::schema::migrations();
        let migrators = [tenantkit::store::core_migrations(), &webhooks];
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
