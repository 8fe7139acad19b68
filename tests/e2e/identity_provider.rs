//! The server trusting a real OpenID provider (npm's oidc-provider on
//! loopback), on both backends: its tokens reach the API as the user they
//! name, in the tenant their organisation is linked to and no other, and a
//! removed user loses access.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::testing::oidc::{TestClient, TestProvider};
use tenantkit_e2e::{Backend, Server};

use crate::on_both_backends;

on_both_backends!(a_providers_tokens_reach_the_api_in_their_tenant_only);

async fn a_providers_tokens_reach_the_api_in_their_tenant_only(backend: Backend) {
    let org = format!("org_{}", uuid::Uuid::new_v4().simple());
    let provider = TestProvider::start(
        &[("rs1", "RS256"), ("ed1", "EdDSA")],
        &[
            TestClient::new("owner", json!({ "org_id": org, "email": "owner@e2e.test" }))
                .signing_with("EdDSA"),
            TestClient::new(
                "stranger",
                json!({ "org_id": org, "email": "nobody@e2e.test" }),
            ),
        ],
    )
    .await;
    let mut issuer = provider.issuer_config("corp-e2e");
    issuer.tenant_claim = "org_id".into();
    let Some(s) = Server::start_with(backend, |c| c.auth.issuers = vec![issuer]).await else {
        return;
    };
    let (a, sub_a) = s.create_tenant().await;
    let (_, sub_b) = s.create_tenant().await;
    s.running
        .db
        .platform()
        .link_external_id("corp-e2e", &org, a)
        .await
        .unwrap();

    let token = provider.token("owner").await;
    let res = s
        .request(Method::GET, "/users", &sub_a, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let users: Value = res.json().await.unwrap();
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "owner@e2e.test")
    );

    // The same e-mail owns tenant B too: the token still acts in A only.
    let res = s
        .request(Method::GET, "/users", &sub_b, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let stranger = provider.token("stranger").await;
    let res = s
        .request(Method::GET, "/users", &sub_a, &stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "the token's user does not exist in this tenant"
    );

    // The owner removed (through the platform's own token, an owner of A
    // made by another route), the provider's token stops working at once.
    let owner = s.owner(a);
    let other_owner = s
        .request(Method::POST, "/users", &sub_a, &token)
        .json(&json!({ "email": "second@e2e.test", "role": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(other_owner.status(), StatusCode::CREATED);
    let res = s
        .request(
            Method::DELETE,
            &format!("/users/{owner}"),
            &sub_a,
            s.token(a, tenantkit::auth::TokenRole::Owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = s
        .request(Method::GET, "/users", &sub_a, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}
