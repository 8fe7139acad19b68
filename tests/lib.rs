//! Harness for the end-to-end suite: the reference server on a real socket,
//! on SQLite or on PostgreSQL (migrated by the server's own `migrate`, served
//! as the runtime role).

use std::time::Duration;

use tenantkit::{TenantId, auth::TokenRole};
use tenantkit_server::{Running, config::Config};

/// The Stripe webhook signing secret every test server uses.
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_e2e";

/// The HS256 secret every test server uses.
pub const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-!!";
/// The base domain every test server serves tenants under.
pub const BASE_DOMAIN: &str = "example.test";

/// A running server and a client for it.
pub struct Server {
    /// The server.
    pub running: Running,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// A client.
    pub http: reqwest::Client,
    /// The configuration it runs with.
    pub config: Config,
    keys: tenantkit::auth::JwtKeys,
    /// The first owner of each tenant made by [`Server::create_tenant`]:
    /// tokens must name a real user.
    owners: std::sync::Mutex<std::collections::HashMap<TenantId, String>>,
    _dir: tempfile::TempDir,
}

/// The key sealing webhook secrets in every test server (base64 of 32 bytes).
pub const WEBHOOK_KEY: &str = "dGVuYW50a2l0LWUyZS13ZWJob29rLWtleS0zMi1ieXQ=";

fn base_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.base_domain = Some(BASE_DOMAIN.into());
    config.database.data_dir = dir.path().to_owned();
    config.database.max_connections = 5;
    config.auth.jwt_secret = Some(SECRET.to_owned().into());
    config.webhooks.secret_keys = vec![WEBHOOK_KEY.to_owned().into()];
    // Every PostgreSQL test server of a run shares one database, so any
    // worker may claim any delivery: only servers that ask for one (with
    // the receivers' loopback allowed) run a worker.
    config.webhooks.worker = false;
    config.billing.stripe_webhook_secrets = vec![STRIPE_WEBHOOK_SECRET.to_owned().into()];
    config.billing.plan_cache_ttl_secs = 0;
    let plans = &mut config.billing.plans.plans;
    plans.get_mut("pro").unwrap().stripe_price_ids = vec!["price_pro".into()];
    plans.get_mut("enterprise").unwrap().stripe_price_ids = vec!["price_enterprise".into()];
    config
}

/// The event types docs/webhooks.md configures: `invoice.paid` and
/// `invoice.voided` (`[[webhooks.event_types]]`), with a schema.
pub fn invoice_events(config: &mut Config) {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["invoice", "amount"],
        "properties": {
            "invoice": { "type": "string" },
            "amount": { "type": "integer", "minimum": 0 }
        }
    });
    for (name, description) in [
        ("invoice.paid", "An invoice was paid"),
        ("invoice.voided", "An invoice was voided"),
    ] {
        config
            .webhooks
            .event_types
            .push(tenantkit_server::config::EventTypeConfig {
                name: name.into(),
                description: description.into(),
                schema: Some(schema.clone()),
                example: serde_json::json!({ "invoice": "2026-0042", "amount": 4200 }),
            });
    }
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// PostgreSQL, as the runtime role.
    Postgres,
}

fn postgres_required() -> bool {
    ["CI", "TENANTKIT_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0"))
}

static PG_URL: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();

/// The owner URL of an empty database migrated by `tenantkit-server migrate`,
/// once per process.
pub async fn postgres_url() -> Option<String> {
    PG_URL
        .get_or_init(|| async {
            let admin = std::env::var("TENANTKIT_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let pool = match sqlx::PgPool::connect(&admin).await {
                Ok(pool) => pool,
                Err(e) if !postgres_required() => {
                    eprintln!("WARNING: PostgreSQL unreachable at {admin} ({e}); PostgreSQL e2e tests SKIPPED");
                    return None;
                }
                Err(e) => panic!("PostgreSQL is required in CI but unreachable at {admin}: {e}"),
            };
            // A fresh, empty database per run. Earlier runs' databases are dropped unless
            // still in use (DROP DATABASE refuses while connections are open).
            let name = format!("tenantkit_e2e_{}", std::process::id());
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'tenantkit\\_e2e\\_%' AND datname <> $1",
            )
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap();
            for db in stale {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                    .execute(&pool)
                    .await;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            pool.close().await;
            let (prefix, _) = admin.rsplit_once('/').unwrap();
            let url = format!("{prefix}/{name}");
            let dir = tempfile::tempdir().unwrap();
            let mut config = base_config(&dir);
            config.database.url = Some(url.clone());
            tenantkit_server::migrate(&config).await.expect("tenantkit-server migrate");
            Some(url)
        })
        .await
        .clone()
}

