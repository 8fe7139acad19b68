//! Access ends when a user is deleted or demoted, at once in the process
//! that made the change (moved from the socket tests; how other processes
//! hear of it stays in `tests/e2e/access.rs`, which needs two servers).

use http::{Method, StatusCode};
use serde_json::json;
use tenantkit::{Backend, TenantId, auth::TokenRole};
use tenantkit_server::testing::TestApp;

use crate::on_both_backends;

on_both_backends!(
    deleted_and_demoted_users_lose_access_at_once,
    cli_tokens_name_a_real_user,
);

/// Creates a user with `role` through the API; their id.
async fn add_user(app: &TestApp, role: &str) -> String {
    let email = format!("{role}-{}@access.test", uuid::Uuid::new_v4().simple());
    let (status, user) = app
        .call(
            Method::POST,
            "/users",
            &app.owner_token(),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    user["id"].as_str().unwrap().to_owned()
}

fn token_for(app: &TestApp, user: &str, role: TokenRole) -> String {
    app.keys()
        .issue(user, Some(app.tenant.id()), role, 600)
        .unwrap()
}

async fn status(app: &TestApp, method: Method, path: &str, token: &str) -> StatusCode {
    let body = (method == Method::POST)
        .then(|| json!({ "email": format!("x{}@access.test", uuid::Uuid::new_v4().simple()) }));
    app.call(method, path, token, body).await.0
}

async fn deleted_and_demoted_users_lose_access_at_once(backend: Backend) {
    let Some(app) = TestApp::on(backend).await.expect("the test app starts") else {
        return;
    };
    let owner = app.owner_token();
    let admin = add_user(&app, "admin").await;
    let token = token_for(&app, &admin, TokenRole::Admin);
    assert_eq!(
        status(&app, Method::GET, "/users", &token).await,
        StatusCode::OK
    );
    let (deleted, _) = app
        .call(Method::DELETE, &format!("/users/{admin}"), &owner, None)
        .await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    let response = app
        .send(
            http::Request::get("/users")
                .header("x-tenant-id", app.subdomain())
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "deleted user's token"
    );
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    // A demoted admin's admin token acts as a member from the next request.
    let demoted = add_user(&app, "admin").await;
    let token = token_for(&app, &demoted, TokenRole::Admin);
    assert_eq!(
        status(&app, Method::POST, "/users", &token).await,
        StatusCode::CREATED
    );
    let (patched, _) = app
        .call(
            Method::PATCH,
            &format!("/users/{demoted}"),
            &owner,
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(patched, StatusCode::OK);
    assert_eq!(
        status(&app, Method::POST, "/users", &token).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, Method::GET, "/users", &token).await,
        StatusCode::OK
    );

    // A well-signed token naming nobody of this tenant.
    let nobody = token_for(&app, &TenantId::new().to_string(), TokenRole::Owner);
    assert_eq!(
        status(&app, Method::GET, "/users", &nobody).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn cli_tokens_name_a_real_user(backend: Backend) {
    let Some(app) = TestApp::on(backend).await.expect("the test app starts") else {
        return;
    };
    // `token issue --tenant T --role member`: the first owner, acting as a member.
    let token = tenantkit_server::issue_user_token(
        &app.state.db,
        app.keys(),
        &app.tenant,
        None,
        Some(tenantkit::Role::Member),
        600,
    )
    .await
    .unwrap();
    let claims = app.keys().verify(&token).unwrap();
    assert_eq!(claims.sub, app.owner.id.to_string());
    assert_eq!(
        status(&app, Method::GET, "/users", &token).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, Method::POST, "/users", &token).await,
        StatusCode::FORBIDDEN
    );
}
