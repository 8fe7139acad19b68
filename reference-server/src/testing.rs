//! [`TestApp`]: the whole server's router on a fresh database (embedded
//! SQLite, or PostgreSQL as the runtime role), driven without a socket
//! (`tower::ServiceExt::oneshot`), for route tests. Feature `testing`.
//!
//! It is the state `serve` builds ([`AppState::start`]) and the router it
//! binds ([`app`]); only the listener is missing. Tests that need a real
//! connection (TLS, WebSockets, keep-alive, process signals) use
//! [`crate::start`] instead.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit_server::testing::TestApp;
//!
//! let app = TestApp::new().await?;
//! let (status, body) = app.get("/users", &app.owner_token()).await;
//! assert_eq!(status, 200);
//! assert_eq!(body["items"].as_array().unwrap().len(), 1, "the owner");
//! # anyhow::Ok(()) }).unwrap();
//! ```

use axum::{Router, body::Body};
use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;
use tenantkit::{
    Backend, NewTenant, NewUser, Role, TenantContext, User,
    audit::Actor,
    auth::{JwtKeys, TokenRole},
};
use tower::ServiceExt;

use crate::{
    app::{self, AppState},
    config::Config,
    setup::{load_keys, migrate_schema, open_runtime_db},
    state::Services,
    tasks::Supervisor,
};

/// The server's router on a fresh embedded SQLite database in a temporary
/// directory ([`TestApp::new`]) or on the PostgreSQL test database as the
/// runtime role ([`TestApp::on`]), with tenant `acme` and its owner
/// `owner@acme.test`. On PostgreSQL, whose test database the apps of a run
/// share, the tenant's subdomain is `acme-` and a random suffix.
///
/// The default plan is `enterprise` (every feature), so a test sees routing
/// and its own subject, not the plan layer; the webhook worker does not run.
#[derive(Debug)]
pub struct TestApp {
    /// The database it runs on.
    pub backend: Backend,
    /// The state the router serves.
    pub state: AppState,
    /// Its tasks (analytics writers, live hub), stopped on drop.
    pub tasks: Supervisor,
    /// Tenant `acme`.
    pub tenant: TenantContext,
    /// `acme`'s owner.
    pub owner: User,
    subdomain: String,
    router: Router,
    keys: JwtKeys,
    services: Services,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A fresh app on embedded SQLite with the test defaults.
    pub async fn new() -> anyhow::Result<Self> {
        Self::with_config(|_| {}).await
    }

