//! Publishing webhook messages over HTTP across server processes: one
//! idempotency key retried at two servers on one database publishes once
//! and answers the same everywhere; the Python client of
//! docs/webhooks.md, run as written, publishes through a real socket; and an
//! endpoint's custom headers reach its receiver.
//! (The API's refusals and forms: `reference-server/tests/routes/publishing.rs`.)

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit_e2e::{Backend, OwnedTenant, Server};
use tenantkit_webhooks::testing::Receiver;

use crate::on_both_backends;

on_both_backends!(
    one_key_retried_at_two_servers_publishes_once,
    the_python_client_in_the_docs_publishes,
    an_endpoints_custom_headers_are_delivered_and_the_platforms_refused,
);

/// An endpoint of `t` at `url` for the invoice events; its secret.
async fn endpoint(s: &Server, t: &OwnedTenant, url: &str) -> String {
    let res = t
        .call(s, Method::POST, "/webhooks")
        .json(&json!({ "url": url, "event_types": ["invoice.paid", "invoice.voided"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn one_key_retried_at_two_servers_publishes_once(backend: Backend) {
    let Some(one) = Server::with_loopback_webhooks(backend, tenantkit_e2e::invoice_events).await
    else {
        return;
    };
    // The second process shares the first's database (on SQLite its file).
    let data_dir = one.config.database.data_dir.clone();
    let two = Server::with_loopback_webhooks(backend, |c| {
        tenantkit_e2e::invoice_events(c);
        if let Backend::Sqlite = backend {
            c.database.data_dir = data_dir;
        }
    })
    .await
    .unwrap();
    let receiver = Receiver::start().await;
    let t = one.owned_tenant().await;
    let secret = endpoint(&one, &t, &receiver.url("in")).await;

    let body = json!({ "messages": [
        { "event_type": "invoice.paid", "data": { "invoice": "2026-0001", "amount": 100 } },
        { "event_type": "invoice.voided", "data": { "invoice": "2026-0000", "amount": 0 } },
    ] });
    let sends = (0..10).map(|i| {
        let s = if i % 2 == 0 { &one } else { &two };
        s.request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
            .header("idempotency-key", "sync-run-17")
            .json(&body)
            .send()
    });
    let mut answers = Vec::new();
    let mut published = 0;
    for res in futures_util::future::join_all(sends).await {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        if res.headers().get("idempotent-replayed").is_none() {
            published += 1;
        }
        answers.push(res.json::<Value>().await.unwrap());
    }
    assert_eq!(
        published, 1,
        "one request published, nine were answered again"
    );
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one answer at both servers"
    );
    let other = json!({ "messages": [{ "event_type": "invoice.paid", "data": { "invoice": "2026-0002", "amount": 1 } }] });
    let res = two
        .request(Method::POST, "/webhooks/messages/batch", &t.sub, &t.token)
        .header("idempotency-key", "sync-run-17")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    let got = receiver.wait_for("in", 2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_later = receiver.received("in");
    assert_eq!(got_later.len(), 2, "each message delivered once");
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &got {
        verifier.verify(&r.body, &r.headers).expect("signed");
    }
    two.stop().await;
    one.stop().await;
}

async fn an_endpoints_custom_headers_are_delivered_and_the_platforms_refused(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, tenantkit_e2e::invoice_events).await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = s.owned_tenant().await;
    // Every name the platform sets is refused, whatever its case; nothing is stored.
    for name in tenantkit_webhooks::headers::DENIED
        .iter()
        .map(|n| n.to_ascii_uppercase())
        .chain(["webhook-id", "Webhook-Signature", "webhook-timestamp"].map(String::from))
    {
        let res = t
            .call(&s, Method::POST, "/webhooks")
            .json(
                &json!({ "url": receiver.url("in"), "event_types": ["invoice.paid"],
                           "headers": { (name.clone()): "x" } }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(&name),
            "{problem}"
        );
    }
    let listed: Value = t
        .call(&s, Method::GET, "/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]), "{listed}");

    let res = t
        .call(&s, Method::POST, "/webhooks")
        .json(
            &json!({ "url": receiver.url("in"), "event_types": ["invoice.paid"],
                       "headers": { "Authorization": "Bearer r3ceiver", "X-Team": "blue" } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["header_names"], json!(["Authorization", "X-Team"]));
    assert!(!created.to_string().contains("r3ceiver"), "{created}");
    let id = created["id"].as_str().unwrap();
    let shown = t
        .call(&s, Method::GET, &format!("/webhooks/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        shown.contains("X-Team") && !shown.contains("r3ceiver"),
        "{shown}"
    );

    let res = t
        .call(&s, Method::POST, "/webhooks/messages")
        .json(&json!({ "event_type": "invoice.paid", "data": { "invoice": "2026-0003", "amount": 5 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let got = receiver.wait_for("in", 1, Duration::from_secs(15)).await;
    assert_eq!(got[0].headers["authorization"], "Bearer r3ceiver");
    assert_eq!(got[0].headers["x-team"], "blue");
    standardwebhooks::Webhook::new(created["secret"].as_str().unwrap())
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .expect("signed by the platform, whatever the endpoint adds");
    s.stop().await;
}

/// The ```python block of docs/webhooks.md's "Publishing over HTTP".
fn python_snippet() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/webhooks.md"))
        .unwrap();
    let section = doc.find("### Publishing over HTTP").expect("the section");
    let start =
        section + doc[section..].find("```python\n").expect("a Python block") + "```python\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

async fn the_python_client_in_the_docs_publishes(backend: Backend) {
    let Some(s) = Server::with_loopback_webhooks(backend, tenantkit_e2e::invoice_events).await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let t = s.owned_tenant().await;
    let secret = endpoint(&s, &t, &receiver.url("in")).await;
    let key = t.api_key(&s, json!(["webhooks:publish"])).await;
    let run = || {
        let snippet = python_snippet();
        let (base, sub, key) = (s.url(""), t.sub.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg("-c")
                .arg(snippet)
                .env("TENANTKIT_URL", base.trim_end_matches('/'))
                .env("TENANTKIT_TENANT", sub)
                .env("TENANTKIT_API_KEY", key)
                .output()
                .expect("python3 runs")
        })
    };
    let first = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words[1..], ["1", "published"], "{stdout}");
    let again = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        [words[0], "1", "replayed"],
        "the snippet's idempotency key"
    );

    let got = receiver.wait_for("in", 1, Duration::from_secs(15)).await;
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&got[0].body, &got[0].headers)
        .expect("signed");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["data"],
        json!({ "invoice": "2026-0042", "amount": 4200 })
    );
    assert_eq!(
        got[0].headers["webhook-id"],
        format!("msg_{}", words[0].replace('-', ""))
    );
    s.stop().await;
}
