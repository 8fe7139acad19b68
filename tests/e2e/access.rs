//! Access ends when a user is deleted or demoted, or the tenant suspended,
//! within 5 seconds in every other server sharing the database. (At once in
//! the server that made the change: `reference-server/tests/routes/access.rs`,
//! without a socket.)

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{TenantId, TenantStatus, audit::Actor, auth::TokenRole};
use tenantkit_e2e::{Backend, Server};

/// Creates a user with `role` through the API; their id.
async fn add_user(s: &Server, tenant: TenantId, sub: &str, role: &str) -> String {
    let res = s
        .request(Method::POST, "/users", sub, s.token(tenant, TokenRole::Owner))
        .json(&json!({ "email": format!("{role}-{}@access.test", uuid::Uuid::new_v4().simple()), "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn token_for(s: &Server, tenant: TenantId, user: &str, role: TokenRole) -> String {
    s.keys().issue(user, Some(tenant), role, 600).unwrap()
}

async fn status(s: &Server, method: Method, path: &str, sub: &str, token: &str) -> StatusCode {
    let mut req = s.request(method.clone(), path, sub, token);
    if method == Method::POST {
        req = req
            .json(&json!({ "email": format!("x{}@access.test", uuid::Uuid::new_v4().simple()) }));
    }
    req.send().await.unwrap().status()
}

/// Polls until `GET /users` on `s` answers `want`; how long that took.
async fn until(s: &Server, sub: &str, token: &str, want: StatusCode) -> Duration {
    let start = Instant::now();
    loop {
        let got = status(s, Method::GET, "/users", sub, token).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {got} after 5 s, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two server processes on one PostgreSQL database: a change made through
/// one reaches the other well within 5 seconds (its `LISTEN/NOTIFY`), for a
/// deleted user, a demotion, and a suspension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_reach_every_server_within_5_seconds() {
    let Some(one) = Server::start(Backend::Postgres).await else {
        return;
    };
    let two = Server::start(Backend::Postgres).await.unwrap();
    let (tenant, sub) = one.create_tenant().await;
    let owner = one.token(tenant, TokenRole::Owner);
    let admin = add_user(&one, tenant, &sub, "admin").await;
    let token = token_for(&one, tenant, &admin, TokenRole::Admin);
    // `two` has the user and the tenant cached.
    assert_eq!(
        status(&two, Method::GET, "/users", &sub, &token).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&two, Method::POST, "/users", &sub, &token).await,
        StatusCode::CREATED
    );

    let res = one
        .request(Method::PATCH, &format!("/users/{admin}"), &sub, &owner)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let start = Instant::now();
    while status(&two, Method::POST, "/users", &sub, &token).await != StatusCode::FORBIDDEN {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "demotion unseen by the other server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let res = one
        .request(Method::DELETE, &format!("/users/{admin}"), &sub, &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let took = until(&two, &sub, &token, StatusCode::UNAUTHORIZED).await;
    eprintln!("deleted user refused by the other server after {took:?}");

    assert_eq!(
        status(&two, Method::GET, "/users", &sub, &owner).await,
        StatusCode::OK
    );
    one.running
        .db
        .platform()
        .set_tenant_status(tenant, TenantStatus::Suspended, &Actor::System)
        .await
        .unwrap();
    let took = until(&two, &sub, &owner, StatusCode::FORBIDDEN).await;
    eprintln!("suspension seen by the other server after {took:?}");
    one.stop().await;
    two.stop().await;
}

/// The token printed at first start names the demo tenant's owner, so it
/// passes the user check (SQLite: each test server starts on an empty database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_first_start_token_names_the_demo_owner() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let demo = s
        .running
        .demo
        .as_ref()
        .expect("first start bootstraps `demo`");
    let claims = s.keys().verify(&demo.token).unwrap();
    let res = s
        .request(Method::GET, "/users", &demo.subdomain, &demo.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let users: Value = res.json().await.unwrap();
    assert_eq!(users["items"][0]["id"], claims.sub);
    assert_eq!(users["items"][0]["role"], "owner");
    s.stop().await;
}
