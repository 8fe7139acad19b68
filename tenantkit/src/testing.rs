//! Test harness (feature `testing`): databases of both backends and fresh
//! tenants, for tenantkit's tests and those of crates built on it.
//!
//! PostgreSQL databases are migrated as the owner and used as the runtime role
//! (not a superuser, not an owner), so row-level security is in force. The
//! admin URL is `TENANTKIT_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). With `CI` or
//! `TENANTKIT_REQUIRE_POSTGRES` set, an unreachable PostgreSQL fails the test
//! instead of skipping it.

pub mod oidc;

use std::{collections::HashMap, future::Future, pin::Pin, sync::OnceLock};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{Db, NewTenant, TenantContext, audit::Actor, store::RuntimeRole};

/// A migrated in-memory SQLite database.
pub async fn sqlite() -> Db {
    let db = Db::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    db.migrate().await.expect("SQLite migrations");
    db
}

/// The admin URL of the test PostgreSQL server.
pub fn admin_url() -> String {
    std::env::var("TENANTKIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether PostgreSQL tests must run (in CI) rather than skip.
pub fn postgres_required() -> bool {
    ["CI", "TENANTKIT_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0"))
}

/// `url` with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// A migrated PostgreSQL test database.
#[derive(Clone, Debug)]
pub struct PgTestDatabase {
    /// Connects as the owner (migrations, tampering tests).
    pub owner_url: String,
    /// Connects as the runtime role.
    pub runtime_url: String,
}

/// Migrations to apply to a test database, as the owner.
pub type Migrate = fn(&Db) -> Pin<Box<dyn Future<Output = crate::Result<()>> + Send + '_>>;

fn core_migrations(db: &Db) -> Pin<Box<dyn Future<Output = crate::Result<()>> + Send + '_>> {
    Box::pin(db.migrate())
}

/// The database for tenantkit's own tests.
pub async fn postgres_database() -> Option<PgTestDatabase> {
    postgres_database_with(
        "tenantkit_test",
        &[crate::store::core_migrations()],
        core_migrations,
    )
    .await
}

/// A database named `<prefix>_<hash of the migrations>`, created and migrated
/// by `migrate` once per process (and reused across runs while the migrations
/// are unchanged), with the runtime role set up. `None` when PostgreSQL is
/// unreachable and not required.
///
/// The hash comes from the checksums compiled into `migrations`, never from
/// files on disk, so a test binary works wherever it was built.
pub async fn postgres_database_with(
    prefix: &str,
    migrations: &[&crate::store::Migrations],
    migrate: Migrate,
) -> Option<PgTestDatabase> {
    static READY: OnceLock<Mutex<HashMap<String, Option<PgTestDatabase>>>> = OnceLock::new();
    let mut ready = READY.get_or_init(Mutex::default).lock().await;
    if let Some(db) = ready.get(prefix) {
        return db.clone();
    }
    let db = setup(prefix, migrations, migrate).await;
    ready.insert(prefix.to_owned(), db.clone());
    db
}

async fn setup(
    prefix: &str,
    migrations: &[&crate::store::Migrations],
    migrate: Migrate,
) -> Option<PgTestDatabase> {
    let admin = admin_url();
    let pool = match sqlx::PgPool::connect(&admin).await {
        Ok(pool) => pool,
        Err(e) if !postgres_required() => {
            eprintln!("WARNING: PostgreSQL unreachable at {admin} ({e}); PostgreSQL tests SKIPPED");
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL is required (CI/TENANTKIT_REQUIRE_POSTGRES) but unreachable at {admin}: {e}"
        ),
    };
    let mut hasher = Sha256::new();
    for (version, checksum) in migrations.iter().flat_map(|m| m.postgres_checksums()) {
        hasher.update(version.to_be_bytes());
        hasher.update(checksum);
    }
    let name = format!("{prefix}_{}", &format!("{:x}", hasher.finalize())[..12]);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
    if !exists {
        // Another test process may win the race; that is fine.
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
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
    pool.close().await;
    let owner_url = with_database(&admin, &name);
    let owner = Db::connect_with(&owner_url, 2)
        .await
        .expect("connect to test database");
    migrate(&owner).await.expect("migrations");
    // The shortest floor the audit purge allows (a day); tests age entries.
    owner
        .set_audit_retention_floor(1)
        .await
        .expect("audit retention floor");
    let role = RuntimeRole::new(RuntimeRole::DEFAULT_NAME).unwrap();
    owner.setup_runtime_role(&role).await.expect("runtime role");
    owner.close().await;
    let runtime_url = role.connection_url(&owner_url).unwrap();
    Some(PgTestDatabase {
        owner_url,
        runtime_url,
    })
}

/// A pool on `database` as the runtime role.
pub async fn runtime_db(database: &PgTestDatabase, max_connections: u32) -> Db {
    Db::connect_with(&database.runtime_url, max_connections)
        .await
        .expect("connect as runtime role")
}

/// A new tenant with a random subdomain.
pub async fn tenant(db: &Db) -> TenantContext {
    let sub = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let t = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: format!("Tenant {sub}"),
                subdomain: sub,
            },
            &Actor::System,
        )
        .await
        .expect("create tenant");
    db.resolve_id(t.id).await.unwrap().unwrap()
}