impl Server {
    /// A server delivering webhooks to receivers on loopback
    /// ([`deliver_webhooks_to_loopback`](tenantkit_server::testing::deliver_webhooks_to_loopback)),
    /// after `tweak` adjusts the configuration.
    pub async fn with_loopback_webhooks(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        Self::start_with(backend, |c| {
            tenantkit_server::testing::deliver_webhooks_to_loopback(c);
            tweak(c);
        })
        .await
    }

    /// Starts a server on `backend`, after `tweak` adjusts its configuration.
    /// `None` when PostgreSQL is unreachable and not required.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(&dir);
        if let Backend::Postgres = backend {
            config.database.url = Some(postgres_url().await?);
        }
        tweak(&mut config);
        let keys = tenantkit_server::load_keys(&config).unwrap();
        let running = tenantkit_server::start(config.clone())
            .await
            .expect("server starts");
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Some(Self {
            running,
            base,
            http,
            config,
            keys,
            owners: Default::default(),
            _dir: dir,
        })
    }

    /// Starts a server with the default test configuration.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// A token for the first owner of `tenant` (made by
    /// [`Server::create_tenant`]) carrying `role`, which is then their
    /// effective role.
    pub fn token(&self, tenant: TenantId, role: TokenRole) -> String {
        let owner = self.owner(tenant);
        self.keys.issue(&owner, Some(tenant), role, 600).unwrap()
    }

    /// A token as `tenantkit-server token issue --tenant T --role R` mints
    /// it: for the tenant's first owner, whoever made the tenant.
    pub async fn cli_token(&self, tenant: TenantId, role: tenantkit::Role) -> String {
        let ctx = self.context(tenant).await;
        tenantkit_server::issue_user_token(
            &self.running.db,
            &self.keys,
            &ctx,
            None,
            Some(role),
            600,
        )
        .await
        .unwrap()
    }

    /// `tenant`, resolved through the server's store.
    pub async fn context(&self, tenant: TenantId) -> tenantkit::TenantContext {
        self.running
            .db
            .resolve_id(tenant)
            .await
            .unwrap()
            .expect("tenant exists")
    }

    /// The user id of the first owner of `tenant` (made by [`Server::create_tenant`]).
    pub fn owner(&self, tenant: TenantId) -> String {
        self.owners
            .lock()
            .unwrap()
            .get(&tenant)
            .cloned()
            .expect("tokens name a real user: make the tenant with Server::create_tenant")
    }

    /// A platform-admin token.
    pub fn admin_token(&self) -> String {
        self.keys
            .issue("e2e-ops", None, TokenRole::PlatformAdmin, 600)
            .unwrap()
    }

    /// The keys the server verifies with.
    pub fn keys(&self) -> &tenantkit::auth::JwtKeys {
        &self.keys
    }

    /// `<base><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` for the tenant named `tenant` (`X-Tenant-Id`), with
    /// `credential` (a JWT or an API key) as the bearer token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        tenant: &str,
        credential: impl std::fmt::Display,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-tenant-id", tenant)
            .bearer_auth(credential)
    }

    /// Creates a tenant with a random subdomain through `POST /tenants`;
    /// returns `(id, subdomain)`.
    pub async fn create_tenant(&self) -> (TenantId, String) {
        let sub = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let res = self
            .http
            .post(self.url("/tenants"))
            .bearer_auth(self.admin_token())
            .json(&serde_json::json!({ "name": "E2E", "subdomain": sub, "owner_email": "owner@e2e.test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        let body: serde_json::Value = res.json().await.unwrap();
        let id: TenantId = body["id"].as_str().unwrap().parse().unwrap();
        let owner = body["owner"]["id"].as_str().unwrap().to_owned();
        self.owners.lock().unwrap().insert(id, owner);
        (id, sub)
    }

    /// A new tenant (through `POST /tenants`) and a token for its owner.
    pub async fn owned_tenant(&self) -> OwnedTenant {
        let (id, sub) = self.create_tenant().await;
        let token = self.token(id, TokenRole::Owner);
        OwnedTenant { id, sub, token }
    }

    /// `GET /metrics` as a platform admin: the OpenMetrics text.
    pub async fn metrics(&self) -> String {
        let res = self
            .http
            .get(self.url("/metrics"))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET /metrics");
        res.text().await.unwrap()
    }

    /// Puts `tenant` on the plan of `price` the way Stripe would: a signed
    /// `customer.subscription.updated` to `POST /webhooks/stripe`.
    pub async fn subscribe(&self, tenant: TenantId, price: &str) {
        let ctx = self.context(tenant).await;
        let (body, signature) = tenantkit_billing::testing::subscription_activated(
            &ctx,
            price,
            &STRIPE_WEBHOOK_SECRET.to_owned().into(),
        );
        let res = self
            .http
            .post(self.url("/webhooks/stripe"))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the server; its data directory lives as long as what this
    /// returns (for reading an embedded database after shutdown).
    pub async fn stop_keeping_data(self) -> tempfile::TempDir {
        self.running.shutdown(Duration::from_secs(5)).await.unwrap();
        self._dir
    }
}

/// A tenant made by [`Server::owned_tenant`], with its owner's token.
pub struct OwnedTenant {
    /// Its id.
    pub id: TenantId,
    /// Its subdomain (sent as `X-Tenant-Id`).
    pub sub: String,
    /// A token of its first owner.
    pub token: String,
}

impl OwnedTenant {
    /// A new API key of this tenant with `scopes` (made by its owner): the key.
    pub async fn api_key(&self, s: &Server, scopes: serde_json::Value) -> String {
        let res = self
            .call(s, reqwest::Method::POST, "/api-keys")
            .json(&serde_json::json!({ "name": "k", "scopes": scopes }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "creating an API key");
        let body: serde_json::Value = res.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// `GET path` for this tenant, as its owner: the JSON answer.
    pub async fn get_json(&self, s: &Server, path: &str) -> serde_json::Value {
        self.call(s, reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `method path` for this tenant, as its owner.
    pub fn call(&self, s: &Server, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        s.request(method, path, &self.sub, &self.token)
    }
}

/// Asserts `res` is a problem document with `status`; returns it.
pub async fn problem(
    res: reqwest::Response,
    status: reqwest::StatusCode,
    what: &str,
) -> serde_json::Value {
    let (got, headers) = (res.status(), res.headers().clone());
    let body: serde_json::Value = res.json().await.unwrap();
    tenantkit::testing::assert_problem(what, status, got, &headers, &body);
    body
}

/// A client of `/ws/analytics`.
pub mod live {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio::net::TcpStream;
    use tokio_tungstenite::{
        MaybeTlsStream, WebSocketStream,
        tungstenite::{self, Message, client::IntoClientRequest},
    };

    use super::Server;

    /// How a client presents its credential.
    #[derive(Clone, Copy, Debug)]
    pub enum Credential<'a> {
        /// None at all.
        None,
        /// `Authorization: Bearer <token>`.
        Header(&'a str),
        /// `Sec-WebSocket-Protocol: tenantkit.v1, bearer.<token>`, as a browser does.
        Subprotocol(&'a str),
        /// `Sec-WebSocket-Protocol: bearer.<token>` alone.
        SubprotocolOnly(&'a str),
    }

    /// An open stream.
    pub struct Stream {
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        /// The subprotocol the server selected.
        pub protocol: Option<String>,
    }

    /// A refused handshake: its status and problem document.
    #[derive(Debug)]
    pub struct Refused {
        /// The status.
        pub status: u16,
        /// The body (problem+json).
        pub body: Value,
        /// The media type.
        pub content_type: Option<String>,
        /// `Retry-After`, if any.
        pub retry_after: Option<String>,
    }

    /// Opens `/ws/analytics<query>` for the tenant named `tenant` (`X-Tenant-Id`).
    pub async fn connect(
        s: &Server,
        tenant: &str,
        credential: Credential<'_>,
        query: &str,
    ) -> Result<Stream, Refused> {
        let url = format!("{}/ws/analytics{query}", s.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("x-tenant-id", tenant.parse().unwrap());
        match credential {
            Credential::None => {}
            Credential::Header(token) => {
                headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            Credential::Subprotocol(token) => {
                headers.insert(
                    "sec-websocket-protocol",
                    format!("tenantkit.v1, bearer.{token}").parse().unwrap(),
                );
            }
            Credential::SubprotocolOnly(token) => {
                headers.insert(
                    "sec-websocket-protocol",
                    format!("bearer.{token}").parse().unwrap(),
                );
            }
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, response)) => Ok(Stream {
                ws,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_owned()),
            }),
            Err(tungstenite::Error::Http(response)) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                Err(Refused {
                    status: response.status().as_u16(),
                    content_type: header("content-type"),
                    retry_after: header("retry-after"),
                    body: response
                        .body()
                        .as_deref()
                        .and_then(|b| serde_json::from_slice(b).ok())
                        .unwrap_or(Value::Null),
                })
            }
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    /// What the stream brought next.
    #[derive(Debug, PartialEq)]
    pub enum Next {
        /// A JSON message.
        Json(Value),
        /// A close frame: its code and reason.
        Closed(u16, String),
        /// The connection ended without a close frame.
        Ended,
        /// Nothing within the time given.
        Silent,
    }

    impl Stream {
        /// The next message (pings and pongs are answered and skipped), within `within`.
        pub async fn next(&mut self, within: Duration) -> Next {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                match tokio::time::timeout_at(deadline, self.ws.next()).await {
                    Err(_) => return Next::Silent,
                    Ok(None) | Ok(Some(Err(_))) => return Next::Ended,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        return Next::Json(serde_json::from_str(text.as_str()).unwrap());
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        return match frame {
                            Some(f) => Next::Closed(f.code.into(), f.reason.to_string()),
                            None => Next::Closed(1005, String::new()),
                        };
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        }

        /// The next JSON message, which must come within `within`.
        pub async fn json(&mut self, within: Duration) -> Value {
            match self.next(within).await {
                Next::Json(v) => v,
                other => panic!("expected a message, got {other:?}"),
            }
        }

        /// Waits for the `ready` message.
        pub async fn ready(&mut self) -> Value {
            let ready = self.json(Duration::from_secs(10)).await;
            assert_eq!(ready["type"], "ready", "{ready}");
            ready
        }

        /// Updates received within `within`, summed by type: `(messages, counts)`.
        pub async fn updates_for(&mut self, within: Duration) -> Vec<Value> {
            let deadline = tokio::time::Instant::now() + within;
            let mut updates = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.next(left).await {
                    Next::Json(v) if v["type"] == "update" => updates.push(v),
                    Next::Json(v) => panic!("unexpected message {v}"),
                    Next::Silent => return updates,
                    other => panic!("the stream ended: {other:?}"),
                }
            }
        }

        /// Skips updates until the stream ends (within `within` each): how it ended.
        pub async fn end(&mut self, within: Duration) -> Next {
            loop {
                match self.next(within).await {
                    Next::Json(v) if v["type"] == "update" => {}
                    other => return other,
                }
            }
        }

        /// Sends a JSON message.
        pub async fn send(&mut self, message: &Value) {
            self.ws
                .send(Message::Text(message.to_string().into()))
                .await
                .unwrap();
        }

        /// Closes from this side.
        pub async fn close(mut self) {
            let _ = self.ws.close(None).await;
        }
    }

    /// The sum of `counts[ty]` over `updates`.
    pub fn total(updates: &[Value], ty: &str) -> u64 {
        updates
            .iter()
            .map(|u| u["counts"][ty].as_u64().unwrap_or(0))
            .sum()
    }
}
