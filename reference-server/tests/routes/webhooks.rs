//! Webhooks over HTTP, on both backends: the plan gate (402), the
//! endpoints API and its refusals, tenants apart, scopes, secrets shown
//! once, and the server's own events delivered to a receiver on loopback by
//! the worker the app runs, signed and verifiable (moved from the socket
//! tests, steps and assertions as they were).

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{Backend, auth::TokenRole};
use tenantkit_webhooks::testing::{Behaviour, HOSTILE_URLS, Receiver};

use crate::{
    client::{OwnedTenant, Reply, Server, problem},
    on_both_backends,
};

on_both_backends!(
    a_plan_without_webhooks_gets_402_until_it_upgrades,
    endpoints_round_trip_through_the_api,
    hostile_urls_are_422_saying_why,
    invalid_input_is_refused_and_changes_nothing,
    another_tenants_endpoints_and_deliveries_are_404,
    members_and_unscoped_keys_are_403_scoped_keys_work,
    secrets_are_shown_once_and_never_again,
    the_servers_events_arrive_signed,
    test_retry_and_recover_through_the_api,
);

type Tenant = OwnedTenant;

async fn tenant(s: &Server) -> Tenant {
    s.owned_tenant().await
}

/// What these tests ask of a tenant.
trait TenantCalls {
    async fn send(&self, s: &Server, method: Method, path: &str, body: &Value) -> Reply;
}

impl TenantCalls for Tenant {
    /// `method path` with a JSON `body` as this tenant's owner.
    async fn send(&self, s: &Server, method: Method, path: &str, body: &Value) -> Reply {
        self.call(s, method, path).json(body).send().await.unwrap()
    }
}

