//! Analytics over HTTP, on both backends: ingestion as one event, a JSON
//! array and NDJSON (202 once stored), all-or-nothing refusals (422 naming
//! each bad event, 413, 415), backpressure (503 with Retry-After),
//! credentials and scopes, API calls counted by the layer (and in
//! `/metrics`), the queries' parameters, and tenants apart (moved from the
//! socket tests, steps and assertions as they were).

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::Backend;

use crate::{
    client::{OwnedTenant, Reply, Server, problem},
    on_both_backends,
};

on_both_backends!(
    events_in_every_framing_are_acknowledged_and_counted,
    an_invalid_batch_is_refused_whole,
    oversized_and_unknown_bodies_are_refused,
    a_full_buffer_answers_503_with_retry_after,
    members_and_scoped_keys_ingest_and_read,
    the_layer_counts_every_tenant_request,
    query_parameters_are_checked_by_name,
    tenants_never_see_each_others_events,
);

type Tenant = OwnedTenant;

async fn tenant(s: &Server) -> Tenant {
    s.owned_tenant().await
}

/// What these tests ask of a tenant.
trait TenantCalls {
    async fn post_events(&self, s: &Server, body: &Value) -> Reply;
    async fn get(&self, s: &Server, path: &str) -> Value;
    async fn own_events(&self, s: &Server) -> i64;
}

impl TenantCalls for Tenant {
    async fn post_events(&self, s: &Server, body: &Value) -> Reply {
        self.call(s, Method::POST, "/analytics/events")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, s: &Server, path: &str) -> Value {
        let res = self.call(s, Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.json().await.unwrap()
    }

    /// Every event type but `api_call` (which the layer adds per request).
    async fn own_events(&self, s: &Server) -> i64 {
        let summary = self.get(s, "/analytics/summary").await;
        summary["events"].as_i64().unwrap() - summary["api_calls"].as_i64().unwrap()
    }
}

async fn events_in_every_framing_are_acknowledged_and_counted(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = tenant(&s).await;
    let res = t
        .post_events(
            &s,
            &json!({ "event_type": "page_view", "user_id": "u1", "name": "/home" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "accepted": 1 }));
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({ "event_type": "feature_used", "name": format!("f{}", i % 3), "user_id": format!("u{}", i % 50), "metadata": { "i": i } }))
        .collect();
    let res = t.post_events(&s, &json!(batch)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let ndjson =
        "{\"event_type\":\"signup\"}\n\n{\"event_type\":\"page_view\",\"user_id\":\"u77\"}\n";
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 2);

    // Acknowledged means stored: no waiting before reading.
    let summary = t.get(&s, "/analytics/summary").await;
    assert_eq!(summary["page_views"], 2, "{summary}");
    assert_eq!(summary["dau"], summary["mau"]);
    // u0..u49, u1 again, u77, and the owner whose requests were counted.
    assert_eq!(summary["dau"], 52, "{summary}");
    let top = summary["top_features"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0], json!({ "name": "f0", "count": 334 }));
    assert_eq!(t.own_events(&s).await, 1003);
    let series = t
        .get(&s, "/analytics/timeseries?metric=feature:f1&interval=day")
        .await;
    let points = series.as_array().unwrap();
    assert_eq!(points.len(), 31, "the 30 days up to now touch 31 days");
    let total: i64 = points.iter().map(|p| p["value"].as_i64().unwrap()).sum();
    assert_eq!(total, 333);
}

async fn an_invalid_batch_is_refused_whole(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = tenant(&s).await;
    let batch = json!([
        { "event_type": "page_view" },
        { "event_type": "Not Valid" },
        { "event_type": "page_view", "user_id": "x".repeat(129) },
        { "event_type": "page_view", "timestamp": "2001-01-01T00:00:00Z" },
        { "event_type": "page_view", "unknown": 1 },
    ]);
    let res = t.post_events(&s, &batch).await;
    let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "an invalid batch").await;
    let indexes: Vec<i64> = body["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 2, 3, 4], "{body}");
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({ "event_type": "page_view" }))
        .collect();
    let res = t.post_events(&s, &json!(too_many)).await;
    let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "1,001 events").await;
    assert!(body["detail"].as_str().unwrap().contains("1000"), "{body}");
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .header("content-type", "application/x-ndjson")
        .body("{\"event_type\":\"ok\"}\nnot json\n")
        .send()
        .await
        .unwrap();
    let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "bad NDJSON line").await;
    assert_eq!(body["invalid"][0]["index"], 1);
    assert_eq!(
        t.own_events(&s).await,
        0,
        "nothing of a refused batch is stored"
    );
}

