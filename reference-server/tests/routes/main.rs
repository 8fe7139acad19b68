//! Route tests without a socket: the whole router ([`tenantkit_server::app::app`])
//! on a fresh database, driven with `oneshot` through [`TestApp`], on
//! embedded SQLite and on PostgreSQL as the runtime role. End-to-end tests
//! that need a real socket (several processes, WebSockets, streaming,
//! shutdown) live in `tests/e2e`.

mod access;
mod analytics;
mod attacks;
mod audit;
mod billing;
mod client;
mod flows;
mod publishing;
mod sso;
mod webhooks;

use http::{Method, Request, StatusCode, header};
use serde_json::json;
use tenantkit::{Backend, auth::TokenRole};
use tenantkit_server::testing::{TestApp, json_of};

/// Declares each `async fn name(backend: Backend)` as a test on both
/// backends.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(tenantkit::Backend::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(tenantkit::Backend::Postgres).await;
            })+
        }
    };
}
pub(crate) use on_both_backends;

/// A fresh app on `$backend` configured as the socket tests' servers are
/// ([`client::Server::start_with`]), after `$tweak`; returns from the test
/// when PostgreSQL is unreachable and not required.
macro_rules! server {
    ($backend:expr) => {
        server!($backend, |_| {})
    };
    ($backend:expr, $tweak:expr) => {
        match $crate::client::Server::start_with($backend, $crate::client::tweak($tweak)).await {
            Some(s) => s,
            None => return,
        }
    };
}
pub(crate) use server;

on_both_backends!(
    public_routes_answer_without_credentials,
    a_tenant_route_needs_a_credential_of_that_tenant,
    a_member_reads_users_and_cannot_write_them,
);

fn get(path: &str) -> Request<axum::body::Body> {
    Request::get(path).body(axum::body::Body::empty()).unwrap()
}

async fn public_routes_answer_without_credentials(backend: Backend) {
    let Some(app) = TestApp::on(backend).await.expect("the test app starts") else {
        return;
    };
    let (status, _) = json_of(app.send(get("/healthz")).await).await;
    assert_eq!(status, StatusCode::OK);

    let response = app.send(get("/openapi.json")).await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let (status, served) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    let catalogue = tenantkit_webhooks::catalogue::EventCatalogue::tenantkit();
    let document: serde_json::Value =
        serde_json::from_str(&tenantkit_server::app::document_json(&catalogue)).unwrap();
    assert_eq!(
        served, document,
        "the document the router serves is app::document() with its event types"
    );

    let response = app.send(get("/no/such/route")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

async fn a_tenant_route_needs_a_credential_of_that_tenant(backend: Backend) {
    let Some(app) = TestApp::on(backend).await.expect("the test app starts") else {
        return;
    };
    let request = Request::get("/users")
        .header("x-tenant-id", app.subdomain())
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));

    let (status, problem) = app.get("/users", &app.admin_token()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    let (status, users) = app.get("/users", &app.owner_token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"][0]["email"], "owner@acme.test");
}

async fn a_member_reads_users_and_cannot_write_them(backend: Backend) {
    let Some(app) = TestApp::on(backend).await.expect("the test app starts") else {
        return;
    };
    let owner = app.owner_token();
    let (status, created) = app
        .call(
            Method::POST,
            "/users",
            &owner,
            Some(json!({ "email": "Mia@Acme.test", "role": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["email"], "mia@acme.test");
    let mia: tenantkit::User = serde_json::from_value(created).unwrap();
    let member = app.token_for(&mia, TokenRole::Member);

    let (status, users) = app.get("/users", &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"].as_array().unwrap().len(), 2);
    let (status, problem) = app
        .call(
            Method::POST,
            "/users",
            &member,
            Some(json!({ "email": "eve@acme.test" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["status"], 403);
}

/// SQLite only: on PostgreSQL the apps of a run share one database, so
/// `acme` is not the only tenant.
#[tokio::test]
async fn platform_routes_are_for_platform_admins() {
    let app = TestApp::new().await.unwrap();
    let request = |token: &str| {
        Request::get("/tenants")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let (status, tenants) = json_of(app.send(request(&app.admin_token())).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenants["items"][0]["subdomain"], "acme");
    let (status, _) = json_of(app.send(request(&app.owner_token())).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
