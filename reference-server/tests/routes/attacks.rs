//! HTTP-level attacks across tenants (moved from the socket tests, steps
//! and assertions as they were).

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{
    Backend,
    auth::{Claims, JwtKeys, TokenRole},
};

use crate::{
    client::{BASE_DOMAIN, Reply},
    on_both_backends, server,
};

on_both_backends!(
    token_of_a_with_b_subdomain_is_403,
    token_of_a_with_b_header_is_403,
    unknown_tenant_is_404,
    missing_expired_or_forged_token_is_401,
    user_id_of_b_in_a_url_is_404,
    api_key_of_a_is_useless_at_b,
    tenant_token_cannot_manage_tenants,
);

async fn problem(res: Reply) -> Value {
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    res.json().await.unwrap()
}

async fn token_of_a_with_b_subdomain_is_403(backend: Backend) {
    let s = server!(backend);
    let ((a, _), (_, b_sub)) = (s.create_tenant().await, s.create_tenant().await);
    let token = s.token(a, TokenRole::Owner);
    for path in ["/tenant", "/users", "/api-keys"] {
        let res = s
            .get(path)
            .header("host", format!("{b_sub}.{BASE_DOMAIN}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(problem(res).await["title"], "Wrong tenant");
    }
    let res = s
        .post("/users")
        .header("host", format!("{b_sub}.{BASE_DOMAIN}:443"))
        .bearer_auth(&token)
        .json(&json!({ "email": "evil@a.test" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn token_of_a_with_b_header_is_403(backend: Backend) {
    let s = server!(backend);
    let ((a, _), (b, b_sub)) = (s.create_tenant().await, s.create_tenant().await);
    let token = s.token(a, TokenRole::Owner);
    for header in [b.to_string(), b_sub] {
        let res = s
            .request(Method::GET, "/users", &header, &token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{header}");
    }
    // Host says A, header says B: refused as ambiguous before any credential counts.
    let (_, a_sub) = (a, s.create_tenant().await.1);
    let res = s
        .get("/users")
        .header("host", format!("{a_sub}.{BASE_DOMAIN}"))
        .header("x-tenant-id", b.to_string())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn unknown_tenant_is_404(backend: Backend) {
    let s = server!(backend);
    let (a, _) = s.create_tenant().await;
    let token = s.token(a, TokenRole::Owner);
    let res = s
        .get("/users")
        .header("host", format!("nobody.{BASE_DOMAIN}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem(res).await["title"], "Unknown tenant");
    let res = s
        .request(
            Method::GET,
            "/users",
            &tenantkit::TenantId::new().to_string(),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn missing_expired_or_forged_token_is_401(backend: Backend) {
    let s = server!(backend);
    let (a, a_sub) = s.create_tenant().await;
    let get = |auth: Option<String>| {
        let mut req = s.get("/users").header("x-tenant-id", &a_sub);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    let res = get(None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem(res).await["status"], 401);

    let now = jsonwebtoken::get_current_timestamp();
    let expired = s
        .keys()
        .sign(&Claims {
            sub: "x".into(),
            tenant: Some(a),
            role: TokenRole::Owner,
            exp: now - 300,
            iat: now - 900,
            nbf: None,
            email: None,
        })
        .unwrap();
    assert_eq!(
        get(Some(format!("Bearer {expired}")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let forger = JwtKeys::hs256(b"not-the-server-secret-not-the-secret").unwrap();
    let forged = forger.issue("x", Some(a), TokenRole::Owner, 600).unwrap();
    assert_eq!(
        get(Some(format!("Bearer {forged}")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // alg=none and tampered payloads are refused too.
    let valid = s.token(a, TokenRole::Member);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    parts[0] = none_header;
    assert_eq!(
        get(Some(format!("Bearer {}.", parts[..2].join("."))))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let owner_payload = s.token(a, TokenRole::Owner);
    let tampered = format!(
        "{}.{}.{}",
        valid.split('.').next().unwrap(),
        owner_payload.split('.').nth(1).unwrap(),
        valid.split('.').nth(2).unwrap()
    );
    assert_eq!(
        get(Some(format!("Bearer {tampered}")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn user_id_of_b_in_a_url_is_404(backend: Backend) {
    let s = server!(backend);
    let ((a, a_sub), (b, b_sub)) = (s.create_tenant().await, s.create_tenant().await);
    let b_token = s.token(b, TokenRole::Owner);
    let b_users: Value = s
        .request(Method::GET, "/users", &b_sub, &b_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b_user = b_users["items"][0]["id"].as_str().unwrap().to_owned();

    let a_token = s.token(a, TokenRole::Owner);
    let path = format!("/users/{b_user}");
    let get = s
        .request(Method::GET, &path, &a_sub, &a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    let patch = s
        .request(Method::PATCH, &path, &a_sub, &a_token)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::NOT_FOUND);
    let delete = s
        .request(Method::DELETE, &path, &a_sub, &a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);

    // B's user is untouched.
    let still = s
        .request(Method::GET, &path, &b_sub, &b_token)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
    assert_eq!(still.json::<Value>().await.unwrap()["role"], "owner");
}

async fn api_key_of_a_is_useless_at_b(backend: Backend) {
    let s = server!(backend);
    let ((a, a_sub), (b, b_sub)) = (s.create_tenant().await, s.create_tenant().await);
    // Both on a plan with API access, so only tenancy decides.
    s.subscribe(a, "price_pro").await;
    s.subscribe(b, "price_pro").await;
    let created: Value = s
        .request(
            Method::POST,
            "/api-keys",
            &a_sub,
            s.token(a, TokenRole::Admin),
        )
        .json(&json!({ "name": "robot", "scopes": ["users:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let at = |sub: &str| {
        s.get("/users")
            .header("x-tenant-id", sub)
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(at(&a_sub).await.unwrap().status(), StatusCode::OK);
    assert_eq!(at(&b_sub).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

async fn tenant_token_cannot_manage_tenants(backend: Backend) {
    let s = server!(backend);
    let (a, _) = s.create_tenant().await;
    let res = s
        .get("/tenants")
        .bearer_auth(s.token(a, TokenRole::Owner))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .get("/metrics")
        .bearer_auth(s.token(a, TokenRole::Owner))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s.get("/tenants").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
