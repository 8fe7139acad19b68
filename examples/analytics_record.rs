//! Recording usage analytics from your own code, and counting API calls.
//!
//! An embedding application starts the analytics writer on its database,
//! records the events it cares about from Rust (`Analytics::record` returns
//! once the event is durably stored), wraps its tenant routes in
//! `AnalyticsLayer` so every request becomes an `api_call` event by route
//! template, and reads the always-fresh summary and time series.
//!
//! ```text
//! cargo run -p tenantkit-examples --bin analytics-record
//! ```
//!
//! It uses the embedded SQLite in a temporary directory; with `--self-test`
//! it checks the figures and exits.

use std::sync::Arc;

use chrono::Utc;
use tenantkit::{Db, NewTenant, audit::Actor};
use tenantkit_analytics::{
    Analytics, AnalyticsLayer, IngestConfig,
    event::NewEvent,
    query::{self, SeriesParams, SeriesQuery, SummaryParams, SummaryQuery},
};
use tower::{Layer, Service, ServiceExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let self_test = std::env::args().any(|a| a == "--self-test");

    // 1. The store: tenantkit's tables and the analytics tables.
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite:{}", dir.path().join("app.db").display())).await?;
    db.migrate().await?;
    tenantkit_analytics::storage::migrate(&db).await?;
    db.platform()
        .create_tenant(
            &NewTenant {
                name: "Acme".into(),
                subdomain: "acme".into(),
            },
            &Actor::System,
        )
        .await?;
    let acme = db.resolve_subdomain("acme").await?.expect("just created");

    // 2. The writer: one per process, shared by every request.
    let (analytics, writer) = Analytics::start(db.clone(), IngestConfig::default());

    // 3. Events from Rust: durable once `record` returns.
    for (user, feature) in [("ann", "export"), ("bob", "export"), ("ann", "import")] {
        analytics
            .record(
                &acme,
                NewEvent {
                    event_type: "feature_used".into(),
                    user_id: Some(user.into()),
                    name: Some(feature.into()),
                    ..NewEvent::default()
                },
            )
            .await?;
    }
    println!("recorded 3 feature_used events");

    // 4. API calls, counted by the layer around any tower service (here a
    //    stand-in handler; with axum, read the template from `MatchedPath`).
    let handler = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let route_of = Arc::new(|_: &http::Extensions| Some("/orders/{id}".to_owned()));
    let mut app = AnalyticsLayer::new(analytics.clone(), route_of).layer(handler);
    for order in 1..=5 {
        let mut req = http::Request::get(format!("/orders/{order}")).body(())?;
        req.extensions_mut().insert(acme.clone()); // what TenantLayer does
        app.ready().await?.call(req).await?;
    }
    println!("served 5 requests through AnalyticsLayer");

    // 5. Shut down: whatever is buffered (the layer's events) is stored.
    analytics.shutdown().await;
    writer.await?;

    // 6. Read the rollups.
    let now = Utc::now();
    let summary = query::summary(
        &db,
        &acme,
        &SummaryQuery::parse(&SummaryParams::default(), now)?,
    )
    .await?;
    println!(
        "summary: {} events, {} API calls, DAU {}, MAU {}, top feature {:?}",
        summary.events,
        summary.api_calls,
        summary.dau,
        summary.mau,
        summary.top_features.first().map(|f| (&f.name, f.count))
    );
    let params = SeriesParams {
        metric: Some("api_calls".into()),
        interval: Some("hour".into()),
        from: Some((now - chrono::Duration::hours(2)).to_rfc3339()),
        to: None,
        tz: None,
    };
    let series = query::timeseries(&db, &acme, &SeriesQuery::parse(&params, now)?).await?;
    for point in &series {
        println!("  {} api_calls {}", point.t, point.value);
    }

    if self_test {
        assert_eq!((summary.events, summary.api_calls, summary.dau), (8, 5, 2));
        assert_eq!(summary.top_features[0].name, "export");
        assert_eq!(summary.top_features[0].count, 2);
        assert_eq!(series.iter().map(|p| p.value).sum::<i64>(), 5);
        println!("self-test ok");
    }
    Ok(())
}
