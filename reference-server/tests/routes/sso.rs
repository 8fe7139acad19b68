//! A tenant's own identity provider through the API: `/tenant/sso` (the
//! owner, on plans with `sso`) and `/tenants/{id}/sso` (a platform admin),
//! signing in with it, just-in-time provisioning within the plan's user
//! limit, the refusals, and the audit trail.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{
    Backend, NewUser, Role,
    auth::TokenRole,
    testing::oidc::{AUDIENCE, TestClient, TestProvider},
};
use tenantkit_server::{config::Config, testing::TestApp};

use super::on_both_backends;

on_both_backends!(
    the_owner_registers_the_tenants_provider_and_its_users_sign_in_with_it,
    without_the_sso_feature_only_a_platform_admin_registers,
    registrations_are_refused_with_a_problem_saying_why,
    provisioned_users_count_against_the_plan,
);

/// Loopback providers over plain http (tests only), then `adjust`.
async fn app(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    TestApp::on_with_config(backend, |config| {
        config.auth.sso.allow_http = true;
        config.auth.sso.allow_networks = vec!["127.0.0.1/32".into()];
        adjust(config);
    })
    .await
    .unwrap()
}

/// `body` is the RFC 9457 problem for `expected`.
fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, case: &str) {
    assert_eq!(status, expected, "{case}: {body}");
    assert_eq!(body["status"], expected.as_u16(), "{case}: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{case}: {body}"
    );
}

/// A provider whose client `client` has the tokens of `email`.
async fn provider_of(client: &str, email: &str) -> TestProvider {
    TestProvider::start(
        &[("k1", "RS256")],
        &[TestClient::new(client, json!({ "email": email }))],
    )
    .await
}

fn registration(provider: &TestProvider) -> Value {
    json!({ "issuer": provider.issuer, "audience": AUDIENCE, "client_id": "dashboard" })
}

