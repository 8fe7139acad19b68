//! # tenantkit-analytics
//!
//! Usage analytics for the tenants of a tenantkit platform:
//!
//! - [`event`]: the event model and the ingestion contract's validation
//!   (types, limits, timestamps, batches of up to 1,000 as JSON or NDJSON,
//!   all or nothing with every bad event named).
//! - [`ingest`]: [`Analytics`], the bounded buffer and its writer tasks (sharded by tenant)
//!   (group commit: a request is acknowledged once the flush holding its
//!   events has committed), and [`AnalyticsLayer`] ([`layer`]), which counts
//!   every tenant request as an `api_call` event without waiting.
//! - [`storage`]: the `events` table; on PostgreSQL a partition per UTC day
//!   split four ways by tenant, every level isolated, created ahead and
//!   dropped for retention by narrow owner functions.
//! - [`rollup`]: the rollups, updated in the transaction that stores the
//!   events, and their rebuild from raw events.
//! - [`query`]: the summary and time-series queries, which read only rollups.
//! - [`retention`]: old days of events and rollups removed.
//! - [`live`]: [`Live`], each watched tenant's totals second by second, for
//!   the live stream, woken by flushes of every process.
//!
//! An event is acknowledged once the flush holding it has committed, its
//! rollups with it, so a summary read afterwards counts it:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use chrono::Utc;
//! use tenantkit::{Db, NewTenant, audit::Actor};
//! use tenantkit_analytics::{
//!     Analytics, IngestConfig, event::NewEvent,
//!     query::{self, SummaryParams, SummaryQuery},
//! };
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! tenantkit_analytics::storage::migrate(&db).await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.unwrap();
//!
//! let (analytics, writers) = Analytics::start(db.clone(), IngestConfig::default());
//! for user in ["ada", "grace"] {
//!     let event = NewEvent {
//!         event_type: "feature_used".into(),
//!         user_id: Some(user.into()),
//!         name: Some("export".into()),
//!         ..NewEvent::default()
//!     };
//!     analytics.record(&acme, event).await.unwrap();
//! }
//!
//! let yesterday = Utc::now() - chrono::Duration::days(1);
//! let params = SummaryParams { from: Some(yesterday.to_rfc3339()), ..Default::default() };
//! let q = SummaryQuery::parse(&params, Utc::now()).unwrap();
//! let summary = query::summary(&db, &acme, &q).await?;
//! assert_eq!((summary.events, summary.dau), (2, 2));
//! assert_eq!(summary.top_features[0].name, "export");
//!
//! analytics.shutdown().await;
//! writers.await.unwrap();
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

pub mod event;
pub mod ingest;
pub mod layer;
pub mod live;
pub mod query;
pub mod retention;
pub mod rollup;
pub mod sql;
pub mod storage;

pub use ingest::{Analytics, AnalyticsWriter, IngestConfig, IngestError, IngestStats};
pub use layer::AnalyticsLayer;
pub use live::{Live, LiveConfig};
