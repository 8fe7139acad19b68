//! A tenant's own identity provider (single sign-on), with real OpenID
//! providers (npm's oidc-provider on loopback), on both backends: a token of
//! tenant A's provider acts in A only whatever its claims say; an issuer is
//! one tenant's at most; unknown users are refused unless the tenant
//! provisions them just in time (audited, once under concurrent sign-ins,
//! within a user limit); registrations are checked, and tenants' addresses
//! vetted at registration and at every fetch.

use http::StatusCode;
use serde_json::{Value, json};
use tenantkit::{
    Db, Error, Role, SsoSettings, TenantContext,
    auth::{AuthLayer, JwtKeys, TenantIssuers, provision_within},
    ssrf::UrlPolicy,
    testing::oidc::{AUDIENCE, TestClient, TestProvider},
};

use crate::common::{call_through, on_both_backends, tenant};

on_both_backends!(
    a_tenants_own_provider_acts_in_that_tenant_only,
    an_issuer_is_the_single_sign_on_of_one_tenant_at_most,
    unknown_users_are_refused_unless_provisioned_just_in_time,
    configured_issuers_users_are_provisioned_when_the_tenant_asks,
    concurrent_first_sign_ins_provision_one_user,
    provisioning_stays_within_the_user_limit,
    registrations_are_checked_and_audited,
    tenants_addresses_are_vetted_at_registration_and_at_every_fetch,
);

/// Loopback providers over plain http: what the tests' policy allows.
fn loopback() -> TenantIssuers {
    TenantIssuers::new(
        UrlPolicy::strict()
            .with_http(true)
            .allow_network("127.0.0.1/32".parse().unwrap()),
    )
}

/// One request as `tenant` with `token` through a layer that trusts no
/// platform issuer, only tenants' own.
async fn call(
    db: &Db,
    issuers: &TenantIssuers,
    tenant: &TenantContext,
    token: &str,
) -> (StatusCode, Value) {
    let keys = JwtKeys::hs256(b"a-local-secret-of-at-least-32-bytes!").unwrap();
    let auth = AuthLayer::new(keys, db.clone()).with_tenant_issuers(issuers.clone());
    let (status, _, body) = call_through(db, auth, tenant, token).await;
    (status, body)
}

fn settings(provider: &TestProvider) -> SsoSettings {
    serde_json::from_value(json!({ "issuer": provider.issuer, "audience": AUDIENCE })).unwrap()
}

async fn register(db: &Db, t: &TenantContext, settings: &SsoSettings) -> tenantkit::Result<()> {
    let mut tx = db.begin(t).await?;
    tx.put_sso(settings).await?;
    tx.commit().await
}

