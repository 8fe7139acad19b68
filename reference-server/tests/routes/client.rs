//! A client of a [`TestApp`] shaped like the socket tests' (reqwest's
//! builder and response, the few methods they use), so a test moves from
//! `tests/e2e` to here with its steps and assertions as they were.

use std::{collections::HashMap, sync::Mutex};

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tenantkit::{TenantId, auth::TokenRole};
use tenantkit_server::testing::TestApp;

/// The base domain of [`Server::start`]'s apps (`<tenant>.example.test`).
pub(crate) const BASE_DOMAIN: &str = "example.test";

/// The Stripe webhook secret [`billing`] configures.
pub(crate) const STRIPE_WEBHOOK_SECRET: &str = "whsec_routes";

/// Billing as the billing tests need it: Stripe's webhook secret, the
/// plans' price ids, and no plan cache (a subscription applies at once).
pub(crate) fn billing(config: &mut tenantkit_server::config::Config) {
    config.billing.stripe_webhook_secrets = vec![STRIPE_WEBHOOK_SECRET.to_owned().into()];
    config.billing.plan_cache_ttl_secs = 0;
    let plans = &mut config.billing.plans.plans;
    plans.get_mut("pro").unwrap().stripe_price_ids = vec!["price_pro".into()];
    plans.get_mut("enterprise").unwrap().stripe_price_ids = vec!["price_enterprise".into()];
}

/// `tweak`, typed as a change to the configuration (so a closure written
/// `|c| c.field = …` needs no annotation).
pub(crate) fn tweak<F: FnOnce(&mut tenantkit_server::config::Config)>(tweak: F) -> F {
    tweak
}

/// The app, with the tenants a test made and their first owners.
pub(crate) struct Server {
    pub(crate) app: TestApp,
    owners: Mutex<HashMap<TenantId, String>>,
}

impl Server {
    pub(crate) fn new(app: TestApp) -> Self {
        Self {
            app,
            owners: Mutex::default(),
        }
    }

    /// An app configured as the socket tests' servers are (tenants start on
    /// the free plan; [`billing`]), after `tweak`; `None` when PostgreSQL is
    /// unreachable and not required.
    /// A server delivering webhooks to receivers on loopback
    /// ([`deliver_webhooks_to_loopback`](tenantkit_server::testing::deliver_webhooks_to_loopback)),
    /// after `tweak` adjusts the configuration.
    pub(crate) async fn with_loopback_webhooks(
        backend: tenantkit::Backend,
        tweak: impl FnOnce(&mut tenantkit_server::config::Config),
    ) -> Option<Self> {
        Self::start_with(backend, |c| {
            tenantkit_server::testing::deliver_webhooks_to_loopback(c);
            tweak(c);
        })
        .await
    }

    pub(crate) async fn start_with(
        backend: tenantkit::Backend,
        tweak: impl FnOnce(&mut tenantkit_server::config::Config),
    ) -> Option<Self> {
        TestApp::on_with_config(backend, |c| {
            c.server.base_domain = Some(BASE_DOMAIN.into());
            billing(c);
            c.billing.plans.default_plan = "free".into();
            tweak(c);
        })
        .await
        .expect("the test app starts")
        .map(Self::new)
    }

    /// [`Server::start_with`] with no change.
    pub(crate) async fn start(backend: tenantkit::Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// `GET /metrics` as a platform admin: the OpenMetrics text.
    pub(crate) async fn metrics(&self) -> String {
        let res = self
            .get("/metrics")
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET /metrics");
        res.text().await.unwrap()
    }

    /// `tenant`, resolved through the app's store.
    pub(crate) async fn context(&self, tenant: TenantId) -> tenantkit::TenantContext {
        self.app
            .state
            .db
            .resolve_id(tenant)
            .await
            .unwrap()
            .expect("tenant exists")
    }

    /// A new tenant (through `POST /tenants`) and a token for its owner.
    pub(crate) async fn owned_tenant(&self) -> OwnedTenant {
        let (id, sub) = self.create_tenant().await;
        let token = self.token(id, TokenRole::Owner);
        OwnedTenant { id, sub, token }
    }

    /// Stops the app as `serve` stops ([`TestApp::shutdown`]).
    pub(crate) async fn stop(self) {
        self.app.shutdown().await;
    }

    /// A request to `path` naming no tenant and carrying no credential.
    pub(crate) fn get(&self, path: &str) -> Req<'_> {
        Req::new(&self.app, Method::GET, path)
    }

