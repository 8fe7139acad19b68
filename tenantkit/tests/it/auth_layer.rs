//! AuthLayer behind TenantLayer: JWTs, API keys, tenant mismatch.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tenantkit::{
    Db, NewApiKey, Scope, TenantContext,
    auth::{AuthLayer, Claims, JwtKeys, Subject, TokenRole},
    resolve::TenantLayer,
};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::{sqlite, tenant, whoami};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

struct World {
    db: Db,
    keys: JwtKeys,
    a: TenantContext,
    b: TenantContext,
    /// The id of an owner of `a`.
    a_user: String,
}

async fn world() -> World {
    let db = sqlite().await;
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let a_user = tenantkit::testing::user(&db, &a, tenantkit::Role::Owner)
        .await
        .id
        .to_string();
    World {
        db,
        keys: JwtKeys::hs256(SECRET).unwrap(),
        a,
        b,
        a_user,
    }
}

async fn call(
    w: &World,
    tenant_header: Option<&str>,
    auth: Option<String>,
) -> (StatusCode, Response<Full<Bytes>>) {
    let svc = ServiceBuilder::new()
        .layer(TenantLayer::new(w.db.clone()))
        .layer(AuthLayer::new(w.keys.clone(), w.db.clone()))
        .service_fn(whoami);
    send(svc, tenant_header, auth).await
}

async fn call_platform(w: &World, auth: Option<String>) -> (StatusCode, Response<Full<Bytes>>) {
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(w.keys.clone(), w.db.clone()))
        .service_fn(whoami);
    send(svc, None, auth).await
}