async fn oversized_and_unknown_bodies_are_refused(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| c.analytics.max_body_bytes = 200_000).await
    else {
        return;
    };
    let t = tenant(&s).await;
    let big: Vec<Value> = (0..100)
        .map(|_| json!({ "event_type": "page_view", "metadata": { "pad": "x".repeat(4000) } }))
        .collect();
    let res = t.post_events(&s, &json!(big)).await;
    problem(
        res,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body over analytics.max_body_bytes",
    )
    .await;
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .header("content-type", "text/csv")
        .body("event_type\npage_view\n")
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "CSV").await;
    // The larger analytics limit does not widen the other routes'.
    let res = t
        .call(&s, Method::POST, "/users")
        .json(&json!({ "email": format!("{}@big.test", "x".repeat(100_000)), "role": "member" }))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::PAYLOAD_TOO_LARGE, "a 100 kB user").await;
    assert_eq!(t.own_events(&s).await, 0);
}

async fn a_full_buffer_answers_503_with_retry_after(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| {
        c.analytics.buffer_events = 5;
        c.analytics.flush_interval_ms = 3000;
    })
    .await
    else {
        return;
    };
    let t = tenant(&s).await;
    // Each request's `api_call` event waits up to 3 s for company: five
    // requests fill the buffer.
    for _ in 0..5 {
        t.get(&s, "/tenant").await;
    }
    let res = t
        .post_events(&s, &json!([{ "event_type": "page_view" }]))
        .await;
    assert_eq!(res.headers()["retry-after"], "1");
    problem(res, StatusCode::SERVICE_UNAVAILABLE, "a full buffer").await;
    // Once they are flushed there is room again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let res = t
        .post_events(&s, &json!([{ "event_type": "page_view" }]))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        t.own_events(&s).await,
        1,
        "the refused event was not stored"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("tenantkit_analytics_events_refused_total 1"),
        "{metrics}"
    );
}