    /// A fresh app on embedded SQLite with the test defaults, then `adjust`
    /// applied to its configuration.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::on_with_config(Backend::Sqlite, adjust)
            .await?
            .ok_or_else(|| anyhow::anyhow!("SQLite is always there"))
    }

    /// A fresh app on `backend` with the test defaults; `None` when
    /// PostgreSQL is unreachable and not required (CI requires it:
    /// `TENANTKIT_REQUIRE_POSTGRES`).
    pub async fn on(backend: Backend) -> anyhow::Result<Option<Self>> {
        Self::on_with_config(backend, |_| {}).await
    }

    /// Like [`TestApp::on`], then `adjust` applied to the configuration.
    pub async fn on_with_config(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let mut config = Config::default();
        config.database.data_dir = dir.path().to_path_buf();
        config.billing.plans.default_plan = "enterprise".into();
        config.webhooks.worker = false;
        let mut subdomain = "acme".to_owned();
        if backend == Backend::Postgres {
            let Some(database) = postgres_database().await else {
                return Ok(None);
            };
            config.database.url = Some(database.owner_url);
            config.database.runtime_url = Some(database.runtime_url.into());
            subdomain = format!("acme-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            // Processes sharing a database share their keys; each app its own here.
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            config.auth.jwt_secret = Some(secret.into());
            // Webhook secrets sealed by one app must open in the next.
            config.webhooks.secret_keys = vec![WEBHOOK_KEY.to_owned().into()];
        }
        adjust(&mut config);
        let db = open_runtime_db(&config).await?;
        let keys = load_keys(&config)?;
        let (tenant, owner) = db
            .platform()
            .create_tenant_with_owner(
                &NewTenant {
                    name: "Acme".into(),
                    subdomain: subdomain.clone(),
                },
                &NewUser {
                    email: "owner@acme.test".into(),
                    role: Role::Owner,
                },
                &Actor::System,
            )
            .await?;
        let tenant = db
            .resolve_id(tenant.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("tenant acme was just created"))?;
        let tasks = Supervisor::new();
        let (state, services) = AppState::start(config, db, keys.clone(), &tasks).await?;
        let router = app::app(state.clone())?;
        Ok(Some(Self {
            backend,
            subdomain,
            state,
            tasks,
            tenant,
            owner,
            router,
            keys,
            services,
            _dir: dir,
        }))
    }

    /// A token for `acme`'s owner.
    pub fn owner_token(&self) -> String {
        self.token_for(&self.owner, TokenRole::Owner)
    }

    /// A token for `user` of `acme` with `role`.
    pub fn token_for(&self, user: &User, role: TokenRole) -> String {
        self.keys
            .issue(&user.id.to_string(), Some(self.tenant.id()), role, 300)
            .expect("a test token")
    }

    /// Stops the app's tasks in the order `serve` does, waiting up to 5 s
    /// for each: the webhook worker first (deliveries in flight finish or are
    /// given back, so another app on the same database can make them), then
    /// the rest. Dropping the app only tells them to stop.
    pub async fn shutdown(self) {
        let grace = std::time::Duration::from_secs(5);
        if let Some(worker) = &self.services.worker {
            worker.stop_within(grace).await;
        }
        for unit in &self.services.background {
            unit.stop_within(grace).await;
        }
    }

    /// The keys the app verifies tokens with (to mint unusual ones).
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// A platform admin's token.
    pub fn admin_token(&self) -> String {
        self.keys
            .issue("ops", None, TokenRole::PlatformAdmin, 300)
            .expect("a test token")
    }

    /// Sends `request` through the router, as a client at 127.0.0.1.
    pub async fn send(&self, mut request: Request<Body>) -> Response<Body> {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// The subdomain of tenant `acme` (`acme` on SQLite).
    pub fn subdomain(&self) -> &str {
        &self.subdomain
    }

    /// `method path` for tenant `acme` with `token` and an optional JSON
    /// body; the status and the body as JSON (`Null` when empty or not
    /// JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-tenant-id", self.subdomain.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self.send(request.body(body).expect("a request")).await;
        json_of(response).await
    }

    /// `GET path` for `acme` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }
}

/// The key sealing webhook secrets in every app on PostgreSQL (base64 of
/// 32 bytes; SQLite apps make their own in their data directory).
const WEBHOOK_KEY: &str = "dGVuYW50a2l0LXRlc3RhcHAtd2ViaG9vay1rZXktMzI=";

/// The PostgreSQL test database of this process: every crate's migrations
/// applied as the owner, the runtime role set up (once per process; reused
/// across runs while the migrations are unchanged).
async fn postgres_database() -> Option<tenantkit::testing::PgTestDatabase> {
    let billing = tenantkit_billing::migrations();
    let webhooks = tenantkit_webhooks::schema::migrations();
    let analytics = tenantkit_analytics::storage::migrations();
    let migrators = [
        tenantkit::store::core_migrations(),
        &billing,
        &webhooks,
        &analytics,
    ];
    tenantkit::testing::postgres_database_with("tenantkit_server_routes", &migrators, |db| {
        Box::pin(migrate_schema(
            db,
            Config::default().analytics.retention_days,
        ))
    })
    .await
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The writers end with the runtime; the loops are told to stop.
        for unit in self.services.background.iter().chain(&self.services.worker) {
            unit.stop();
        }
    }
}

/// A response's status and its body as JSON (`Null` when empty or not JSON).
pub async fn json_of(response: Response<Body>) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sets `config` up for webhook deliveries to receivers on loopback: the
/// delivery worker on, plain HTTP and `127.0.0.1` allowed as targets, and
/// every tenant on the `pro` plan (which has webhooks). Every server of a
/// test run set up so has the same policy, so whichever claims a delivery
/// can make it. The one place the socket-free and the socket tests say so.
pub fn deliver_webhooks_to_loopback(config: &mut Config) {
    config.webhooks.worker = true;
    config.billing.plans.default_plan = "pro".into();
    config.webhooks.allow_http = true;
    config.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
}