async fn send<S>(
    svc: S,
    tenant_header: Option<&str>,
    auth: Option<String>,
) -> (StatusCode, Response<Full<Bytes>>)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    let mut req = Request::get("/");
    if let Some(t) = tenant_header {
        req = req.header("x-tenant-id", t);
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = svc
        .oneshot(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    (res.status(), res)
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

async fn body(res: Response<Full<Bytes>>) -> serde_json::Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn valid_token_for_the_tenant_passes() {
    let w = world().await;
    let token = w
        .keys
        .issue(&w.a_user, Some(w.a.id()), TokenRole::Admin, 60)
        .unwrap();
    let (status, res) = call(&w, Some(&w.a.id().to_string()), bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let p = body(res).await;
    assert_eq!(p["tenant"], w.a.id().to_string());
    assert_eq!(p["subject"]["role"], "admin");
}

#[tokio::test]
async fn missing_credentials_are_401_with_www_authenticate() {
    let w = world().await;
    let (status, res) = call(&w, Some(&w.a.id().to_string()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn expired_token_is_401() {
    let w = world().await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: w.a_user.clone(),
        tenant: Some(w.a.id()),
        role: TokenRole::Owner,
        exp: now - 120,
        iat: now - 3600,
        nbf: None,
        email: None,
    };
    let (status, res) = call(
        &w,
        Some(&w.a.id().to_string()),
        bearer(&w.keys.sign(&claims).unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body(res).await["detail"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn wrongly_signed_token_is_401() {
    let w = world().await;
    let forger = JwtKeys::hs256(b"another-secret-another-secret-12345").unwrap();
    let token = forger
        .issue(&w.a_user, Some(w.a.id()), TokenRole::Owner, 60)
        .unwrap();
    assert_eq!(
        call(&w, Some(&w.a.id().to_string()), bearer(&token))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_credentials_are_401() {
    let w = world().await;
    let t = w.a.id().to_string();
    for auth in [
        "Bearer",
        "Bearer not.a.jwt",
        "Basic dXNlcjpwYXNz",
        "Token abc",
    ] {
        assert_eq!(
            call(&w, Some(&t), Some(auth.into())).await.0,
            StatusCode::UNAUTHORIZED,
            "{auth}"
        );
    }
}

#[tokio::test]
async fn token_of_tenant_a_at_tenant_b_is_403() {
    let w = world().await;
    let token = w
        .keys
        .issue(&w.a_user, Some(w.a.id()), TokenRole::Owner, 60)
        .unwrap();
    let (status, res) = call(&w, Some(&w.b.tenant().subdomain), bearer(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body(res).await["title"], "Wrong tenant");
}

#[tokio::test]
async fn platform_admin_token_is_refused_on_tenant_routes_and_accepted_on_platform_routes() {
    let w = world().await;
    let token = w
        .keys
        .issue("ops", None, TokenRole::PlatformAdmin, 60)
        .unwrap();
    assert_eq!(
        call(&w, Some(&w.a.id().to_string()), bearer(&token))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, res) = call_platform(&w, bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body(res).await["subject"]["type"], "platform_admin");
}

#[tokio::test]
async fn tenant_token_is_refused_on_platform_routes() {
    let w = world().await;
    let token = w
        .keys
        .issue(&w.a_user, Some(w.a.id()), TokenRole::Owner, 60)
        .unwrap();
    assert_eq!(
        call_platform(&w, bearer(&token)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn api_keys_authenticate_in_their_tenant_only() {
    let w = world().await;
    let mut tx = w.db.begin(&w.a).await.unwrap();
    let key = tx
        .create_api_key(&NewApiKey {
            name: "ci".into(),
            scopes: vec![Scope::UsersRead],
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (status, res) = call(&w, Some(&w.a.id().to_string()), bearer(&key.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body(res).await["subject"]["type"], "api_key");

    // Also accepted in X-Api-Key.
    let svc = ServiceBuilder::new()
        .layer(TenantLayer::new(w.db.clone()))
        .layer(AuthLayer::new(w.keys.clone(), w.db.clone()))
        .service_fn(whoami::<Full<Bytes>>);
    let req = Request::get("/")
        .header("x-tenant-id", w.a.id().to_string())
        .header("x-api-key", &key.key);
    assert_eq!(
        svc.oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    assert_eq!(
        call(&w, Some(&w.b.id().to_string()), bearer(&key.key))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call_platform(&w, bearer(&key.key)).await.0,
        StatusCode::FORBIDDEN
    );

    let mut tx = w.db.begin(&w.a).await.unwrap();
    tx.revoke_api_key(key.api_key.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        call(&w, Some(&w.a.id().to_string()), bearer(&key.key))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn token_with_inconsistent_role_and_tenant_is_401() {
    let w = world().await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: "u".into(),
        tenant: None,
        role: TokenRole::Owner,
        exp: now + 60,
        iat: now,
        nbf: None,
        email: None,
    };
    let token = w.keys.sign(&claims).unwrap();
    assert_eq!(
        call(&w, Some(&w.a.id().to_string()), bearer(&token))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn short_hs256_secrets_are_refused() {
    assert!(JwtKeys::hs256(b"short").is_err());
    assert!(JwtKeys::hs256(&[0u8; 31]).is_err());
    assert!(JwtKeys::hs256(&[0u8; 32]).is_ok());
}

#[test]
fn rs256_and_eddsa_keys_verify_tokens_they_issue() {
    // Keys generated with `openssl genpkey`; test fixtures only.
    let ed_private = include_bytes!("../fixtures/ed25519-private.pem");
    let ed_public = include_bytes!("../fixtures/ed25519-public.pem");
    let keys = JwtKeys::public_pem(jsonwebtoken::Algorithm::EdDSA, ed_public)
        .unwrap()
        .with_private_pem(ed_private)
        .unwrap();
    let token = keys
        .issue("ops", None, TokenRole::PlatformAdmin, 60)
        .unwrap();
    assert_eq!(keys.verify(&token).unwrap().role, TokenRole::PlatformAdmin);

    let rsa_private = include_bytes!("../fixtures/rsa-private.pem");
    let rsa_public = include_bytes!("../fixtures/rsa-public.pem");
    let verify_only = JwtKeys::public_pem(jsonwebtoken::Algorithm::RS256, rsa_public).unwrap();
    assert!(
        verify_only
            .issue("x", None, TokenRole::PlatformAdmin, 60)
            .is_err(),
        "no private key"
    );
    let signer = verify_only.clone().with_private_pem(rsa_private).unwrap();
    let token = signer
        .issue("x", None, TokenRole::PlatformAdmin, 60)
        .unwrap();
    assert_eq!(verify_only.verify(&token).unwrap().sub, "x");
    // An HS256 token is not accepted by RS256 keys (no algorithm confusion).
    let hs = JwtKeys::hs256(SECRET)
        .unwrap()
        .issue("x", None, TokenRole::PlatformAdmin, 60)
        .unwrap();
    assert!(verify_only.verify(&hs).is_err());
    let _ = Subject::PlatformAdmin { id: String::new() };
}
