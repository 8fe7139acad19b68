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
