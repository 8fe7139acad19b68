//! Publishing webhook messages over HTTP (`POST /webhooks/messages`, its
//! batch form and the platform's `/tenants/{id}/webhooks/messages`), on
//! both backends: every credential kind delivers signed messages to a
//! receiver on loopback; the refusals (plan, scope, role, suspended tenant,
//! unknown type, oversized, batch limits, over rate); idempotency keys and
//! message ids answering as the first time.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::{Backend, auth::TokenRole};
use tenantkit_webhooks::testing::Receiver;

use crate::{
    client::{OwnedTenant, Reply, Server, problem},
    on_both_backends,
};

on_both_backends!(
    every_credential_publishes_signed_messages,
    refusals_publish_nothing,
    a_retry_with_its_key_answers_as_the_first,
    a_tenant_over_its_publish_rate_gets_429,
    a_plan_without_webhooks_gets_402_in_both_forms,
    data_must_satisfy_its_types_schema_which_the_catalogue_serves,
    wildcards_and_channels_route_over_http,
);

async fn endpoint(s: &Server, t: &OwnedTenant, url: &str) -> String {
    let res = t
        .call(s, Method::POST, "/webhooks")
        .json(&json!({ "url": url, "event_types": ["invoice.paid", "invoice.voided"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// The platform's own event types for these tests, configured
/// (`[[webhooks.event_types]]`) with a schema: `n`, a whole number.
fn invoices(c: &mut tenantkit_server::config::Config) {
    let schema = json!({
        "type": "object",
        "required": ["n"],
        "properties": { "n": { "type": "integer", "minimum": 0 }, "blob": { "type": "string" } }
    });
    for name in ["invoice.paid", "invoice.voided"] {
        c.webhooks
            .event_types
            .push(tenantkit_server::config::EventTypeConfig {
                name: name.into(),
                description: format!("{name}, for the tests"),
                schema: Some(schema.clone()),
                example: json!({ "n": 1 }),
            });
    }
}

fn message(event_type: &str, n: u64) -> Value {
    json!({ "event_type": event_type, "data": { "n": n } })
}

async fn publish(s: &Server, t: &OwnedTenant, credential: &str, body: &Value) -> Reply {
    s.request(Method::POST, "/webhooks/messages", &t.sub, credential)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn accepted(res: Reply) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn messages_of(s: &Server, t: &OwnedTenant) -> i64 {
    let ctx = s.context(t.id).await;
    let mut tx = s.app.state.db.begin_snapshot(&ctx).await.unwrap();
    let q = tx.query("SELECT COUNT(*) FROM webhook_messages WHERE tenant_id = $1");
    let (n,): (i64,) = tx.fetch_one(q).await.unwrap();
    n
}

async fn every_credential_publishes_signed_messages(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, invoices).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = s.owned_tenant().await;
    let secret = endpoint(&s, &t, &receiver.url("in")).await;

    // The owner's token.
    let one = accepted(publish(&s, &t, &t.token, &message("invoice.paid", 1)).await).await;
    assert_eq!(one["event_type"], "invoice.paid");
    assert_eq!(one["endpoints"], 1);
    assert!(one.get("id").is_none(), "no id of the caller's");
    // An admin's token, and a key with `webhooks:publish`: the batch form.
    let admin = s.token(t.id, TokenRole::Admin);
    let key = t.api_key(&s, json!(["webhooks:publish"])).await;
    let batch = json!({ "messages": [message("invoice.paid", 2), message("invoice.voided", 3)] });
    for credential in [&admin, &key] {
        let res = s
            .request(Method::POST, "/webhooks/messages/batch", &t.sub, credential)
            .json(&batch)
            .send()
            .await
            .unwrap();
        let answer = accepted(res).await;
        assert_eq!(answer["messages"].as_array().unwrap().len(), 2);
        assert_eq!(answer["messages"][1]["event_type"], "invoice.voided");
    }
    // The platform, for its own services.
    let res = s
        .post(&format!("/tenants/{}/webhooks/messages", t.id))
        .bearer_auth(s.admin_token())
        .json(&message("invoice.paid", 4))
        .send()
        .await
        .unwrap();
    let platform = accepted(res).await;

    let got = receiver.wait_for("in", 6, Duration::from_secs(15)).await;
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut ns: Vec<u64> = got
        .iter()
        .map(|r| {
            verifier.verify(&r.body, &r.headers).expect("signed");
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["data"]["n"].as_u64().unwrap()
        })
        .collect();
    ns.sort();
    assert_eq!(ns, [1, 2, 2, 3, 3, 4], "each message once");
    let platform_id = platform["message_id"].as_str().unwrap().replace('-', "");
    assert!(
        got.iter()
            .any(|r| r.headers["webhook-id"] == format!("msg_{platform_id}")),
        "the answer's message id is the delivery's webhook-id"
    );

    // Refused: a member, a key without the scope, another tenant's token.
    let member = s.token(t.id, TokenRole::Member);
    let writer = t
        .api_key(&s, json!(["webhooks:write", "webhooks:read"]))
        .await;
    for (credential, what) in [
        (&member, "a member"),
        (&writer, "a key without webhooks:publish"),
    ] {
        let res = publish(&s, &t, credential, &message("invoice.paid", 9)).await;
        problem(res, StatusCode::FORBIDDEN, what).await;
    }
    let other = s.owned_tenant().await;
    let res = publish(&s, &t, &other.token, &message("invoice.paid", 9)).await;
    problem(res, StatusCode::FORBIDDEN, "another tenant's token").await;
    // A tenant's token cannot use the platform's form.
    let res = s
        .post(&format!("/tenants/{}/webhooks/messages", t.id))
        .bearer_auth(&t.token)
        .json(&message("invoice.paid", 9))
        .send()
        .await
        .unwrap();
    problem(
        res,
        StatusCode::FORBIDDEN,
        "a tenant's token on the platform form",
    )
    .await;
    s.stop().await;
}

async fn refusals_publish_nothing(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, invoices).await else {
        return;
    };
    let t = s.owned_tenant().await;
    endpoint(&s, &t, "http://127.0.0.1:9/in").await;
    let send = async |body: Value| publish(&s, &t, &t.token, &body).await;

    let body = problem(
        send(message("no.such.type", 1)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown event type",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("no.such.type"));
    problem(
        send(json!({ "event_type": "invoice.paid", "data": [1, 2] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "data that is not an object",
    )
    .await;
    problem(
        send(json!({ "event_type": "invoice.paid", "data": { "n": 1 }, "extra": 1 })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown field",
    )
    .await;
    let big = json!({ "event_type": "invoice.paid", "data": { "n": 1, "blob": "x".repeat(1024 * 1024) } });
    let body = problem(
        send(big).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a body over 1 MiB",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing is truncated")
    );
    let huge = json!({ "event_type": "invoice.paid", "data": { "n": 1, "blob": "x".repeat(5 * 1024 * 1024) } });
    problem(
        send(huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over the body limit",
    )
    .await;
    let id = json!({ "event_type": "invoice.paid", "data": { "n": 1 }, "id": "has/slash" });
    problem(send(id).await, StatusCode::UNPROCESSABLE_ENTITY, "a bad id").await;

    let batch = |messages: Vec<Value>| {
        s.request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
            .json(&json!({ "messages": messages }))
            .send()
    };
    let res = batch(vec![message("invoice.paid", 1), message("nope", 2)])
        .await
        .unwrap();
    let body = problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad message in a batch",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("message 1:"),
        "{body}"
    );
    let res = batch(vec![message("invoice.paid", 1); 101]).await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "101 messages").await;
    let res = batch(vec![]).await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "no message").await;

    let keyed = |key: &str| {
        s.request(Method::POST, "/webhooks/messages", &t.sub, &t.token)
            .header("idempotency-key", key)
            .json(&message("invoice.paid", 1))
            .send()
    };
    problem(
        keyed(&"k".repeat(256)).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a key over 255",
    )
    .await;
    problem(
        keyed("two words").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a key with a space",
    )
    .await;
    let res = s
        .request(Method::POST, "/webhooks/messages", &t.sub, &t.token)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&message("invoice.paid", 1))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "two keys").await;
    assert_eq!(
        messages_of(&s, &t).await,
        0,
        "nothing of any refusal published"
    );

    // A suspended tenant publishes nothing, in either form.
    let res = s
        .request(
            Method::PATCH,
            &format!("/tenants/{}", t.id),
            &t.sub,
            s.admin_token(),
        )
        .json(&json!({ "status": "suspended" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    problem(
        send(message("invoice.paid", 1)).await,
        StatusCode::FORBIDDEN,
        "suspended",
    )
    .await;
    let res = s
        .post(&format!("/tenants/{}/webhooks/messages", t.id))
        .bearer_auth(s.admin_token())
        .json(&message("invoice.paid", 1))
        .send()
        .await
        .unwrap();
    problem(
        res,
        StatusCode::CONFLICT,
        "the platform publishing to a suspended tenant",
    )
    .await;
    let res = s
        .post(&format!(
            "/tenants/{}/webhooks/messages",
            tenantkit::TenantId::new()
        ))
        .bearer_auth(s.admin_token())
        .json(&message("invoice.paid", 1))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND, "no such tenant").await;
    assert_eq!(messages_of(&s, &t).await, 0);
    s.stop().await;
}

async fn a_retry_with_its_key_answers_as_the_first(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, invoices).await else {
        return;
    };
    let t = s.owned_tenant().await;
    endpoint(&s, &t, "http://127.0.0.1:9/in").await;
    let keyed = |key: &'static str, body: Value| {
        s.request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let batch = json!({ "messages": [message("invoice.paid", 1), message("invoice.voided", 2)] });
    let first = keyed("nightly-2026-12-07", batch.clone()).await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = accepted(first).await;
    let again = keyed("nightly-2026-12-07", batch.clone()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(accepted(again).await, first, "the first answer, exactly");
    assert_eq!(messages_of(&s, &t).await, 2, "published once");
    let other = json!({ "messages": [message("invoice.paid", 3)] });
    let res = keyed("nightly-2026-12-07", other).await.unwrap();
    let body = problem(res, StatusCode::CONFLICT, "the key with another body").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("nightly-2026-12-07")
    );
    // The same key in the platform's form is the same tenant's key.
    let res = s
        .post(&format!("/tenants/{}/webhooks/messages/batch", t.id))
        .bearer_auth(s.admin_token())
        .header("idempotency-key", "nightly-2026-12-07")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(accepted(res).await, first);

    // A message's own id: published once, whatever request carries it.
    let with_id = json!({ "event_type": "invoice.paid", "data": { "n": 5 }, "id": "inv_5" });
    let first = accepted(publish(&s, &t, &t.token, &with_id).await).await;
    assert_eq!(first["id"], "inv_5");
    let res = s
        .request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
        .json(&json!({ "messages": [with_id, message("invoice.paid", 6)] }))
        .send()
        .await
        .unwrap();
    let batch = accepted(res).await;
    assert_eq!(batch["messages"][0], first, "inv_5 as first answered");
    assert_eq!(messages_of(&s, &t).await, 4, "inv_5 once, and the new one");
    let changed = json!({ "event_type": "invoice.paid", "data": { "n": 50 }, "id": "inv_5" });
    problem(
        publish(&s, &t, &t.token, &changed).await,
        StatusCode::CONFLICT,
        "an id reused",
    )
    .await;
    s.stop().await;
}

async fn a_tenant_over_its_publish_rate_gets_429(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, |c| {
        invoices(c);
        c.webhooks.publish_per_second = 1;
        c.webhooks.publish_burst = 100;
    })
    .await
    else {
        return;
    };
    let (t, u) = (s.owned_tenant().await, s.owned_tenant().await);
    let full = json!({ "messages": vec![message("invoice.paid", 1); 100] });
    let batch = |t: &OwnedTenant| {
        s.request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
            .json(&full)
            .send()
    };
    accepted(batch(&t).await.unwrap()).await;
    let res = publish(&s, &t, &t.token, &message("invoice.paid", 2)).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    problem(res, StatusCode::TOO_MANY_REQUESTS, "over the rate").await;
    // Another tenant has its own budget.
    accepted(batch(&u).await.unwrap()).await;
    s.stop().await;
}

async fn a_plan_without_webhooks_gets_402_in_both_forms(backend: Backend) {
    let Some(s) = Server::start_with(backend, invoices).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let res = publish(&s, &t, &t.token, &message("invoice.paid", 1)).await;
    let body = problem(res, StatusCode::PAYMENT_REQUIRED, "on Free").await;
    assert_eq!(body["limit"], "webhooks");
    let res = s
        .post(&format!("/tenants/{}/webhooks/messages", t.id))
        .bearer_auth(s.admin_token())
        .json(&message("invoice.paid", 1))
        .send()
        .await
        .unwrap();
    let body = problem(
        res,
        StatusCode::PAYMENT_REQUIRED,
        "the platform's form on Free",
    )
    .await;
    assert_eq!(body["limit"], "webhooks");
    s.subscribe(t.id, "price_pro").await;
    accepted(publish(&s, &t, &t.token, &message("invoice.paid", 1)).await).await;
}

async fn data_must_satisfy_its_types_schema_which_the_catalogue_serves(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, invoices).await else {
        return;
    };
    let t = s.owned_tenant().await;
    endpoint(&s, &t, "http://127.0.0.1:9/in").await;
    let wrong = json!({ "event_type": "invoice.paid", "data": { "n": -1, "blob": 7 } });
    let body = problem(
        publish(&s, &t, &t.token, &wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "data against its schema",
    )
    .await;
    assert_eq!(body["title"], "Invalid event data");
    let mut paths: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/blob", "/n"], "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("`invoice.paid` schema"),
        "{body}"
    );
    // In a batch, the message is named; nothing is published.
    let res = s
        .request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
        .json(&json!({ "messages": [message("invoice.paid", 1), wrong] }))
        .send()
        .await
        .unwrap();
    let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "a batch").await;
    assert_eq!(body["message"], 1);
    assert!(
        body["detail"].as_str().unwrap().starts_with("message 1: "),
        "{body}"
    );
    assert_eq!(messages_of(&s, &t).await, 0);
    // A built-in type's schema holds over HTTP too.
    let user = json!({ "event_type": "user.created", "data": { "id": "u1" } });
    let body = problem(
        publish(&s, &t, &t.token, &user).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a built-in type's schema",
    )
    .await;
    assert!(!body["violations"].as_array().unwrap().is_empty());
    let user =
        json!({ "event_type": "user.created", "data": tenantkit_webhooks::testing::user_data(1) });
    accepted(publish(&s, &t, &t.token, &user).await).await;

    // The catalogue serves each type with its schema and example, the
    // configured ones after the built-in ones.
    let types = t.get_json(&s, "/webhooks/event-types").await;
    let types = types.as_array().unwrap();
    let paid = types.iter().find(|t| t["name"] == "invoice.paid").unwrap();
    assert_eq!(paid["schema"]["required"], json!(["n"]));
    assert_eq!(paid["example"], json!({ "n": 1 }));
    assert_eq!(types.last().unwrap()["name"], "invoice.voided");
    // ...and the OpenAPI document the server serves describes each, with
    // the same schema, under `webhooks`.
    let document: Value = s
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let described = document["webhooks"].as_object().unwrap();
    assert_eq!(described.len(), types.len(), "one entry per event type");
    for t in types {
        assert!(t["schema"].is_object(), "{t}");
        let body = &described[t["name"].as_str().unwrap()]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(body["schema"]["properties"]["data"], t["schema"], "{t}");
        assert_eq!(body["example"]["data"], t["example"], "{t}");
    }
    s.stop().await;
}

async fn wildcards_and_channels_route_over_http(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, invoices).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = s.owned_tenant().await;
    for (path, types, channels) in [
        ("eu", json!(["invoice.*"]), json!(["eu"])),
        ("all", json!(["invoice.paid"]), json!([])),
    ] {
        let res = t
            .call(&s, Method::POST, "/webhooks")
            .json(&json!({ "url": receiver.url(path), "event_types": types, "channels": channels }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["channels"], channels);
    }
    let on = |event_type: &str, channels: Value| json!({ "event_type": event_type, "data": { "n": 1 }, "channels": channels });
    for (message, endpoints) in [
        (on("invoice.paid", json!(["eu"])), 2),
        (on("invoice.voided", json!(["us"])), 0),
        (on("invoice.voided", json!(["eu", "us"])), 1),
        (on("invoice.paid", json!([])), 1),
    ] {
        let answer = accepted(publish(&s, &t, &t.token, &message).await).await;
        assert_eq!(answer["endpoints"], endpoints, "{message}");
        assert_eq!(
            answer["channels"].as_array().map_or(0, Vec::len),
            message["channels"].as_array().unwrap().len()
        );
    }
    assert_eq!(
        receiver
            .wait_for("eu", 2, Duration::from_secs(15))
            .await
            .len(),
        2
    );
    assert_eq!(
        receiver
            .wait_for("all", 2, Duration::from_secs(15))
            .await
            .len(),
        2
    );
    let res = t
        .call(&s, Method::POST, "/webhooks")
        .json(&json!({ "url": receiver.url("x"), "event_types": ["nope.*"] }))
        .send()
        .await
        .unwrap();
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a wildcard that takes no type",
    )
    .await;
    s.stop().await;
}
