//! Test harness: [`tenantkit::testing`] plus what only these tests need.

pub(crate) use tenantkit::testing::{sqlite, tenant};
use tenantkit::{Db, testing};

/// The owner URL of the migrated test database.
pub(crate) async fn postgres_owner_url() -> Option<String> {
    Some(testing::postgres_database().await?.owner_url)
}

/// The runtime-role URL of the migrated test database.
pub(crate) async fn postgres_runtime_url() -> Option<String> {
    Some(testing::postgres_database().await?.runtime_url)
}

/// A pool connected as the runtime role, or `None` (skip) when PostgreSQL is
/// unreachable and not required.
pub(crate) async fn postgres() -> Option<Db> {
    postgres_with(5).await
}

pub(crate) async fn postgres_with(max_connections: u32) -> Option<Db> {
    Some(testing::runtime_db(&testing::postgres_database().await?, max_connections).await)
}

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

/// Declares each `async fn name(db: Db)` as a test on SQLite and on
/// PostgreSQL ([`tenantkit::backend_tests`] with this harness).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        tenantkit::backend_tests!(crate::common; $($name),+);
    };
}
pub(crate) use on_both_backends;

/// The inner service of the auth tests: answers with the request's
/// [`tenantkit::auth::Principal`] as JSON.
pub(crate) async fn whoami<B>(
    req: http::Request<B>,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let p = req
        .extensions()
        .get::<tenantkit::auth::Principal>()
        .expect("principal set");
    Ok(http::Response::new(
        serde_json::to_string(p).unwrap().into(),
    ))
}

/// One request through `TenantLayer` + `auth` on `db`, as `tenant`, with
/// `Authorization: Bearer <token>`: the status, the headers, and the body as
/// JSON (`Null` when it is not).
pub(crate) async fn call_through(
    db: &Db,
    auth: tenantkit::auth::AuthLayer<Db>,
    tenant: &tenantkit::TenantContext,
    token: &str,
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let svc = tower::ServiceBuilder::new()
        .layer(tenantkit::resolve::TenantLayer::new(db.clone()))
        .layer(auth)
        .service_fn(whoami::<http_body_util::Full<bytes::Bytes>>);
    let req = http::Request::get("/")
        .header("x-tenant-id", tenant.id().to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}
