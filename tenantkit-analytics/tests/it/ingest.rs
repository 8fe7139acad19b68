//! The writer: acknowledged means committed (with the rollups), group
//! commit across requests and tenants, a bounded buffer that refuses rather
//! than grows, a shutdown that flushes, one failing request not failing the
//! others, and the layer that counts API calls without waiting.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tenantkit::{Db, testing};
use tenantkit_analytics::{
    AnalyticsLayer, IngestConfig, IngestError,
    event::NewEvent,
    query::{self, SummaryParams, SummaryQuery},
};
use tower::{Layer, Service, ServiceExt};

use crate::common::{analytics, analytics_with, event, slow_analytics, stored};

tenantkit::backend_tests!(crate::common, multi_thread;
    an_acknowledged_batch_is_stored_and_counted,
    concurrent_requests_of_many_tenants_share_flushes,
    a_full_buffer_refuses_and_recovers,
    try_record_drops_and_counts_when_full,
    shutdown_flushes_everything_buffered,
    after_shutdown_events_are_refused,
    one_failing_request_does_not_fail_the_others,
    record_validates_one_event,
    the_layer_counts_api_calls_by_route_template,
);

async fn summary(db: &Db, t: &tenantkit::TenantContext) -> query::Summary {
    // Ten minutes ahead, but never into tomorrow: `dau` is the day `now`
    // falls on, and the events were sent today (this failed from 23:50 UTC).
    let now = Utc::now();
    let end_of_today = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - chrono::Duration::seconds(1);
    let q = SummaryQuery::parse(
        &SummaryParams::default(),
        (now + chrono::Duration::minutes(10)).min(end_of_today),
    )
    .unwrap();
    query::summary(db, t, &q).await.unwrap()
}

async fn an_acknowledged_batch_is_stored_and_counted(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    let now = Utc::now();
    let events = vec![
        event("page_view", Some("/home"), Some("u1"), now),
        event("feature_used", Some("export"), Some("u2"), now),
        event("api_call", Some("GET /users"), None, now),
    ];
    a.ingest(&t, events).await.unwrap();
    // No waiting: acknowledged means committed, rollups included.
    assert_eq!(stored(&db, &t).await, 3);
    let s = summary(&db, &t).await;
    assert_eq!(
        (s.events, s.page_views, s.api_calls, s.dau, s.mau),
        (3, 1, 1, 2, 2)
    );
    assert_eq!(a.stats().stored, 3);
}

async fn concurrent_requests_of_many_tenants_share_flushes(db: Db) {
    let tenants = [
        testing::tenant(&db).await,
        testing::tenant(&db).await,
        testing::tenant(&db).await,
    ];
    let a = analytics(&db);
    let mut requests = Vec::new();
    for i in 0..60 {
        let (a, t) = (a.clone(), tenants[i % 3].clone());
        requests.push(tokio::spawn(async move {
            let events = (0..10)
                .map(|j| event("page_view", None, Some(&format!("u{j}")), Utc::now()))
                .collect();
            a.ingest(&t, events).await
        }));
    }
    for r in requests {
        r.await.unwrap().unwrap();
    }
    for t in &tenants {
        assert_eq!(stored(&db, t).await, 200);
        let s = summary(&db, t).await;
        assert_eq!((s.page_views, s.dau), (200, 10));
    }
    let stats = a.stats();
    assert_eq!(stats.stored, 600);
    assert!(
        stats.flushes < 60,
        "group commit: {} flushes for 60 requests",
        stats.flushes
    );
}

async fn a_full_buffer_refuses_and_recovers(db: Db) {
    let t = testing::tenant(&db).await;
    let a = slow_analytics(&db, 10);
    // Fire-and-forget events wait (60 s here) for company: they fill the buffer.
    for _ in 0..8 {
        assert!(a.try_record(&t, event("page_view", None, None, Utc::now())));
    }
    let more = (0..3)
        .map(|_| event("page_view", None, None, Utc::now()))
        .collect();
    assert!(matches!(a.ingest(&t, more).await, Err(IngestError::Full)));
    assert_eq!(a.stats().refused, 3);
    // Room for two: an acknowledged request fits and is flushed at once,
    // taking the waiting events with it.
    let two = (0..2)
        .map(|_| event("page_view", None, None, Utc::now()))
        .collect();
    a.ingest(&t, two).await.unwrap();
    assert_eq!(
        stored(&db, &t).await,
        10,
        "the refused events were never stored"
    );
    a.shutdown().await;
}

async fn try_record_drops_and_counts_when_full(db: Db) {
    let t = testing::tenant(&db).await;
    let a = slow_analytics(&db, 5);
    let accepted = (0..8)
        .filter(|_| a.try_record(&t, event("api_call", Some("GET /x"), None, Utc::now())))
        .count();
    assert_eq!(accepted, 5);
    assert_eq!(a.stats().dropped, 3);
    a.shutdown().await;
    assert_eq!(stored(&db, &t).await, 5);
}

async fn shutdown_flushes_everything_buffered(db: Db) {
    let t = testing::tenant(&db).await;
    let a = slow_analytics(&db, 10_000);
    for _ in 0..1000 {
        assert!(a.try_record(&t, event("page_view", None, Some("u"), Utc::now())));
    }
    assert_eq!(stored(&db, &t).await, 0, "nothing flushed yet");
    a.shutdown().await;
    assert_eq!(stored(&db, &t).await, 1000);
    assert_eq!(summary(&db, &t).await.page_views, 1000);
}

