//! Every background task runs under the supervisor: a panic injected into
//! each kind of task (the analytics writers, the webhook worker, the live
//! hub's loops, retention, the purge, the access listener) is logged,
//! counted, and the task runs again, and the service works as before. A
//! task the process cannot go on without (the HTTP server) fails readiness.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantkit_e2e::{
    Backend, Server,
    live::{Credential, connect, total},
};
use tenantkit_webhooks::testing::Receiver;

use crate::on_both_backends;

on_both_backends!(
    a_panic_in_any_background_task_is_survived,
    shutdown_stops_accepting_then_drains_the_writers_then_closes,
);

/// `tenantkit_task_restarts_total{task="<name>"}` in `/metrics`.
fn restarts(metrics: &str, task: &str) -> u64 {
    let prefix = format!("tenantkit_task_restarts_total{{task=\"{task}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no restart count for {task}:\n{metrics}"))
        .parse()
        .unwrap()
}

async fn a_panic_in_any_background_task_is_survived(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| {
        c.webhooks.worker = true;
        c.billing.plans.default_plan = "pro".into();
        c.webhooks.allow_http = true;
        c.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
    })
    .await
    else {
        return;
    };
    let t = s.owned_tenant().await;
    let tasks = s.running.tasks.clone();
    // Let every loop get going (the deletion resumer finishes at once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running: Vec<String> = tasks
        .running()
        .into_iter()
        .filter(|name| name != "http-server")
        .collect();
    for kind in [
        "analytics-writer-0",
        "analytics-retention",
        "webhook-worker",
        "live-refresh",
        "live-commits",
        "live-announcements",
        "audit-purge",
    ] {
        assert!(
            running.iter().any(|n| n == kind),
            "{kind} runs: {running:?}"
        );
    }
    for name in &running {
        assert!(tasks.inject_panic(name), "{name}");
    }
    // The first restart comes after 100 ms.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while running.iter().any(|n| tasks.restarts(n) == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every task was run again: {:?}",
            running
                .iter()
                .map(|n| (n, tasks.restarts(n)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tasks.running(), {
        let mut all = running.clone();
        all.push("http-server".into());
        all.sort();
        all
    });
    let metrics = s.metrics().await;
    for name in &running {
        assert_eq!(restarts(&metrics, name), 1, "{name}");
    }
    let ready = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // Each kind works again: the live hub follows new flushes...
    let mut stream = connect(&s, &t.sub, Credential::Header(&t.token), "")
        .await
        .expect("the stream opens");
    stream.ready().await;
    // ...of every writer (each tenant hashes to one; several tenants reach all).
    for _ in 0..4 {
        let other = s.owned_tenant().await;
        let res = other
            .call(&s, Method::POST, "/analytics/events")
            .json(&json!([{ "event_type": "after_panic" }]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::ACCEPTED,
            "a restarted writer stores"
        );
    }
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .json(&json!([{ "event_type": "after_panic" }, { "event_type": "after_panic" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let updates = stream.updates_for(Duration::from_secs(3)).await;
    assert_eq!(total(&updates, "after_panic"), 2, "{updates:?}");
    stream.close().await;

    // ...and the worker delivers.
    let receiver = Receiver::start().await;
    let res = t
        .call(&s, Method::POST, "/webhooks")
        .json(&json!({ "url": receiver.url("after"), "event_types": ["user.created"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = t
        .call(&s, Method::POST, "/users")
        .json(&json!({ "email": "after-panic@e2e.test" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let got = receiver.wait_for("after", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the restarted worker delivered");

    // The HTTP server must not restart: its failure fails readiness.
    assert!(tasks.inject_panic("http-server"));
    let failed = tokio::time::timeout(Duration::from_secs(2), s.running.failed())
        .await
        .expect("the process is told");
    assert_eq!(failed, "http-server");
    let ready = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    s.stop().await;
}

/// Shutdown under load: requests keep coming while the server stops. It
/// stops accepting first, then drains the writers, then closes the pool, so
/// every request that was answered had its `api_call` event stored (each
/// is buffered, fire-and-forget, as its answer leaves).
async fn shutdown_stops_accepting_then_drains_the_writers_then_closes(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let url = s.config.database_url();
    let load = {
        let request = t.call(&s, Method::GET, "/tenant");
        tokio::spawn(async move {
            let mut answered = 0u64;
            loop {
                match request.try_clone().unwrap().send().await {
                    Ok(res) if res.status() == StatusCode::OK => answered += 1,
                    Ok(res) => panic!("answered {} while stopping", res.status()),
                    // Stopped accepting.
                    Err(_) => return answered,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = s.running.db.clone();
    let _data = s.stop_keeping_data().await;
    assert!(running.is_closed(), "the pool is closed last");
    let answered = tokio::time::timeout(Duration::from_secs(10), load)
        .await
        .expect("the load ends once the server stops accepting")
        .unwrap();
    assert!(answered > 10, "{answered} requests answered");

    let db = tenantkit::Db::connect(&url).await.unwrap();
    let ctx = db.resolve_id(t.id).await.unwrap().unwrap();
    let mut tx = db.begin_snapshot(&ctx).await.unwrap();
    let (stored,): (i64,) = tx
        .fetch_one(tx.query(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND event_type = 'api_call' \
             AND name = 'GET /tenant'",
        ))
        .await
        .unwrap();
    assert_eq!(
        stored as u64, answered,
        "every answered request's event was stored before the pool closed"
    );
}