async fn user(db: &Db, t: &TenantContext, email: &str, role: Role) -> tenantkit::User {
    let mut tx = db.begin(t).await.unwrap();
    let user = tx
        .create_user(&tenantkit::NewUser {
            email: email.into(),
            role,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    user
}

async fn users(db: &Db, t: &TenantContext) -> Vec<tenantkit::User> {
    db.begin_snapshot(t)
        .await
        .unwrap()
        .list_users(tenantkit::PageRequest {
            after: None,
            limit: 100,
        })
        .await
        .unwrap()
}

async fn a_tenants_own_provider_acts_in_that_tenant_only(db: Db) {
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let ann = user(&db, &a, "ann@a.example", Role::Admin).await;
    // The same address is a user of B too, and the token claims B.
    user(&db, &b, "ann@a.example", Role::Owner).await;
    let claims = json!({ "email": "ann@a.example", "tenant": b.id().to_string(), "org_id": b.id().to_string(), "roles": ["member"] });
    let idp_a = TestProvider::start(
        &[("a1", "RS256")],
        &[TestClient::new("ann", claims.clone())],
    )
    .await;
    let idp_b = TestProvider::start(
        &[("b0", "RS256"), ("b1", "EdDSA")],
        &[TestClient::new("ann", claims).signing_with("EdDSA")],
    )
    .await;
    let issuers = loopback();
    let token_a = idp_a.token("ann").await;
    let (status, body) = call(&db, &issuers, &a, &token_a).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "nothing registered yet: {body}"
    );

    register(&db, &a, &settings(&idp_a)).await.unwrap();
    let (status, body) = call(&db, &issuers, &a, &token_a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant"], a.id().to_string());
    assert_eq!(
        body["subject"],
        json!({ "type": "user", "id": ann.id.to_string(), "role": "admin" }),
        "A's user, with their own role (no role claim registered)"
    );
    // Whatever it claims, A's provider's token never acts in B.
    let (status, body) = call(&db, &issuers, &b, &token_a).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // B's own provider acts in B, and not in A.
    register(&db, &b, &settings(&idp_b)).await.unwrap();
    let token_b = idp_b.token("ann").await;
    assert_eq!(call(&db, &issuers, &b, &token_b).await.0, StatusCode::OK);
    assert_eq!(
        call(&db, &issuers, &a, &token_b).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&db, &issuers, &b, &token_a).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A role claim, once registered, caps the role.
    let mut capped = settings(&idp_a);
    capped.role_claim = Some("roles".into());
    register(&db, &a, &capped).await.unwrap();
    let (status, body) = call(&db, &issuers, &a, &token_a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"]["role"], "member");

    // Removed: A's provider's tokens stop at once.
    let mut tx = db.begin(&a).await.unwrap();
    tx.delete_sso().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        call(&db, &issuers, &a, &token_a).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn an_issuer_is_the_single_sign_on_of_one_tenant_at_most(db: Db) {
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let idp = TestProvider::start(&[("k1", "RS256")], &[]).await;
    register(&db, &a, &settings(&idp)).await.unwrap();
    // Registering it again in A changes nothing; in B it is refused.
    register(&db, &a, &settings(&idp)).await.unwrap();
    let refused = register(&db, &b, &settings(&idp)).await.unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)), "{refused:?}");
    assert!(
        db.begin_snapshot(&b)
            .await
            .unwrap()
            .sso()
            .await
            .unwrap()
            .is_none(),
        "nothing of the refused registration is kept"
    );
    // A moves to another issuer: the first is free again.
    let mut moved = settings(&idp);
    moved.issuer = Some(format!(
        "https://login-{}.example/",
        uuid::Uuid::new_v4().simple()
    ));
    register(&db, &a, &moved).await.unwrap();
    register(&db, &b, &settings(&idp)).await.unwrap();
    // And A removing its own never touches B's.
    let mut tx = db.begin(&a).await.unwrap();
    tx.release_sso_issuer(&idp.issuer).await.unwrap();
    tx.commit().await.unwrap();
    let refused = register(&db, &a, &settings(&idp)).await.unwrap_err();
    assert!(
        matches!(refused, Error::Conflict(_)),
        "still B's: {refused:?}"
    );
}

async fn unknown_users_are_refused_unless_provisioned_just_in_time(db: Db) {
    let t = tenant(&db).await;
    let idp = TestProvider::start(
        &[("k0", "RS256"), ("k1", "ES256")],
        &[
            TestClient::new("new", json!({ "email": "New.Person@Acme.example" }))
                .signing_with("ES256"),
            TestClient::new("outsider", json!({ "email": "eve@elsewhere.example" }))
                .signing_with("ES256"),
            TestClient::new(
                "unverified",
                json!({ "email": "mallory@acme.example", "email_verified": false }),
            )
            .signing_with("ES256"),
            TestClient::new("no-email", json!({ "name": "nobody" })).signing_with("ES256"),
        ],
    )
    .await;
    let issuers = loopback();
    let mut s = settings(&idp);
    s.email_domain = Some("acme.example".into());
    register(&db, &t, &s).await.unwrap();
    let token = idp.token("new").await;
    let (status, body) = call(&db, &issuers, &t, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "the token's user does not exist in this tenant"
    );
    assert!(users(&db, &t).await.is_empty(), "no one was created");

    s.provision_role = Some(Role::Member);
    register(&db, &t, &s).await.unwrap();
    let (status, body) = call(&db, &issuers, &t, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"]["role"], "member");
    let created = users(&db, &t)
        .await
        .into_iter()
        .find(|u| u.email == "new.person@acme.example")
        .expect("provisioned, by its lower-cased address");
    assert_eq!(body["subject"]["id"], created.id.to_string());
    // The next sign-in finds the same user.
    let (_, again) = call(&db, &issuers, &t, &token).await;
    assert_eq!(again["subject"]["id"], created.id.to_string());
    assert_eq!(users(&db, &t).await.len(), 1);
    let trail = db
        .begin_snapshot(&t)
        .await
        .unwrap()
        .list_audit_logs(&Default::default())
        .await
        .unwrap();
    let provisioned: Vec<_> = trail
        .iter()
        .filter(|e| e.action == "user.provisioned")
        .collect();
    assert_eq!(provisioned.len(), 1, "audited once");
    assert_eq!(
        provisioned[0].resource_id.as_deref(),
        Some(created.id.to_string().as_str())
    );
    assert_eq!(provisioned[0].actor_type, "system");

    // Never outside the registered domain, never by an unverified or missing address.
    for (client, detail) in [
        (
            "outsider",
            "the token's e-mail address is not of the tenant's domain",
        ),
        ("unverified", "the token's e-mail address is not verified"),
        ("no-email", "the token has no `email` claim naming a user"),
    ] {
        let token = idp.token(client).await;
        let (status, body) = call(&db, &issuers, &t, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{client}");
        assert_eq!(body["detail"], detail, "{client}");
    }
    assert_eq!(users(&db, &t).await.len(), 1, "no one else was created");
}

async fn configured_issuers_users_are_provisioned_when_the_tenant_asks(db: Db) {
    let (t, other) = (tenant(&db).await, tenant(&db).await);
    let idp = TestProvider::start(
        &[("k1", "RS256")],
        &[
            TestClient::new(
                "new",
                json!({ "tenant": t.id().to_string(), "email": "new@acme.example" }),
            ),
            TestClient::new(
                "outsider",
                json!({ "tenant": t.id().to_string(), "email": "eve@elsewhere.example" }),
            ),
        ],
    )
    .await;
    let platform = tenantkit::auth::Issuers::new(&[idp.issuer_config("corp")]).unwrap();
    let call = |t: TenantContext, token: String| {
        let (db, platform) = (db.clone(), platform.clone());
        async move {
            let keys = JwtKeys::hs256(b"a-local-secret-of-at-least-32-bytes!").unwrap();
            let auth = AuthLayer::new(keys, db.clone()).with_issuers(platform);
            let (status, _, body) = call_through(&db, auth, &t, &token).await;
            (status, body)
        }
    };
    let token = idp.token("new").await;
    let (status, body) = call(t.clone(), token.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["detail"],
        "the token's user does not exist in this tenant"
    );

    // Settings without a provider of the tenant's own: provisioning only.
    let provisioning: SsoSettings = serde_json::from_value(
        json!({ "provision_role": "member", "email_domain": "acme.example" }),
    )
    .unwrap();
    register(&db, &t, &provisioning).await.unwrap();
    // Another tenant asking for it too changes nothing for this token.
    register(&db, &other, &provisioning).await.unwrap();
    let (status, body) = call(t.clone(), token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"]["role"], "member");
    assert_eq!(users(&db, &t).await.len(), 1);
    assert!(users(&db, &other).await.is_empty());
    let (status, body) = call(other.clone(), token).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the token names its tenant: {body}"
    );
    let (status, body) = call(t.clone(), idp.token("outsider").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "the token's e-mail address is not of the tenant's domain"
    );
    assert_eq!(users(&db, &t).await.len(), 1);
}

async fn concurrent_first_sign_ins_provision_one_user(db: Db) {
    let t = tenant(&db).await;
    let idp = TestProvider::start(
        &[("k1", "RS256")],
        &[TestClient::new(
            "new",
            json!({ "email": "rush@acme.example" }),
        )],
    )
    .await;
    let mut s = settings(&idp);
    s.provision_role = Some(Role::Admin);
    register(&db, &t, &s).await.unwrap();
    let issuers = loopback();
    let token = idp.token("new").await;
    let calls = (0..12).map(|_| {
        let (db, issuers, t, token) = (db.clone(), issuers.clone(), t.clone(), token.clone());
        tokio::spawn(async move { call(&db, &issuers, &t, &token).await })
    });
    let mut ids = std::collections::HashSet::new();
    for answer in futures_util::future::join_all(calls).await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.insert(body["subject"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one user for every concurrent first sign-in");
    assert_eq!(users(&db, &t).await.len(), 1);
}

async fn provisioning_stays_within_the_user_limit(db: Db) {
    let t = tenant(&db).await;
    user(&db, &t, "owner@acme.example", Role::Owner).await;
    let limited = provision_within(&db, &t, "second@acme.example", Role::Member, Some(2))
        .await
        .unwrap();
    assert_eq!(limited.role, Role::Member);
    let refused = provision_within(&db, &t, "third@acme.example", Role::Member, Some(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::LimitExceeded {
                resource: "users",
                limit: 2,
                usage: 2
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        tenantkit::problem::Problem::from(&refused).status,
        StatusCode::PAYMENT_REQUIRED
    );
    // An existing user signing in again is found, not counted.
    let again = provision_within(&db, &t, "second@acme.example", Role::Member, Some(2))
        .await
        .unwrap();
    assert_eq!(again.id, limited.id);
}

async fn registrations_are_checked_and_audited(db: Db) {
    let t = tenant(&db).await;
    let good = json!({ "issuer": "https://login.acme.example/", "audience": "api" });
    let with = |field: &str, value: Value| {
        let mut s = good.clone();
        s[field] = value;
        s
    };
    let long = |n: usize| Value::String("a".repeat(n));
    for (case, body) in [
        ("not a URL", with("issuer", json!("login.acme.example"))),
        ("ftp", with("issuer", json!("ftp://login.acme.example/"))),
        (
            "credentials",
            with("issuer", json!("https://u:p@login.acme.example/")),
        ),
        (
            "query",
            with("issuer", json!("https://login.acme.example/?x=1")),
        ),
        (
            "issuer over 255",
            with(
                "issuer",
                json!(format!("https://{}.example/", "a".repeat(250))),
            ),
        ),
        ("empty audience", with("audience", json!("  "))),
        ("audience over 255", with("audience", long(256))),
        ("control character", with("client_id", json!("web\u{7}"))),
        ("email claim over 100", with("email_claim", long(101))),
        ("domain", with("email_domain", json!("not a domain"))),
        (
            "issuer without audience",
            json!({ "issuer": "https://login.acme.example/" }),
        ),
        ("audience without issuer", json!({ "audience": "api" })),
        (
            "client without issuer",
            json!({ "client_id": "web", "provision_role": "member" }),
        ),
        (
            "key set without issuer",
            json!({ "jwks_uri": "https://k.example/keys" }),
        ),
        (
            "jwks over 2000",
            with(
                "jwks_uri",
                json!(format!("https://k.example/{}", "a".repeat(2000))),
            ),
        ),
    ] {
        let settings: SsoSettings = serde_json::from_value(body).unwrap();
        let refused = register(&db, &t, &settings).await.unwrap_err();
        assert!(matches!(refused, Error::Invalid(_)), "{case}: {refused:?}");
    }
    assert!(
        serde_json::from_value::<SsoSettings>(with("provision_role", json!("root"))).is_err(),
        "roles are the tenant roles"
    );
    assert!(
        serde_json::from_value::<SsoSettings>(with("typo", json!(1))).is_err(),
        "unknown fields are refused"
    );
    // At the limits exactly: accepted, and stored as given.
    let edge: SsoSettings = serde_json::from_value(json!({
        "issuer": format!("https://{}{}.example/", uuid::Uuid::new_v4().simple(), "a".repeat(206)),
        "audience": "b".repeat(255),
        "email_claim": "c".repeat(100),
        "email_domain": "@Acme.Example",
    }))
    .unwrap();
    register(&db, &t, &edge).await.unwrap();
    let stored = db.tenant_sso(&t).await.unwrap().unwrap();
    assert_eq!(stored.settings.issuer.as_ref().map(String::len), Some(255));
    assert_eq!(
        stored.settings.email_domain.as_deref(),
        Some("acme.example")
    );
    let mut tx = db.begin(&t).await.unwrap();
    tx.delete_sso().await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    assert!(matches!(tx.delete_sso().await, Err(Error::NotFound(_))));
    drop(tx);
    let actions: Vec<String> = db
        .begin_snapshot(&t)
        .await
        .unwrap()
        .list_audit_logs(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("sso."))
        .collect();
    let mut actions = actions;
    actions.sort();
    assert_eq!(actions, ["sso.registered", "sso.removed"]);
}

async fn tenants_addresses_are_vetted_at_registration_and_at_every_fetch(db: Db) {
    let t = tenant(&db).await;
    let strict = TenantIssuers::default();
    for (issuer, reason) in [
        ("http://login.acme.example/", "https"),
        ("https://127.0.0.1:8443/", "loopback"),
        ("https://169.254.169.254/", "link-local"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://0x7f.1/", "loopback"),
    ] {
        let settings: SsoSettings =
            serde_json::from_value(json!({ "issuer": issuer, "audience": "api" })).unwrap();
        let refused = strict.vet(&settings.checked().unwrap()).await.unwrap_err();
        assert!(refused.to_string().contains(reason), "{issuer}: {refused}");
    }
    // A provider registered past the check (directly in the store) is
    // still never contacted at a blocked address: its keys cannot be had.
    let idp = TestProvider::start(
        &[("k1", "RS256")],
        &[TestClient::new(
            "ann",
            json!({ "email": "ann@acme.example" }),
        )],
    )
    .await;
    register(&db, &t, &settings(&idp)).await.unwrap();
    let token = idp.token("ann").await;
    let no_loopback = TenantIssuers::new(UrlPolicy::strict().with_http(true));
    let (status, body) = call(&db, &no_loopback, &t, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let fetches = no_loopback.key_fetches();
    assert_eq!(
        (fetches.succeeded, fetches.failed),
        (0, 1),
        "counted as failed"
    );
    assert_eq!(
        idp_hits(idp).await,
        0,
        "the provider at a loopback address was never contacted"
    );
}

async fn idp_hits(mut idp: TestProvider) -> u64 {
    idp.jwks_hits().await
}