async fn after_shutdown_events_are_refused(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    a.shutdown().await;
    let refused = a
        .ingest(&t, vec![event("page_view", None, None, Utc::now())])
        .await;
    assert!(matches!(refused, Err(IngestError::Stopped)));
    assert_eq!(stored(&db, &t).await, 0);
}

async fn one_failing_request_does_not_fail_the_others(db: Db) {
    let (good, bad) = (testing::tenant(&db).await, testing::tenant(&db).await);
    let a = analytics_with(
        &db,
        IngestConfig {
            flush_interval: Duration::from_millis(300),
            ..IngestConfig::default()
        },
    );
    // An event that skipped validation breaks a database CHECK.
    let mut broken = event("page_view", None, None, Utc::now());
    broken.event_type = "x".repeat(65);
    let (first, second) = tokio::join!(
        a.ingest(&good, vec![event("page_view", None, Some("u"), Utc::now())]),
        a.ingest(&bad, vec![broken]),
    );
    first.unwrap();
    // Input the database refuses: a retry cannot succeed, so not `503`.
    assert!(matches!(second, Err(IngestError::Invalid(_))), "{second:?}");
    let problem = tenantkit::problem::Problem::from(&second.unwrap_err());
    assert_eq!(problem.status, 422);
    assert_eq!(stored(&db, &good).await, 1);
    assert_eq!(stored(&db, &bad).await, 0);
    assert_eq!(a.stats().failed, 1);
    assert_eq!(summary(&db, &good).await.page_views, 1);
}

async fn record_validates_one_event(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    let bad = NewEvent {
        event_type: "Not Valid".into(),
        ..NewEvent::default()
    };
    assert!(matches!(
        a.record(&t, bad).await,
        Err(IngestError::Invalid(_))
    ));
    let good = NewEvent {
        event_type: "feature_used".into(),
        name: Some("export".into()),
        user_id: Some("u1".into()),
        ..NewEvent::default()
    };
    a.record(&t, good).await.unwrap();
    // Built without validation, a NUL reaches the store, which refuses it
    // the same way on both backends.
    let mut nul = event("page_view", None, None, Utc::now());
    nul.metadata.insert("k".into(), "a\u{0}b".into());
    let refused = a.ingest(&t, vec![nul]).await;
    assert!(
        matches!(&refused, Err(IngestError::Invalid(m)) if m.contains("NUL")),
        "{refused:?}"
    );
    let s = summary(&db, &t).await;
    assert_eq!(s.top_features[0].name, "export");
}

async fn the_layer_counts_api_calls_by_route_template(db: Db) {
    let t = testing::tenant(&db).await;
    let a = analytics(&db);
    let layer = AnalyticsLayer::new(a.clone(), Arc::new(|_| Some("/users/{id}".to_owned())));
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::builder().status(404).body(()).unwrap())
    });
    let mut svc = layer.layer(inner);
    for _ in 0..3 {
        let mut req = http::Request::get("/users/42").body(()).unwrap();
        req.extensions_mut().insert(t.clone());
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 404);
    }
    // A request without a tenant is not counted.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::get("/health").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    a.shutdown().await;
    assert_eq!(summary(&db, &t).await.api_calls, 3);
    let mut tx = db.begin(&t).await.unwrap();
    let q = tx.query("SELECT name, metadata FROM events WHERE tenant_id = $1");
    let rows: Vec<(String, sqlx::types::Json<serde_json::Value>)> = tx.fetch_all(q).await.unwrap();
    assert_eq!(rows.len(), 3);
    for (name, metadata) in rows {
        assert_eq!(name, "GET /users/{id}");
        assert_eq!(metadata.0["route"], "/users/{id}");
        assert_eq!(metadata.0["status"], 404);
        assert!(metadata.0["latency_ms"].as_f64().unwrap() >= 0.0);
    }
}

/// A writer that dies mid-flush (its future dropped wherever it waits, as a
/// panic unwinds it) gives the buffer room of its batch back and tells the
/// batch's callers; run again, it takes up its channel where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_dies_mid_flush_gives_its_room_back_and_runs_again() {
    use sqlx::Connection;
    use tenantkit_analytics::{Analytics, storage};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let db = Db::connect_with(&url, 4).await.unwrap();
    db.migrate().await.unwrap();
    storage::migrate(&db).await.unwrap();
    let t = testing::tenant(&db).await;
    let config = IngestConfig {
        buffer_events: 10,
        writers: 1,
        ..IngestConfig::default()
    };
    let (a, writers) = Analytics::new(db.clone(), config);
    let writer = Arc::new(writers.into_iter().next().unwrap());
    let start = |writer: &Arc<tenantkit_analytics::AnalyticsWriter>| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.run().await })
    };
    let ten = || {
        (0..10)
            .map(|_| event("page_view", None, None, Utc::now()))
            .collect()
    };

    let run = start(&writer);
    // Another connection holds the write lock: the flush waits on it.
    let mut lock = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let caller = {
        let (a, t) = (a.clone(), t.clone());
        tokio::spawn(async move { a.ingest(&t, ten()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let one = vec![event("page_view", None, None, Utc::now())];
    assert!(
        matches!(a.ingest(&t, one).await, Err(IngestError::Full)),
        "the flush holds the whole buffer"
    );
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    assert!(
        matches!(caller.await.unwrap(), Err(IngestError::Stopped)),
        "its caller is told"
    );
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();

    // The room is back, and the writer, run again, stores what comes.
    let again = start(&writer);
    a.ingest(&t, ten())
        .await
        .expect("the whole buffer is free again");
    assert_eq!(stored(&db, &t).await, 10);
    a.shutdown().await;
    again.await.unwrap();
}
