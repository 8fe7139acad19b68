//! Every SQL statement every crate declares (its `sql::ALL`, made by
//! `tenantkit::statements!`), prepared on both backends against the real,
//! migrated schema: a typo, a missing column, a type PostgreSQL cannot
//! infer or a dead arm of a PostgreSQL/SQLite pair fails here, not when its
//! code path first runs.
//!
//! PostgreSQL prepares as the runtime role (parse and plan; nothing runs).

use sqlx::Executor;
use tenantkit::{Backend, Db, store::Statement, testing};

/// Every crate's list.
fn every_crate() -> [(&'static str, &'static [Statement]); 2] {
    [
        ("tenantkit-billing", tenantkit_billing::sql::ALL),
        ("tenantkit-webhooks", tenantkit_webhooks::sql::ALL),
    ]
}

async fn migrate_all(db: &Db) -> tenantkit::Result<()> {
    db.migrate().await?;
    tenantkit_billing::Billing::migrate(db).await?;
    tenantkit_webhooks::Webhooks::migrate(db).await?;
    tenantkit_analytics::storage::migrate(db).await
}

/// Prepares every statement `backend` runs with `prepare`, and fails with
/// the list of those that do not prepare.
async fn walk<F, Fut>(backend: Backend, prepare: F)
where
    F: Fn(sqlx::SqlStr) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let (mut failures, mut prepared) = (Vec::new(), 0);
    for (krate, statements) in every_crate() {
        for statement in statements {
            // A statement of the other backend's code path only.
            let Some(sql) = statement.sql.on(backend) else {
                continue;
            };
            prepared += 1;
            if let Err(e) = prepare(sqlx::SqlSafeStr::into_sql_str(sql)).await {
                failures.push(format!("{krate}::sql::{}: {e}", statement.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {prepared} statements do not prepare on {backend:?}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(prepared > 0, "no statement was walked");
}

#[tokio::test]
async fn every_statement_prepares_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let db = Db::connect(&url).await.unwrap();
    migrate_all(&db).await.unwrap();
    db.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    walk(Backend::Sqlite, |sql| {
        let pool = pool.clone();
        async move { pool.prepare(sql).await.map(drop) }
    })
    .await;
}

#[tokio::test]
async fn every_statement_prepares_on_postgres() {
    let (core, billing, webhooks, analytics) = (
        tenantkit::store::postgres_migrator(),
        tenantkit_billing::migrators().0,
        tenantkit_webhooks::schema::migrators().0,
        tenantkit_analytics::storage::migrators().0,
    );
    let migrators = [core, &billing, &webhooks, &analytics];
    let migrate: testing::Migrate = |db| Box::pin(migrate_all(db));
    let Some(database) =
        testing::postgres_database_with("tenantkit_statements", &migrators, migrate).await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    walk(Backend::Postgres, |sql| {
        let pool = pool.clone();
        async move { pool.prepare(sql).await.map(drop) }
    })
    .await;
}