async fn the_owner_registers_the_tenants_provider_and_its_users_sign_in_with_it(backend: Backend) {
    let Some(app) = app(backend, |_| {}).await else {
        return;
    };
    let owner = app.owner_token();
    let provider = TestProvider::start(
        &[("k1", "RS256")],
        &[
            TestClient::new("owner", json!({ "email": "owner@acme.test" })),
            TestClient::new("newcomer", json!({ "email": "new@acme.test" })),
        ],
    )
    .await;
    let (status, body) = app.get("/tenant/sso", &owner).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "none registered");

    // An admin is not the owner; an API key never registers.
    let mut tx = app.state.db.begin(&app.tenant).await.unwrap();
    let admin = tx
        .create_user(&NewUser {
            email: "admin@acme.test".into(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let admin = app.token_for(&admin, TokenRole::Admin);
    let (status, body) = app
        .call(
            Method::PUT,
            "/tenant/sso",
            &admin,
            Some(registration(&provider)),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "an admin");

    let (status, body) = app
        .call(
            Method::PUT,
            "/tenant/sso",
            &owner,
            Some(registration(&provider)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["issuer"], provider.issuer.as_str());
    assert_eq!(body["settings"]["email_claim"], "email");
    assert_eq!(body["settings"]["provision_role"], Value::Null);
    assert_eq!(body["tenant_id"], app.tenant.id().to_string());
    let (status, read) = app.get("/tenant/sso", &admin).await;
    assert_eq!((status, &read), (StatusCode::OK, &body));

    // The provider's token acts in the tenant as the owner.
    let token = provider.token("owner").await;
    let (status, who) = app.get("/tenant", &token).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["id"], app.tenant.id().to_string());
    let (status, _) = app.get("/users", &token).await;
    assert_eq!(status, StatusCode::OK);
    // One fetch of its keys, counted for operators.
    let metrics = app
        .send(
            http::Request::get("/metrics")
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", app.admin_token()),
                )
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let text = axum::body::to_bytes(metrics.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text);
    for line in [
        "tenantkit_issuer_key_fetches_total{issuers=\"tenant\",outcome=\"succeeded\"} 1",
        "tenantkit_issuer_key_fetches_total{issuers=\"tenant\",outcome=\"failed\"} 0",
        "tenantkit_issuer_key_fetches_total{issuers=\"configured\",outcome=\"succeeded\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // A newcomer is refused until the owner turns provisioning on.
    let newcomer = provider.token("newcomer").await;
    let (status, body) = app.get("/users", &newcomer).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "not provisioned");
    let mut provisioning = registration(&provider);
    provisioning["provision_role"] = json!("member");
    let (status, _) = app
        .call(Method::PUT, "/tenant/sso", &owner, Some(provisioning))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/users", &newcomer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let emails: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"new@acme.test"), "{emails:?}");
    // As a member, the newcomer cannot change the registration.
    let (status, body) = app
        .call(Method::DELETE, "/tenant/sso", &newcomer, None)
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "a member");

    // Every change is in the audit trail.
    let (status, trail) = app.get("/audit-logs?limit=100", &owner).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["sso.registered", "sso.updated", "user.provisioned"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // Removed: its tokens stop at once.
    let (status, _) = app.call(Method::DELETE, "/tenant/sso", &owner, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/users", &token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "removed");
    let (status, body) = app.call(Method::DELETE, "/tenant/sso", &owner, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "removed twice");
    // Settings without a provider of its own: provisioning for the
    // configured issuers' tokens naming the tenant.
    let (status, body) = app
        .call(
            Method::PUT,
            "/tenant/sso",
            &owner,
            Some(json!({ "provision_role": "member", "email_domain": "acme.test" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["issuer"], Value::Null);
    assert_eq!(body["settings"]["provision_role"], "member");
}

async fn without_the_sso_feature_only_a_platform_admin_registers(backend: Backend) {
    let Some(app) = app(backend, |config| {
        config.billing.plans.default_plan = "pro".into();
    })
    .await
    else {
        return;
    };
    let provider = provider_of("owner", "owner@acme.test").await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/tenant/sso",
            &app.owner_token(),
            Some(registration(&provider)),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "pro has no sso",
    );
    assert_eq!(body["limit"], "sso", "{body}");

    let admin = app.admin_token();
    let path = format!("/tenants/{}/sso", app.tenant.id());
    let (status, body) = app
        .call(Method::PUT, &path, &admin, Some(registration(&provider)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, read) = app.call(Method::GET, &path, &admin, None).await;
    assert_eq!(
        (status, read["settings"]["issuer"].clone()),
        (StatusCode::OK, json!(provider.issuer))
    );
    // What the admin registered signs in, whatever the plan.
    let token = provider.token("owner").await;
    assert_eq!(app.get("/tenant", &token).await.0, StatusCode::OK);
    // The tenant's owner is no platform admin.
    let (status, body) = app
        .call(Method::DELETE, &path, &app.owner_token(), None)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "owner on the platform route",
    );
    let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.call(Method::GET, &path, &admin, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "removed");
    let unknown = format!("/tenants/{}/sso", tenantkit::TenantId::new());
    let (status, body) = app.call(Method::GET, &unknown, &admin, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "no such tenant");
}

async fn registrations_are_refused_with_a_problem_saying_why(backend: Backend) {
    let Some(app) = app(backend, |config| {
        config.auth.issuers = vec![
            serde_json::from_value(json!({
                "name": "platform",
                "issuer": "https://login.platform.example/",
                "audience": "api",
            }))
            .unwrap(),
        ];
    })
    .await
    else {
        return;
    };
    let owner = app.owner_token();
    let put = |body: Value| {
        let (app, owner) = (&app, owner.clone());
        async move {
            app.call(Method::PUT, "/tenant/sso", &owner, Some(body))
                .await
        }
    };
    for (case, body, expected) in [
        (
            "a platform issuer",
            json!({ "issuer": "https://login.platform.example/", "audience": "api" }),
            StatusCode::CONFLICT,
        ),
        (
            "not https",
            json!({ "issuer": "ftp://login.acme.example/", "audience": "api" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a blocked address",
            json!({ "issuer": "https://169.254.169.254/", "audience": "api" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a blocked key set",
            json!({ "issuer": "https://login.acme.example/", "jwks_uri": "https://10.0.0.1/keys", "audience": "api" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "audience over 255",
            json!({ "issuer": "https://login.acme.example/", "audience": "a".repeat(256) }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an issuer without its audience",
            json!({ "issuer": "https://login.acme.example/" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a client without an issuer",
            json!({ "client_id": "web" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an unknown role",
            json!({ "issuer": "https://login.acme.example/", "audience": "api", "provision_role": "root" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an unknown field",
            json!({ "issuer": "https://login.acme.example/", "audience": "api", "secret": "x" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, body) = put(body).await;
        assert_problem(status, &body, expected, case);
    }
    let (status, body) = app.get("/tenant/sso", &owner).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "nothing was kept");
}

async fn provisioned_users_count_against_the_plan(backend: Backend) {
    let Some(app) = app(backend, |config| {
        config.billing.plans.default_plan = "free".into();
        if let Some(free) = config.billing.plans.plans.get_mut("free") {
            free.max_users = Some(1);
        }
    })
    .await
    else {
        return;
    };
    let provider = provider_of("second", "second@acme.test").await;
    let mut body = registration(&provider);
    body["provision_role"] = json!("member");
    let path = format!("/tenants/{}/sso", app.tenant.id());
    let (status, _) = app
        .call(Method::PUT, &path, &app.admin_token(), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The owner is the one user the plan allows: the newcomer is refused.
    let token = provider.token("second").await;
    let (status, body) = app.get("/tenant", &token).await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "at the user limit",
    );
    let users = app
        .state
        .db
        .begin_snapshot(&app.tenant)
        .await
        .unwrap()
        .count_users()
        .await
        .unwrap();
    assert_eq!(users, 1, "no one was created past the limit");
}
