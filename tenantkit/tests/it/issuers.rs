//! Tokens of a real OpenID provider (npm's oidc-provider on loopback), on
//! both backends: discovery, verification (RS256 and EdDSA), refusals by
//! reason, key rotation without restart, the refetch limit under a flood of
//! made-up `kid`s, cached keys outliving the provider, and tenant isolation.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tenantkit::{
    Db, Role, TenantContext, User,
    auth::{AuthLayer, IssuerConfig, Issuers, JwtKeys},
    testing::oidc::{TestClient, TestProvider},
};

use crate::common::{call_through, on_both_backends, tenant};

on_both_backends!(
    tokens_of_a_trusted_provider_verify_with_its_discovered_keys,
    wrong_audience_issuer_algorithm_or_time_is_401_naming_the_reason,
    a_rotated_key_is_fetched_without_restart_and_the_removed_one_refused,
    made_up_key_ids_fetch_the_keys_at_most_once_per_interval,
    cached_keys_outlive_the_provider,
    a_token_acts_only_in_the_tenant_it_names,
);

/// Calls a TenantLayer + AuthLayer stack trusting `issuers`, as tenant
/// `tenant`, with `token`: the status and the body as JSON.
async fn call(
    db: &Db,
    issuers: &Issuers,
    tenant: &TenantContext,
    token: &str,
) -> (StatusCode, Value) {
    let keys = JwtKeys::hs256(b"a-local-secret-of-at-least-32-bytes!").unwrap();
    let auth = AuthLayer::new(keys, db.clone()).with_issuers(issuers.clone());
    let (status, headers, body) = call_through(db, auth, tenant, token).await;
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    (status, body)
}

fn claims(tenant: &TenantContext, user: &User) -> Value {
    json!({ "tenant": tenant.id().to_string(), "email": user.email })
}

async fn user(db: &Db, t: &TenantContext, role: Role) -> User {
    tenantkit::testing::user(db, t, role).await
}

fn trusting(config: IssuerConfig) -> Issuers {
    Issuers::new(&[config]).unwrap()
}

async fn tokens_of_a_trusted_provider_verify_with_its_discovered_keys(db: Db) {
    let t = tenant(&db).await;
    let admin = user(&db, &t, Role::Admin).await;
    let provider = TestProvider::start(
        &[("rs1", "RS256"), ("ed1", "EdDSA"), ("ec1", "ES256")],
        &[
            TestClient::new("rsa", claims(&t, &admin)),
            TestClient::new("ed", claims(&t, &admin)).signing_with("EdDSA"),
            TestClient::new("ec", claims(&t, &admin)).signing_with("ES256"),
            TestClient::new(
                "capped",
                json!({ "tenant": t.id().to_string(), "email": admin.email, "roles": ["member"] }),
            ),
        ],
    )
    .await;
    let mut config = provider.issuer_config("corp");
    config.role_claim = Some("roles".into());
    let issuers = trusting(config);
    for client in ["rsa", "ed", "ec"] {
        let token = provider.token(client).await;
        let (status, body) = call(&db, &issuers, &t, &token).await;
        assert_eq!(status, StatusCode::OK, "{client}: {body}");
        assert_eq!(body["tenant"], t.id().to_string());
        assert_eq!(
            body["subject"],
            json!({ "type": "user", "id": admin.id.to_string(), "role": "admin" }),
            "{client}: the user's own role"
        );
    }
    let token = provider.token("capped").await;
    let (status, body) = call(&db, &issuers, &t, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subject"]["role"], "member", "the role claim caps it");

    // A removed user loses access at once in this process.
    let mut tx = db.begin(&t).await.unwrap();
    tx.delete_user(admin.id).await.unwrap();
    tx.commit().await.unwrap();
    let token = provider.token("rsa").await;
    let (status, body) = call(&db, &issuers, &t, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "the token's user does not exist in this tenant"
    );
}

async fn wrong_audience_issuer_algorithm_or_time_is_401_naming_the_reason(db: Db) {
    let t = tenant(&db).await;
    let member = user(&db, &t, Role::Member).await;
    let provider = TestProvider::start(
        &[("rs1", "RS256"), ("ed1", "EdDSA")],
        &[
            TestClient::new("rsa", claims(&t, &member)),
            TestClient::new("ed", claims(&t, &member)).signing_with("EdDSA"),
            TestClient::new("brief", claims(&t, &member)).lasting(1),
        ],
    )
    .await;
    let mut config = provider.issuer_config("corp");
    config.algorithms = vec!["RS256".into()];
    let issuers = trusting(config);
    let refused = |detail: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["detail"], detail, "{body}");
            let text = body.to_string();
            assert!(
                !text.contains("\"n\"") && !text.contains("BEGIN"),
                "no key material"
            );
        }
    };

    let other_audience = provider
        .token_for("rsa", "https://somewhere-else.test")
        .await;
    refused("the token is for another audience")(call(&db, &issuers, &t, &other_audience).await);

    let eddsa = provider.token("ed").await;
    refused("the token's algorithm is not allowed for its issuer")(
        call(&db, &issuers, &t, &eddsa).await,
    );

    // A provider nobody configured: same claims, untrusted issuer.
    let stranger = TestProvider::start(
        &[("rs1", "RS256")],
        &[TestClient::new("rsa", claims(&t, &member))],
    )
    .await;
    let foreign = stranger.token("rsa").await;
    refused("the token's issuer is not trusted")(call(&db, &issuers, &t, &foreign).await);

    // A signature that does not verify: the payload of one token, the
    // signature of another.
    let good = provider.token("rsa").await;
    let forged = {
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = json!({ "iss": provider.issuer, "aud": tenantkit::testing::oidc::AUDIENCE,
            "sub": "rsa", "exp": 4_000_000_000u64, "tenant": t.id().to_string(), "email": member.email });
        let payload = base64_url(tampered.to_string().as_bytes());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    refused("the token's signature does not verify")(call(&db, &issuers, &t, &forged).await);

    let brief = provider.token("brief").await;
    assert_eq!(call(&db, &issuers, &t, &brief).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused("the token has expired")(call(&db, &issuers, &t, &brief).await);
}

async fn a_rotated_key_is_fetched_without_restart_and_the_removed_one_refused(db: Db) {
    let t = tenant(&db).await;
    let member = user(&db, &t, Role::Member).await;
    let mut provider = TestProvider::start(
        &[("old", "RS256")],
        &[TestClient::new("rsa", claims(&t, &member))],
    )
    .await;
    // Keys are kept long: only a new `kid` makes the verifier look again.
    let mut config = provider.issuer_config("corp");
    config.key_cache_min_secs = 3600;
    config.key_cache_max_secs = 3600;
    let issuers = trusting(config);
    let before = provider.token("rsa").await;
    assert_eq!(call(&db, &issuers, &t, &before).await.0, StatusCode::OK);

    provider.publish(&[("new", "RS256")]).await;
    let after = provider.token("rsa").await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the refetch interval
    let (status, body) = call(&db, &issuers, &t, &after).await;
    assert_eq!(status, StatusCode::OK, "the new key is fetched: {body}");
    let (status, body) = call(&db, &issuers, &t, &before).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "no key of the token's issuer has its key id"
    );
    assert_eq!(
        provider.jwks_hits().await,
        2,
        "one fetch, then one for the new kid"
    );
}

