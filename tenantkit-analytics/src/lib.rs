//! # tenantkit-analytics
//!
//! Usage analytics for the tenants of a tenantkit platform, being built in
//! steps (see the project's issue tracker). What is here now:
//!
//! - [`event`]: the event model and the ingestion contract's validation
//!   (types, limits, timestamps, batches of up to 1,000 as JSON or NDJSON,
//!   all or nothing with every bad event named).
//! - [`storage`]: the `events` table and its migrations; on PostgreSQL a
//!   partition per UTC day split four ways by tenant, every level isolated,
//!   created ahead and dropped for retention by narrow owner functions.
//!
//! Still to come: the durable batched writer (group commit), always-fresh
//! rollups, the summary and time-series queries, and
//! the routes of the reference server.

pub mod event;
pub mod storage;