/// A new user of `tenant` with `role` and a random e-mail.
pub async fn user(db: &Db, tenant: &TenantContext, role: crate::Role) -> crate::User {
    let email = format!(
        "u-{}@test.example",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut tx = db.begin(tenant).await.expect("begin");
    let user = tx
        .create_user(&crate::NewUser { email, role })
        .await
        .expect("create user");
    tx.commit().await.expect("commit");
    user
}

/// Declares each `async fn name(db: Db)` as two tests, `sqlite::name` and
/// `postgres::name`, with databases from `$harness::sqlite()` and
/// `$harness::postgres()` (an `Option<Db>`: `None` skips when PostgreSQL is
/// unreachable and not required). Add `, multi_thread` after the harness for
/// a two-worker runtime. One definition for every crate's suites.
///
/// ```ignore
/// tenantkit::backend_tests!(crate::common; creates_a_user, lists_users);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($harness:path; $($name:ident),+ $(,)?) => {
        $crate::backend_tests!(@with [tokio::test] $harness; $($name),+);
    };
    ($harness:path, multi_thread; $($name:ident),+ $(,)?) => {
        $crate::backend_tests!(
            @with [tokio::test(flavor = "multi_thread", worker_threads = 2)] $harness; $($name),+
        );
    };
    (@with [$attr:meta] $harness:path; $($name:ident),+) => {
        mod sqlite {
            use $harness as harness;
            $(#[$attr]
            async fn $name() {
                super::$name(harness::sqlite().await).await;
            })+
        }
        mod postgres {
            use $harness as harness;
            $(#[$attr]
            async fn $name() {
                let Some(db) = harness::postgres().await else { return };
                super::$name(db).await;
            })+
        }
    };
}

/// The schema's isolation, read from the PostgreSQL catalog at `owner_url`:
/// the tenant-owned tables (every table or partition with a `tenant_id`
/// column, except declared platform tables) and what breaks an invariant:
///
/// - a missing primary key, or a primary or foreign key not leading with
///   `tenant_id`;
/// - row-level security not enabled and forced;
/// - no policy `USING` and `WITH CHECK` on `tenantkit_current_tenant()`;
/// - any other policy that applies to `PUBLIC` or to the runtime role
///   (permissive policies add up: one more would widen what it sees);
/// - a platform table (`COMMENT ... 'tenantkit:platform'`) other than
///   `tenant_external_ids` and `tenant_deletions`.
///
/// Every crate's tests call it on their database, so a new table (or
/// partition) is checked without being named anywhere.
pub async fn schema_problems(owner_url: &str) -> (Vec<String>, Vec<String>) {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(owner_url)
        .await
        .expect("connect as the owner");
    let runtime = RuntimeRole::DEFAULT_NAME;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
         AND obj_description(c.oid, 'pg_class') IS DISTINCT FROM 'tenantkit:platform' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("read the catalog");
    let mut problems = Vec::new();
    for table in &tables {
        let keys = sqlx::query(
            "SELECT con.conname::text AS name, con.contype::text AS kind, \
                    (SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = con.conrelid AND a.attnum = con.conkey[1]) AS first_col \
             FROM pg_constraint con WHERE con.conrelid = $1::regclass AND con.contype IN ('p', 'f')",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .expect("read keys");
        if !keys.iter().any(|k| k.get::<String, _>("kind") == "p") {
            problems.push(format!("{table}: no primary key"));
        }
        for k in &keys {
            if k.get::<Option<String>, _>("first_col").as_deref() != Some("tenant_id") {
                problems.push(format!(
                    "{table}: key {} does not lead with tenant_id",
                    k.get::<String, _>("name")
                ));
            }
        }
        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(table)
        .fetch_one(&pool)
        .await
        .expect("read RLS flags");
        if !(enabled && forced) {
            problems.push(format!("{table}: RLS enabled={enabled} forced={forced}"));
        }
        // name, roles, USING, WITH CHECK
        type Policy = (String, Vec<String>, Option<String>, Option<String>);
        let policies: Vec<Policy> = sqlx::query_as(
            "SELECT policyname::text, roles::text[], qual, with_check FROM pg_policies \
             WHERE schemaname = 'public' AND tablename = $1",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .expect("read policies");
        let scoped = |e: &Option<String>| {
            e.as_deref()
                .is_some_and(|e| e.contains("tenantkit_current_tenant()"))
        };
        if !policies
            .iter()
            .any(|(_, _, using, check)| scoped(using) && scoped(check))
        {
            problems.push(format!(
                "{table}: no policy USING and WITH CHECK on the current tenant: {policies:?}"
            ));
        }
        for (name, roles, using, check) in &policies {
            let tenant_policy = scoped(using) && scoped(check);
            if !tenant_policy && roles.iter().any(|r| r == "public" || r == runtime) {
                problems.push(format!(
                    "{table}: policy {name} applies to {roles:?} and is not the tenant policy"
                ));
            }
        }
    }
    let platform: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND obj_description(c.oid, 'pg_class') = 'tenantkit:platform' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("read platform tables");
    if platform
        != [
            "tenant_deletions",
            "tenant_external_ids",
            "tenantkit_settings",
        ]
    {
        problems.push(format!("unexpected platform tables: {platform:?}"));
    }
    pool.close().await;
    (tables, problems)
}

/// Asserts that a response is RFC 9457 problem+json for `expected`: its
/// status, its `content-type`, and a body carrying the same `status`, a
/// `title` and a `detail`. `what` names the case in the failure message.
/// HTTP clients of any kind read the three parts off their response.
///
/// ```
/// use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
/// use serde_json::json;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(CONTENT_TYPE, "application/problem+json".parse().unwrap());
/// let body = json!({ "type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such user" });
/// tenantkit::testing::assert_problem(
///     "an unknown user",
///     StatusCode::NOT_FOUND,
///     StatusCode::NOT_FOUND,
///     &headers,
///     &body,
/// );
/// ```
pub fn assert_problem(
    what: &str,
    expected: http::StatusCode,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &serde_json::Value,
) {
    assert_eq!(status, expected, "{what}");
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/problem+json"), "{what}");
    assert_eq!(body["status"], expected.as_u16(), "{what}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
}