    /// A `POST` to `path` naming no tenant and carrying no credential.
    pub(crate) fn post(&self, path: &str) -> Req<'_> {
        Req::new(&self.app, Method::POST, path)
    }

    /// A request to `path` for the tenant named `tenant` (`X-Tenant-Id`),
    /// with `credential` (a JWT or an API key) as the bearer token.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        tenant: &str,
        credential: impl std::fmt::Display,
    ) -> Req<'_> {
        Req::new(&self.app, method, path)
            .header("x-tenant-id", tenant)
            .bearer_auth(credential)
    }

    /// Creates a tenant with a random subdomain through `POST /tenants`;
    /// `(id, subdomain)`.
    pub(crate) async fn create_tenant(&self) -> (TenantId, String) {
        let sub = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        (self.create_tenant_named(&sub).await, sub)
    }

    /// Creates tenant `sub` through `POST /tenants`; its id.
    pub(crate) async fn create_tenant_named(&self, sub: &str) -> TenantId {
        let res = Req::new(&self.app, Method::POST, "/tenants")
            .bearer_auth(self.app.admin_token())
            .json(&serde_json::json!({ "name": "Routes", "subdomain": sub, "owner_email": "owner@routes.test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        let id: TenantId = body["id"].as_str().unwrap().parse().unwrap();
        let owner = body["owner"]["id"].as_str().unwrap().to_owned();
        self.owners.lock().unwrap().insert(id, owner);
        id
    }

    /// A token for the first owner of `tenant` (made by
    /// [`Server::create_tenant`]) carrying `role`.
    pub(crate) fn token(&self, tenant: TenantId, role: TokenRole) -> String {
        let owner = self.owner(tenant);
        self.app
            .keys()
            .issue(&owner, Some(tenant), role, 600)
            .unwrap()
    }

    /// A token as `tenantkit-server token issue --tenant T --role R` mints it.
    pub(crate) async fn cli_token(&self, tenant: TenantId, role: tenantkit::Role) -> String {
        let ctx = self.context(tenant).await;
        tenantkit_server::issue_user_token(
            &self.app.state.db,
            self.app.keys(),
            &ctx,
            None,
            Some(role),
            600,
        )
        .await
        .unwrap()
    }

    /// The user id of the first owner of `tenant` (made by [`Server::create_tenant`]).
    pub(crate) fn owner(&self, tenant: TenantId) -> String {
        self.owners.lock().unwrap()[&tenant].clone()
    }

    /// Subscribes `tenant` to `price` through a signed Stripe webhook (the
    /// app needs [`billing`]'s configuration).
    pub(crate) async fn subscribe(&self, tenant: TenantId, price: &str) {
        let ctx = self.context(tenant).await;
        let (body, signature) = tenantkit_billing::testing::subscription_activated(
            &ctx,
            price,
            &STRIPE_WEBHOOK_SECRET.to_owned().into(),
        );
        let res = self
            .post("/webhooks/stripe")
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// The keys the app verifies tokens with.
    pub(crate) fn keys(&self) -> &tenantkit::auth::JwtKeys {
        self.app.keys()
    }

    pub(crate) fn admin_token(&self) -> String {
        self.app.admin_token()
    }
}

/// A request being built (reqwest's `RequestBuilder`, for the router).
pub(crate) struct Req<'a> {
    app: &'a TestApp,
    request: http::request::Builder,
    body: Body,
    path: String,
}

impl<'a> Req<'a> {
    fn new(app: &'a TestApp, method: Method, path: &str) -> Self {
        Self {
            app,
            request: Request::builder().method(method).uri(path),
            body: Body::empty(),
            path: path.to_owned(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.request = self
            .request
            .header(name, HeaderValue::from_str(value.as_ref()).unwrap());
        self
    }

    pub(crate) fn bearer_auth(self, credential: impl std::fmt::Display) -> Self {
        self.header(
            header::AUTHORIZATION.as_str(),
            format!("Bearer {credential}"),
        )
    }

    pub(crate) fn json(mut self, body: &Value) -> Self {
        self.request = self
            .request
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it through the router (which cannot fail to answer), with the
    /// `Host` an HTTP client sends when the test set none.
    pub(crate) async fn send(mut self) -> Result<Reply, std::convert::Infallible> {
        if !self
            .request
            .headers_ref()
            .is_some_and(|h| h.contains_key(header::HOST))
        {
            self.request = self.request.header(header::HOST, "127.0.0.1");
        }
        let response = self.app.send(self.request.body(self.body).unwrap()).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Ok(Reply {
            status,
            headers,
            body,
            url: self.path,
        })
    }
}

/// An answer (reqwest's `Response`, for the router).
pub(crate) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: axum::body::Bytes,
    url: String,
}

impl Reply {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The path it answered.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn json<T: DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    pub(crate) async fn text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.body.to_vec())
    }
}

/// A tenant made by [`Server::owned_tenant`], with its owner's token.
pub(crate) struct OwnedTenant {
    pub(crate) id: TenantId,
    pub(crate) sub: String,
    pub(crate) token: String,
}

impl OwnedTenant {
    /// A new API key of this tenant with `scopes` (made by its owner).
    pub(crate) async fn api_key(&self, s: &Server, scopes: Value) -> String {
        let res = self
            .call(s, Method::POST, "/api-keys")
            .json(&serde_json::json!({ "name": "k", "scopes": scopes }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "creating an API key");
        let body: Value = res.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// `GET path` for this tenant, as its owner: the JSON answer.
    pub(crate) async fn get_json(&self, s: &Server, path: &str) -> Value {
        self.call(s, Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `method path` for this tenant, as its owner.
    pub(crate) fn call<'a>(&self, s: &'a Server, method: Method, path: &str) -> Req<'a> {
        s.request(method, path, &self.sub, &self.token)
    }
}

/// Asserts `res` is a problem document with `status`; returns it.
pub(crate) async fn problem(res: Reply, status: StatusCode, what: &str) -> Value {
    let (got, headers) = (res.status(), res.headers().clone());
    let body: Value = res.json().await.unwrap();
    tenantkit::testing::assert_problem(what, status, got, &headers, &body);
    body
}
