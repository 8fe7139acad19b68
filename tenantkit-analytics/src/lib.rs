//! # tenantkit-analytics
//!
//! Usage analytics for the tenants of a tenantkit platform, being built in
//! steps (see the project's issue tracker). What is here now:
//!
//! - [`event`]: the event model and the ingestion contract's validation
//!   (types, limits, timestamps, batches of up to 1,000 as JSON or NDJSON,
//!   all or nothing with every bad event named).
//!
//! Still to come: the durable batched writer (group commit), partitioned
//! storage, always-fresh rollups, the summary and time-series queries, and
//! the routes of the reference server.

pub mod event;
