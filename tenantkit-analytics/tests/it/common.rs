//! Harness: databases with the analytics tables (on PostgreSQL one per test
//! run, so the day partitions of one run never meet the next), a started
//! writer, and event builders.

use std::{future::Future, pin::Pin, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::Map;
use sqlx::Executor;
use tenantkit::{Db, TenantContext, testing};
use tenantkit_analytics::{Analytics, IngestConfig, event::Event, storage};

fn migrate_all(db: &Db) -> Pin<Box<dyn Future<Output = tenantkit::Result<()>> + Send + '_>> {
    Box::pin(async move {
        db.migrate().await?;
        storage::migrate(db).await?;
        // The smallest floor: the tests purge days at least 10 days old.
        storage::set_retention_floor(db, 1).await
    })
}

pub(crate) async fn sqlite() -> Db {
    let db = testing::sqlite().await;
    storage::migrate(&db).await.expect("analytics migrations");
    db
}

/// This run's database; those of earlier runs are dropped first.
pub(crate) async fn postgres_database() -> Option<testing::PgTestDatabase> {
    postgres_database_named("").await
}

/// A database of this run of its own (for tests that drop partitions).
pub(crate) async fn postgres_database_named(suffix: &str) -> Option<testing::PgTestDatabase> {
    static PREFIX: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let prefix = PREFIX
        .get_or_init(|| async {
            if let Ok(pool) = sqlx::PgPool::connect(&testing::admin_url()).await {
                let old: Vec<String> = sqlx::query_scalar(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE 'tkan\\_%'",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                for name in old {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = pool.execute(sqlx::AssertSqlSafe(drop)).await;
                }
            }
            format!("tkan_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
        })
        .await;
    let analytics = storage::migrations();
    let migrators = [tenantkit::store::core_migrations(), &analytics];
    testing::postgres_database_with(&format!("{prefix}{suffix}"), &migrators, migrate_all).await
}

pub(crate) async fn postgres() -> Option<Db> {
    Some(testing::runtime_db(&postgres_database().await?, 10).await)
}

/// A writer on `db` with the default batching.
pub(crate) fn analytics(db: &Db) -> Analytics {
    analytics_with(db, IngestConfig::default())
}

pub(crate) fn analytics_with(db: &Db, config: IngestConfig) -> Analytics {
    Analytics::start(db.clone(), config).0
}

/// A writer that flushes only when told to stop (or after a minute).
pub(crate) fn slow_analytics(db: &Db, buffer_events: usize) -> Analytics {
    analytics_with(
        db,
        IngestConfig {
            flush_interval: Duration::from_secs(60),
            flush_events: usize::MAX,
            buffer_events,
            writers: 2,
        },
    )
}

/// A valid event.
pub(crate) fn event(
    event_type: &str,
    name: Option<&str>,
    user: Option<&str>,
    at: DateTime<Utc>,
) -> Event {
    Event {
        event_type: event_type.to_owned(),
        user_id: user.map(str::to_owned),
        name: name.map(str::to_owned),
        metadata: Map::new(),
        timestamp: at,
    }
}

/// How many raw events `t` has.
pub(crate) async fn stored(db: &Db, t: &TenantContext) -> i64 {
    let mut tx = db.begin(t).await.unwrap();
    let q = tx.query("SELECT COUNT(*) FROM events WHERE tenant_id = $1");
    let (n,): (i64,) = tx.fetch_one(q).await.unwrap();
    n
}
