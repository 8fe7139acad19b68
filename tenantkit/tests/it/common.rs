//! Test harness: databases of both backends, and fresh tenants.
//!
//! PostgreSQL tests connect as the runtime role (not a superuser, not an
//! owner), so row-level security is really in force. Set
//! `TENANTKIT_TEST_PG_URL` to an admin URL (default
//! `postgres://postgres@127.0.0.1:5432/test`). With `CI` or
//! `TENANTKIT_REQUIRE_POSTGRES` set, an unreachable PostgreSQL fails the test
//! instead of skipping it.

use sha2::{Digest, Sha256};
use tenantkit::audit::Actor;
use tenantkit::{Db, NewTenant, TenantContext, store::RuntimeRole};
use tokio::sync::OnceCell;

pub(crate) async fn sqlite() -> Db {
    let db = Db::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    db.migrate().await.expect("SQLite migrations");
    db
}

fn admin_url() -> String {
    std::env::var("TENANTKIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn postgres_required() -> bool {
    ["CI", "TENANTKIT_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0"))
}

/// Replaces the database name of a postgres URL.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// Admin and runtime URLs of the migrated test database, set up once per process.
static PG: OnceCell<Option<(String, String)>> = OnceCell::const_new();

async fn setup_postgres() -> Option<(String, String)> {
    let admin = admin_url();
    let admin_db = match sqlx::PgPool::connect(&admin).await {
        Ok(pool) => pool,
        Err(e) if !postgres_required() => {
            eprintln!("WARNING: PostgreSQL unreachable at {admin} ({e}); PostgreSQL tests SKIPPED");
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL is required (CI/TENANTKIT_REQUIRE_POSTGRES) but unreachable at {admin}: {e}"
        ),
    };
    // One database per migration set, so an edited migration never meets an old schema.
    let mut hasher = Sha256::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        hasher.update(std::fs::read(f).unwrap());
    }
    let name = format!(
        "tenantkit_test_{}",
        &format!("{:x}", hasher.finalize())[..12]
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin_db)
            .await
            .unwrap();
    if !exists {
        // Another test process may win the race; that is fine.
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin_db)
            .await
        {
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .unwrap_or_default();
            assert!(
                code == "42P04" || code == "23505",
                "create test database: {e}"
            );
        }
    }
    admin_db.close().await;

    let owner_url = with_database(&admin, &name);
    let owner = Db::connect_with(&owner_url, 2)
        .await
        .expect("connect to test database");
    owner.migrate().await.expect("PostgreSQL migrations");
    let role = RuntimeRole::new(RuntimeRole::DEFAULT_NAME).unwrap();
    owner.setup_runtime_role(&role).await.expect("runtime role");
    owner.close().await;
    Some((owner_url.clone(), role.connection_url(&owner_url).unwrap()))
}

/// The admin (owner) URL of the migrated test database.
pub(crate) async fn postgres_owner_url() -> Option<String> {
    PG.get_or_init(setup_postgres)
        .await
        .as_ref()
        .map(|(owner, _)| owner.clone())
}

/// The runtime-role URL of the migrated test database.
pub(crate) async fn postgres_runtime_url() -> Option<String> {
    PG.get_or_init(setup_postgres)
        .await
        .as_ref()
        .map(|(_, runtime)| runtime.clone())
}

/// A pool connected as the runtime role, or `None` (skip) when PostgreSQL is
/// unreachable and not required.
pub(crate) async fn postgres() -> Option<Db> {
    postgres_with(5).await
}

pub(crate) async fn postgres_with(max_connections: u32) -> Option<Db> {
    let url = postgres_runtime_url().await?;
    let db = Db::connect_with(&url, max_connections)
        .await
        .expect("connect as runtime role");
    Some(db)
}

/// A new tenant with a random subdomain.
pub(crate) async fn tenant(db: &Db) -> TenantContext {
    let sub = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let t = db
        .create_tenant(
            &NewTenant {
                name: format!("Tenant {sub}"),
                subdomain: sub,
            },
            &Actor::System,
        )
        .await
        .unwrap();
    db.resolve_id(t.id).await.unwrap().unwrap()
}

/// Declares each `async fn name(db: Db)` as a test on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::common::sqlite().await).await;
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(db) = $crate::common::postgres().await else { return };
                super::$name(db).await;
            })+
        }
    };
}
pub(crate) use on_both_backends;

/// An in-memory SQLite database and its raw pool (for tests that must go
/// around the store).
pub(crate) async fn sqlite_with_pool() -> (Db, sqlx::SqlitePool) {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:")
        .unwrap()
        .foreign_keys(true);
    // One connection that never closes: the in-memory database lives in it.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .unwrap();
    let db = Db::from(pool.clone());
    db.migrate().await.expect("SQLite migrations");
    (db, pool)
}

/// A SQLite file in a temporary directory, with a pool of several
/// connections (for real concurrency).
pub(crate) async fn sqlite_file(dir: &tempfile::TempDir) -> Db {
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect_with(&url, 4).await.expect("SQLite file");
    db.migrate().await.expect("SQLite migrations");
    db
}

/// A pool connected as the owner (a superuser here) to the test database.
pub(crate) async fn postgres_owner_pool() -> Option<sqlx::PgPool> {
    let url = postgres_owner_url().await?;
    Some(sqlx::PgPool::connect(&url).await.expect("owner connection"))
}
