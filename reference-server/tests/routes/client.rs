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
        let ctx = self.app.state.db.resolve_id(tenant).await.unwrap().unwrap();
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

    pub(crate) fn body(mut self, body: &'static str) -> Self {
        self.body = Body::from(body);
        self
    }

    /// Sends it through the router (which cannot fail to answer).
    pub(crate) async fn send(self) -> Result<Reply, std::convert::Infallible> {
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