async fn made_up_key_ids_fetch_the_keys_at_most_once_per_interval(db: Db) {
    let t = tenant(&db).await;
    let member = user(&db, &t, Role::Member).await;
    let mut provider = TestProvider::start(
        &[("rs1", "RS256")],
        &[TestClient::new("rsa", claims(&t, &member))],
    )
    .await;
    let mut config = provider.issuer_config("corp");
    config.key_cache_min_secs = 3600;
    config.key_cache_max_secs = 3600;
    config.key_refetch_interval_secs = 30;
    let issuers = trusting(config);
    let token = provider.token("rsa").await;
    assert_eq!(call(&db, &issuers, &t, &token).await.0, StatusCode::OK);
    let fetched = provider.jwks_hits().await;

    let (_, payload_and_signature) = token.split_once('.').unwrap();
    for i in 0..300 {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": format!("made-up-{i}") });
        let flood = format!(
            "{}.{payload_and_signature}",
            base64_url(header.to_string().as_bytes())
        );
        let (status, body) = call(&db, &issuers, &t, &flood).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body["detail"],
            "no key of the token's issuer has its key id"
        );
    }
    assert!(
        provider.jwks_hits().await <= fetched + 1,
        "300 unknown kids cost the provider at most one fetch"
    );
    assert_eq!(call(&db, &issuers, &t, &token).await.0, StatusCode::OK);
}

async fn cached_keys_outlive_the_provider(db: Db) {
    let t = tenant(&db).await;
    let member = user(&db, &t, Role::Member).await;
    let provider = TestProvider::start(
        &[("rs1", "RS256")],
        &[TestClient::new("rsa", claims(&t, &member))],
    )
    .await;
    let issuers = trusting(provider.issuer_config("corp"));
    let never_fetched = trusting(provider.issuer_config("corp"));
    let token = provider.token("rsa").await;
    assert_eq!(call(&db, &issuers, &t, &token).await.0, StatusCode::OK);

    provider.stop().await;
    // Past the cache's ceiling (2 s): the refetch fails, the cached key serves.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = call(&db, &issuers, &t, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // With nothing cached, there is nothing to verify with: 503, try again.
    let (status, body) = call(&db, &never_fetched, &t, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["detail"],
        "the token's issuer cannot be reached to verify it; try again"
    );
}

async fn a_token_acts_only_in_the_tenant_it_names(db: Db) {
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let in_a = user(&db, &a, Role::Owner).await;
    // The same e-mail is a user of B too: the token still names A.
    let mut tx = db.begin(&b).await.unwrap();
    tx.create_user(&tenantkit::NewUser {
        email: in_a.email.clone(),
        role: Role::Owner,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let org = format!("org_{}", a.id().to_string().replace('-', ""));
    let provider = TestProvider::start(
        &[("rs1", "RS256")],
        &[
            TestClient::new("by-id", claims(&a, &in_a)),
            TestClient::new("by-org", json!({ "org_id": org, "email": in_a.email })),
            TestClient::new("no-tenant", json!({ "email": in_a.email })),
        ],
    )
    .await;
    let by_id = trusting(provider.issuer_config("corp"));
    let token = provider.token("by-id").await;
    assert_eq!(call(&db, &by_id, &a, &token).await.0, StatusCode::OK);
    let (status, body) = call(&db, &by_id, &b, &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let no_tenant = provider.token("no-tenant").await;
    let (status, body) = call(&db, &by_id, &a, &no_tenant).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "the token names no tenant");

    // An organisation id linked to A under the issuer's name names A only.
    let mut config = provider.issuer_config("corp");
    config.tenant_claim = "org_id".into();
    let by_org = trusting(config);
    let token = provider.token("by-org").await;
    assert_eq!(
        call(&db, &by_org, &a, &token).await.0,
        StatusCode::FORBIDDEN,
        "not linked yet"
    );
    db.platform()
        .link_external_id("corp", &org, a.id())
        .await
        .unwrap();
    assert_eq!(call(&db, &by_org, &a, &token).await.0, StatusCode::OK);
    assert_eq!(
        call(&db, &by_org, &b, &token).await.0,
        StatusCode::FORBIDDEN
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