async fn create(s: &Server, t: &Tenant, url: &str, types: &[&str]) -> Value {
    let res = t
        .call(s, Method::POST, "/webhooks")
        .json(&json!({ "url": url, "event_types": types, "description": "e2e" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn a_plan_without_webhooks_gets_402_until_it_upgrades(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = tenant(&s).await;
    let res = t
        .send(
            &s,
            Method::POST,
            "/webhooks",
            &json!({ "url": "https://93.184.216.34/in", "event_types": ["*"] }),
        )
        .await;
    let body = problem(
        res,
        StatusCode::PAYMENT_REQUIRED,
        "POST /webhooks on the Free plan",
    )
    .await;
    assert_eq!(body["limit"], "webhooks");
    let res = t.call(&s, Method::GET, "/webhooks").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    s.subscribe(t.id, "price_pro").await;
    let res = t.call(&s, Method::GET, "/webhooks").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    s.stop().await;
}

async fn endpoints_round_trip_through_the_api(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let t = tenant(&s).await;
    let created = create(&s, &t, "https://93.184.216.34/in", &["user.created"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "active");
    assert_eq!(created["event_types"], json!(["user.created"]));

    let list: Value = t.get_json(&s, "/webhooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let path = format!("/webhooks/{id}");
    let res = t.send(&s, Method::PATCH, &path, &json!({ "url": "https://93.184.216.35/v2", "event_types": ["user.created", "user.deleted"], "description": "renamed" })).await;
    assert_eq!(res.status(), StatusCode::OK);
    let got: Value = t.get_json(&s, &path).await;
    assert_eq!(got["url"], "https://93.184.216.35/v2");
    assert_eq!(got["description"], "renamed");
    assert_eq!(got["event_types"], json!(["user.created", "user.deleted"]));

    let off: Value = t
        .send(&s, Method::PATCH, &path, &json!({ "status": "disabled" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(off["status"], "disabled");
    assert_eq!(off["disabled_reason"], "disabled by the tenant");
    let on: Value = t
        .send(&s, Method::PATCH, &path, &json!({ "status": "active" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (on["status"].clone(), on["disabled_reason"].clone()),
        (json!("active"), Value::Null)
    );

    let types: Value = t.get_json(&s, "/webhooks/event-types").await;
    let names: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "user.created",
        "user.updated",
        "user.deleted",
        "api_key.created",
        "api_key.revoked",
        "subscription.updated",
        "webhook.test",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["example"].is_object())
    );

    let res = t.call(&s, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = t.call(&s, Method::GET, &path).send().await.unwrap();
    problem(res, StatusCode::NOT_FOUND, "GET a deleted endpoint").await;
    // Every change is in the audit trail.
    let trail: Value = t.get_json(&s, "/audit-logs?resource_type=webhook").await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions == ["delete", "update", "update", "update", "create"],
        "{actions:?}"
    );
    s.stop().await;
}

async fn hostile_urls_are_422_saying_why(backend: Backend) {
    // The production policy: no allow-list, https only.
    let Some(s) =
        Server::start_with(backend, |c| c.billing.plans.default_plan = "pro".into()).await
    else {
        return;
    };
    let t = tenant(&s).await;
    let mut urls: Vec<&str> = HOSTILE_URLS.to_vec();
    // A name of the machine itself.
    urls.push("https://localhost/in");
    urls.push("https://localhost./in");
    for url in urls {
        let res = t
            .send(
                &s,
                Method::POST,
                "/webhooks",
                &json!({ "url": url, "event_types": ["*"] }),
            )
            .await;
        let body = problem(
            res,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("POST /webhooks with {url}"),
        )
        .await;
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{url}: {body}"
        );
    }
    let list: Value = t.get_json(&s, "/webhooks").await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing was stored"
    );
    s.stop().await;
}

async fn invalid_input_is_refused_and_changes_nothing(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let t = tenant(&s).await;
    for (body, status) in [
        (
            json!({ "url": "https://93.184.216.34/in", "event_types": ["user.exploded"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "url": "https://93.184.216.34/in", "event_types": [] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "url": "https://93.184.216.34/in", "event_types": ["*"], "description": "x".repeat(501) }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "url": "https://93.184.216.34/in", "event_types": ["*"], "secret": "mine" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "url": "not a url", "event_types": ["*"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "event_types": ["*"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let res = t.send(&s, Method::POST, "/webhooks", &body).await;
        problem(res, status, &body.to_string()).await;
    }
    let list: Value = t.get_json(&s, "/webhooks").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let created = create(&s, &t, "https://93.184.216.34/in", &["*"]).await;
    let path = format!("/webhooks/{}", created["id"].as_str().unwrap());
    let res = t
        .send(
            &s,
            Method::PATCH,
            &path,
            &json!({ "url": "https://10.0.0.1/" }),
        )
        .await;
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "PATCH to a private address",
    )
    .await;
    let got: Value = t.get_json(&s, &path).await;
    assert_eq!(
        got["url"], "https://93.184.216.34/in",
        "a refused change changes nothing"
    );
    for query in [
        "state=lost",
        "limit=0",
        "limit=501",
        "since=yesterday",
        "colour=red",
    ] {
        let res = t
            .call(&s, Method::GET, &format!("{path}/deliveries?{query}"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{query}: {}", res.status());
    }
    s.stop().await;
}

async fn another_tenants_endpoints_and_deliveries_are_404(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (a, b) = (tenant(&s).await, tenant(&s).await);
    let created = create(&s, &a, &receiver.url("a"), &["*"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let sent: Value = a
        .call(&s, Method::POST, &format!("/webhooks/{id}/test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = sent["message_id"].as_str().unwrap().to_owned();
    receiver.wait_for("a", 1, Duration::from_secs(10)).await;
    for (method, path, body) in [
        (Method::GET, format!("/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/webhooks/{id}"),
            Some(json!({ "description": "mine now" })),
        ),
        (Method::DELETE, format!("/webhooks/{id}"), None),
        (Method::POST, format!("/webhooks/{id}/rotate-secret"), None),
        (Method::POST, format!("/webhooks/{id}/test"), None),
        (Method::GET, format!("/webhooks/{id}/deliveries"), None),
        (
            Method::GET,
            format!("/webhooks/{id}/deliveries/{message}/attempts"),
            None,
        ),
        (
            Method::POST,
            format!("/webhooks/{id}/deliveries/{message}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/webhooks/{id}/recover"),
            Some(json!({ "since": "2020-01-01T00:00:00Z" })),
        ),
    ] {
        let mut req = b.call(&s, method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{method} {path} as another tenant"
        );
    }
    let list: Value = b.get_json(&s, "/webhooks").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let dead: Value = b.get_json(&s, "/webhooks/dead-letters").await;
    assert!(dead["items"].as_array().unwrap().is_empty());
    // A's endpoint is untouched.
    let got: Value = a.get_json(&s, &format!("/webhooks/{id}")).await;
    assert_eq!(got["description"], "e2e");
    s.stop().await;
}

async fn members_and_unscoped_keys_are_403_scoped_keys_work(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let t = tenant(&s).await;
    let member = s.token(t.id, TokenRole::Member);
    let res = s
        .request(Method::GET, "/webhooks", &t.sub, &member)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN, "a member lists endpoints").await;
    let none = t.api_key(&s, json!(["users:read"])).await;
    let read = t.api_key(&s, json!(["webhooks:read"])).await;
    let write = t
        .api_key(&s, json!(["webhooks:read", "webhooks:write"]))
        .await;
    let body = json!({ "url": "https://93.184.216.34/in", "event_types": ["*"] });
    let res = s
        .request(Method::GET, "/webhooks", &t.sub, &none)
        .send()
        .await
        .unwrap();
    problem(
        res,
        StatusCode::FORBIDDEN,
        "a key without webhook scopes lists",
    )
    .await;
    let res = s
        .request(Method::GET, "/webhooks", &t.sub, &read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .request(Method::POST, "/webhooks", &t.sub, &read)
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN, "a webhooks:read key creates").await;
    let res = s
        .request(Method::POST, "/webhooks", &t.sub, &write)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    s.stop().await;
}

async fn secrets_are_shown_once_and_never_again(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let t = tenant(&s).await;
    let created = create(&s, &t, "https://93.184.216.34/in", &["*"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let raw = secret.trim_start_matches("whsec_");
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap()
            .len(),
        32
    );
    let id = created["id"].as_str().unwrap();
    let rotated: Value = t
        .call(&s, Method::POST, &format!("/webhooks/{id}/rotate-secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    // Nothing after creation shows either secret: not the endpoint, not the
    // listing, not the audit trail.
    for path in [
        format!("/webhooks/{id}"),
        "/webhooks".to_owned(),
        "/audit-logs".to_owned(),
        "/audit-logs/export".to_owned(),
    ] {
        let text = t
            .call(&s, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for leaked in [&secret, &new_secret] {
            assert!(
                !text.contains(leaked.trim_start_matches("whsec_")),
                "{path} shows a secret"
            );
        }
        assert!(!text.contains("whsec_"), "{path} shows a secret");
    }
    s.stop().await;
}

/// Waits for `n` messages at `path` and returns their parsed bodies,
/// verifying each signature with `secret`.
async fn verified(receiver: &Receiver, path: &str, n: usize, secret: &str) -> Vec<Value> {
    let got = receiver.wait_for(path, n, Duration::from_secs(15)).await;
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    got.iter()
        .map(|r| {
            verifier
                .verify(&r.body, &r.headers)
                .expect("signature verifies");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

async fn the_servers_events_arrive_signed(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = tenant(&s).await;
    let created = create(&s, &t, &receiver.url("all"), &["*"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();

    let user: Value = t
        .send(
            &s,
            Method::POST,
            "/users",
            &json!({ "email": "hooked@e2e.test" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let user_path = format!("/users/{}", user["id"].as_str().unwrap());
    t.send(&s, Method::PATCH, &user_path, &json!({ "role": "admin" }))
        .await;
    t.call(&s, Method::DELETE, &user_path).send().await.unwrap();
    let key: Value = t
        .send(&s, Method::POST, "/api-keys", &json!({ "name": "hooked" }))
        .await
        .json()
        .await
        .unwrap();
    t.call(
        &s,
        Method::DELETE,
        &format!("/api-keys/{}", key["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    s.subscribe(t.id, "price_enterprise").await;

    let bodies = verified(&receiver, "all", 6, &secret).await;
    let mut types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "api_key.created",
            "api_key.revoked",
            "subscription.updated",
            "user.created",
            "user.deleted",
            "user.updated"
        ]
    );
    let created_event = bodies.iter().find(|b| b["type"] == "user.created").unwrap();
    assert_eq!(created_event["data"]["email"], "hooked@e2e.test");
    assert!(created_event["timestamp"].is_string());
    let sub = bodies
        .iter()
        .find(|b| b["type"] == "subscription.updated")
        .unwrap();
    assert_eq!(
        (
            sub["data"]["plan"].as_str(),
            sub["data"]["previous_plan"].as_str()
        ),
        (Some("enterprise"), None)
    );
    let key_event = bodies
        .iter()
        .find(|b| b["type"] == "api_key.created")
        .unwrap();
    assert!(
        key_event["data"].get("key").is_none() && key_event["data"].get("hash").is_none(),
        "never the key"
    );
    // The delivery history agrees.
    let id = created["id"].as_str().unwrap();
    let history: Value = t.get_json(&s, &format!("/webhooks/{id}/deliveries")).await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let history: Value = t
        .call(
            &s,
            Method::GET,
            &format!("/webhooks/{id}/deliveries?state=succeeded"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 6);
    s.stop().await;
}

async fn test_retry_and_recover_through_the_api(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |_| {}).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = tenant(&s).await;
    let created = create(&s, &t, &receiver.url("in"), &["user.created"]).await;
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    let res = t
        .call(&s, Method::POST, &format!("/webhooks/{id}/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let sent: Value = res.json().await.unwrap();
    let message = sent["message_id"].as_str().unwrap().to_owned();
    let bodies = verified(&receiver, "in", 1, &secret).await;
    assert_eq!(
        bodies[0]["type"], "webhook.test",
        "sent although the endpoint subscribes to user.created only"
    );

    // The attempt is listed with its response.
    let attempts_path = format!("/webhooks/{id}/deliveries/{message}/attempts");
    let mut attempts = Value::Null;
    for _ in 0..100 {
        attempts = t.get_json(&s, &attempts_path).await;
        if attempts.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts[0]["response_status"], 200);
    assert_eq!(attempts[0]["attempt"], 1);

    // Retry a delivered message: sent again, with the same webhook-id.
    let res = t
        .call(
            &s,
            Method::POST,
            &format!("/webhooks/{id}/deliveries/{message}/retry"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let got = receiver.wait_for("in", 2, Duration::from_secs(10)).await;
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);

    // Disabled: pending deliveries stop; re-enabled and recovered: delivered.
    receiver.script("in", Behaviour::Status(500));
    t.send(
        &s,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        &json!({ "status": "disabled" }),
    )
    .await;
    t.send(
        &s,
        Method::POST,
        "/users",
        &json!({ "email": "late@e2e.test" }),
    )
    .await;
    let res = t
        .send(
            &s,
            Method::POST,
            &format!("/webhooks/{id}/recover"),
            &json!({ "since": "2020-01-01T00:00:00Z" }),
        )
        .await;
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "recover into a disabled endpoint",
    )
    .await;
    receiver.script("in", Behaviour::Status(200));
    t.send(
        &s,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        &json!({ "status": "active" }),
    )
    .await;
    // Published while disabled: not queued for it, so nothing to recover but
    // what had been queued before; a new event arrives.
    t.send(
        &s,
        Method::POST,
        "/users",
        &json!({ "email": "later@e2e.test" }),
    )
    .await;
    let bodies = verified(&receiver, "in", 3, &secret).await;
    assert_eq!(bodies[2]["data"]["email"], "later@e2e.test");
    let res = t
        .send(
            &s,
            Method::POST,
            &format!("/webhooks/{id}/recover"),
            &json!({ "since": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let dead: Value = t.get_json(&s, "/webhooks/dead-letters").await;
    assert!(dead["items"].as_array().unwrap().is_empty());
    s.stop().await;
}
