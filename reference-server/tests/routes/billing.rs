//! Billing through the server: 402s, the user limit, Stripe webhooks,
//! checkout (moved from the socket tests, steps and assertions as they
//! were; Stripe's API is faked on loopback).

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{Backend, auth::TokenRole};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    client::{STRIPE_WEBHOOK_SECRET, Server},
    on_both_backends, server,
};

on_both_backends!(
    free_plan_api_key_gets_402_with_plan_and_upgrade,
    user_limit_is_402_at_the_limit,
    concurrent_user_creation_over_http_never_exceeds_the_limit,
    stripe_webhook_endpoint_verifies_applies_once_and_takes_effect,
    subscription_endpoint_shows_the_effective_plan,
    checkout_and_portal_go_to_stripe,
);

async fn api_key(s: &Server, sub: &str, token: &str) -> String {
    let res = s
        .request(Method::POST, "/api-keys", sub, token)
        .json(&json!({ "name": "robot", "scopes": ["users:read", "users:write"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn free_plan_api_key_gets_402_with_plan_and_upgrade(backend: Backend) {
    let s = server!(backend, |_| {});
    let (id, sub) = s.create_tenant().await;
    let key = api_key(&s, &sub, &s.token(id, TokenRole::Admin)).await;
    let res = s
        .get("/users")
        .header("x-tenant-id", &sub)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        (problem["plan"].as_str(), problem["limit"].as_str()),
        (Some("free"), Some("api_access"))
    );
    assert!(
        problem["upgrade"]
            .as_str()
            .unwrap()
            .contains("/billing/checkout")
    );
    // Users with tokens are not programmatic access.
    let res = s
        .request(Method::GET, "/users", &sub, s.token(id, TokenRole::Member))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn user_limit_is_402_at_the_limit(backend: Backend) {
    let s = server!(backend, |c| c
        .billing
        .plans
        .plans
        .get_mut("free")
        .unwrap()
        .max_users = Some(2));
    let (id, sub) = s.create_tenant().await; // with its owner: 1 of 2
    let owner = s.token(id, TokenRole::Owner);
    let post = |email: &str| {
        s.request(Method::POST, "/users", &sub, &owner)
            .json(&json!({ "email": email }))
            .send()
    };
    assert_eq!(
        post("second@x.test").await.unwrap().status(),
        StatusCode::CREATED
    );
    let res = post("third@x.test").await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["plan"], "free");
    assert_eq!(problem["limit"]["max_users"], 2);
    assert_eq!(problem["usage"]["users"], 2);
    s.subscribe(id, "price_pro").await;
    assert_eq!(
        post("third@x.test").await.unwrap().status(),
        StatusCode::CREATED,
        "the upgrade applies at once"
    );
}

async fn concurrent_user_creation_over_http_never_exceeds_the_limit(backend: Backend) {
    let s = server!(backend, |c| c
        .billing
        .plans
        .plans
        .get_mut("free")
        .unwrap()
        .max_users = Some(6));
    let (id, sub) = s.create_tenant().await;
    let owner = s.token(id, TokenRole::Owner);
    let requests = (0..20).map(|i| {
        s.request(Method::POST, "/users", &sub, &owner)
            .json(&json!({ "email": format!("race{i}@x.test") }))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!((created, refused), (5, 15), "{statuses:?}");
    let users: Value = s
        .request(Method::GET, "/users?limit=500", &sub, &owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 6);
}

async fn stripe_webhook_endpoint_verifies_applies_once_and_takes_effect(backend: Backend) {
    let s = server!(backend, |_| {});
    let (id, sub) = s.create_tenant().await;
    let key = api_key(&s, &sub, &s.token(id, TokenRole::Admin)).await;
    let ctx = s.app.state.db.resolve_id(id).await.unwrap().unwrap();
    let now = tenantkit_billing::testing::now();
    let event = tenantkit_billing::testing::event(
        "evt_e2e_1",
        "customer.subscription.created",
        now,
        tenantkit_billing::testing::subscription(&ctx, "active", "price_pro", now + 86_400),
    );
    let send = |body: Vec<u8>, signature: Option<String>| {
        let mut req = s
            .post("/webhooks/stripe")
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        req.send()
    };
    // Bad signatures: 400 problem, nothing changes.
    let (body, _) = tenantkit_billing::testing::signed(&event, &"whsec_wrong".to_owned().into());
    let forged = tenantkit_billing::testing::signed(&event, &"whsec_wrong".to_owned().into()).1;
    for signature in [None, Some(forged), Some("t=1,v1=00".to_owned())] {
        let res = send(body.clone(), signature).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let blocked = s
        .get("/users")
        .header("x-tenant-id", &sub)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::PAYMENT_REQUIRED);

    let (body, signature) =
        tenantkit_billing::testing::signed(&event, &STRIPE_WEBHOOK_SECRET.to_owned().into());
    let res = send(body.clone(), Some(signature.clone())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "applied");
    let again = send(body, Some(signature)).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["outcome"], "duplicate");
    let allowed = s
        .get("/users")
        .header("x-tenant-id", &sub)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.status(),
        StatusCode::OK,
        "the next request sees the new plan"
    );
    // Malformed JSON, correctly signed: 400.
    let (junk, junk_sig) = {
        let body = b"{not json".to_vec();
        let header = tenantkit_billing::signature::sign(
            &body,
            &STRIPE_WEBHOOK_SECRET.to_owned().into(),
            now,
        );
        (body, header)
    };
    assert_eq!(
        send(junk, Some(junk_sig)).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

async fn subscription_endpoint_shows_the_effective_plan(backend: Backend) {
    let s = server!(backend, |_| {});
    let (id, sub) = s.create_tenant().await;
    let get = || {
        s.request(
            Method::GET,
            "/billing/subscription",
            &sub,
            s.token(id, TokenRole::Member),
        )
        .send()
    };
    let view: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(view["effective_plan"]["id"], "free");
    assert!(view["subscription"].is_null());
    s.subscribe(id, "price_enterprise").await;
    let view: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(view["effective_plan"]["id"], "enterprise");
    assert_eq!(view["subscription"]["status"], "active");
}

async fn checkout_and_portal_go_to_stripe(backend: Backend) {
    // A customer id of this run: the PostgreSQL test database outlives runs,
    // and an id links to one tenant only.
    let customer = format!("cus_{}", uuid::Uuid::new_v4().simple());
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": customer, "object": "customer", "created": 1_700_000_000, "livemode": false,
            "metadata": {}, "email": null, "name": "E2E", "balance": 0, "delinquent": false,
            "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
            "preferred_locales": [], "tax_exempt": "none"
        })))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bps_E2e", "object": "billing_portal.session", "configuration": "bpc_1", "created": 1_700_000_000,
            "customer": customer, "flow": null, "livemode": false, "locale": null, "on_behalf_of": null,
            "return_url": "http://localhost:8080/", "url": "https://billing.stripe.com/p/session/test_e2e"
        })))
        .mount(&stripe)
        .await;
    let uri = stripe.uri();
    let s = server!(backend, move |c| {
        c.billing.stripe_secret_key = Some("sk_test_e2e".to_owned().into());
        c.billing.stripe_api_base = Some(uri);
    });
    let (id, sub) = s.create_tenant().await;
    let post = |path: &str, role: TokenRole, body: Value| {
        s.request(Method::POST, path, &sub, s.token(id, role))
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/billing/portal", TokenRole::Owner, json!({}))
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT,
        "no customer yet"
    );
    assert_eq!(
        post(
            "/billing/checkout",
            TokenRole::Member,
            json!({ "plan": "pro" })
        )
        .await
        .unwrap()
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            "/billing/checkout",
            TokenRole::Owner,
            json!({ "plan": "gold" })
        )
        .await
        .unwrap()
        .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Every input is checked before Stripe hears of anything.
    let res = post(
        "/billing/checkout",
        TokenRole::Owner,
        json!({ "plan": "pro", "email": "no-at-sign" }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(
        stripe.received_requests().await.unwrap().is_empty(),
        "Stripe was called for invalid input"
    );
    // Stripe's checkout endpoint is not mocked: its failure is a 502 without Stripe's details.
    let res = post(
        "/billing/checkout",
        TokenRole::Owner,
        json!({ "plan": "pro" }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    // The customer was created and linked; the portal now works.
    let res = post("/billing/portal", TokenRole::Admin, json!({}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["url"],
        "https://billing.stripe.com/p/session/test_e2e"
    );
}