async fn members_and_scoped_keys_ingest_and_read(backend: Backend) {
    let Some(s) =
        Server::start_with(backend, |c| c.billing.plans.default_plan = "pro".into()).await
    else {
        return;
    };
    let t = tenant(&s).await;
    let member = s.cli_token(t.id, tenantkit::Role::Member).await;
    let res = s
        .request(Method::POST, "/analytics/events", &t.sub, &member)
        .json(&json!({ "event_type": "page_view" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED, "a member sends events");
    let res = s
        .request(Method::GET, "/analytics/summary", &t.sub, &member)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a member reads the summary");
    let none = t.api_key(&s, json!(["users:read"])).await;
    let write = t.api_key(&s, json!(["analytics:write"])).await;
    let read = t.api_key(&s, json!(["analytics:read"])).await;
    let send = |key: String| {
        s.request(Method::POST, "/analytics/events", &t.sub, key)
            .json(&json!({ "event_type": "page_view" }))
            .send()
    };
    let read_summary = |key: String| {
        s.request(Method::GET, "/analytics/summary", &t.sub, key)
            .send()
    };
    problem(
        send(none.clone()).await.unwrap(),
        StatusCode::FORBIDDEN,
        "an unscoped key sends",
    )
    .await;
    problem(
        read_summary(none).await.unwrap(),
        StatusCode::FORBIDDEN,
        "an unscoped key reads",
    )
    .await;
    assert_eq!(
        send(write.clone()).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    problem(
        read_summary(write).await.unwrap(),
        StatusCode::FORBIDDEN,
        "analytics:write reads",
    )
    .await;
    problem(
        send(read.clone()).await.unwrap(),
        StatusCode::FORBIDDEN,
        "analytics:read sends",
    )
    .await;
    assert_eq!(read_summary(read).await.unwrap().status(), StatusCode::OK);
    let res = s
        .request(Method::GET, "/analytics/summary", &t.sub, "not-a-token")
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "a bad token").await;
    assert_eq!(t.own_events(&s).await, 2);
}

async fn the_layer_counts_every_tenant_request(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = tenant(&s).await;
    for _ in 0..3 {
        t.get(&s, "/users").await;
    }
    let res = t
        .call(&s, Method::GET, &format!("/users/{}", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Recorded without waiting on the database: give the writer a flush.
    let mut calls = 0;
    for _ in 0..50 {
        let series = t
            .get(&s, "/analytics/timeseries?metric=api_calls&interval=hour&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")
            .await;
        assert_eq!(series.as_array().unwrap().len(), 24);
        let summary = t.get(&s, "/analytics/summary").await;
        calls = summary["api_calls"].as_i64().unwrap();
        if calls >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(calls >= 4, "the four calls were counted: {calls}");
    let mut tx = s.app.state.db.begin(&s.context(t.id).await).await.unwrap();
    let q = tx.query(
        "SELECT name FROM events WHERE tenant_id = $1 AND event_type = 'api_call' AND name LIKE 'GET /users%' ORDER BY name",
    );
    let names: Vec<(String,)> = tx.fetch_all(q).await.unwrap();
    let names: Vec<&str> = names.iter().map(|(n,)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["GET /users", "GET /users", "GET /users", "GET /users/{id}"],
        "route templates, never raw paths"
    );
    drop(tx);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("tenantkit_analytics_events_dropped_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tenantkit_analytics_events_stored_total"),
        "{metrics}"
    );
}

async fn query_parameters_are_checked_by_name(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let t = tenant(&s).await;
    for (query, parameter) in [
        ("/analytics/timeseries?interval=day", "metric"),
        ("/analytics/timeseries?metric=clicks", "metric"),
        (
            "/analytics/timeseries?metric=events&interval=minute",
            "interval",
        ),
        ("/analytics/timeseries?metric=events&tz=Nowhere/City", "tz"),
        ("/analytics/timeseries?metric=events&from=last-week", "from"),
        (
            "/analytics/timeseries?metric=events&interval=hour&from=2026-01-01&to=2026-03-01",
            "from",
        ),
        ("/analytics/summary?to=2026-02-30", "to"),
        ("/analytics/summary?from=2027-01-01&to=2026-01-01", "from"),
        // Far outside any real range: refused before any date arithmetic
        // (these used to panic the handler and drop the connection).
        (
            "/analytics/summary?from=-262143-01-01&to=-262143-01-02",
            "to",
        ),
        (
            "/analytics/summary?from=-262143-01-01&to=2026-01-02",
            "from",
        ),
        ("/analytics/summary?to=-262143-01-15", "to"),
        ("/analytics/summary?to=%2B262142-12-31", "to"),
        ("/analytics/summary?from=1969-12-31", "from"),
        ("/analytics/summary?to=10000-01-01T00:00:00Z", "to"),
        (
            "/analytics/timeseries?metric=events&interval=day&from=-262143-01-01",
            "from",
        ),
        (
            "/analytics/timeseries?metric=dau&interval=day&to=%2B262143-12-31",
            "to",
        ),
    ] {
        let res = t.call(&s, Method::GET, query).send().await.unwrap();
        let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, query).await;
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    // The bounds themselves are accepted.
    for query in [
        "/analytics/summary?from=1970-01-01&to=1970-01-31",
        "/analytics/summary?from=9999-12-01&to=9999-12-31",
    ] {
        let res = t.call(&s, Method::GET, query).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{query}");
    }
    for query in [
        "/audit-logs?from=-262143-01-01T00:00:00Z",
        "/audit-logs/export?to=%2B200000-01-01T00:00:00Z",
    ] {
        let res = t.call(&s, Method::GET, query).send().await.unwrap();
        problem(res, StatusCode::UNPROCESSABLE_ENTITY, query).await;
    }
    let res = t
        .call(&s, Method::GET, "/analytics/summary?colour=red")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let series = t
        .get(&s, "/analytics/timeseries?metric=events&interval=day&from=2026-03-28&to=2026-03-30&tz=Europe/Paris")
        .await;
    let points = series.as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0]["t"], "2026-03-28T00:00:00+01:00");
    assert_eq!(
        points[2]["t"], "2026-03-30T00:00:00+02:00",
        "after the clock change"
    );
}

async fn tenants_never_see_each_others_events(backend: Backend) {
    let Some(s) = Server::start(backend).await else {
        return;
    };
    let (a, b) = (tenant(&s).await, tenant(&s).await);
    let batch: Vec<Value> = (0..300)
        .map(|i| json!({ "event_type": "feature_used", "name": "secret-feature", "user_id": format!("b{i}") }))
        .collect();
    let (one, batch) = (
        json!([{ "event_type": "page_view", "user_id": "a1" }]),
        json!(batch),
    );
    let (ra, rb) = tokio::join!(a.post_events(&s, &one), b.post_events(&s, &batch));
    assert_eq!(
        (ra.status(), rb.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    let summary = a.get(&s, "/analytics/summary").await;
    assert_eq!(summary["top_features"], json!([]), "{summary}");
    assert_eq!(a.own_events(&s).await, 1);
    // a1, and A's owner once the layer's event of A's request is flushed.
    let dau = summary["dau"].as_i64().unwrap();
    assert!((1..=2).contains(&dau), "{summary}");
    let series = a
        .get(
            &s,
            "/analytics/timeseries?metric=feature:secret-feature&interval=day",
        )
        .await;
    assert!(series.as_array().unwrap().iter().all(|p| p["value"] == 0));
    assert_eq!(b.own_events(&s).await, 300);
    // A's token naming B's tenant is refused before any query.
    let res = s
        .request(Method::GET, "/analytics/summary", &b.sub, &a.token)
        .send()
        .await
        .unwrap();
    assert!(matches!(
        res.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ));
}
