//! # tenantkit-analytics
//!
//! Will hold batched, durable event ingestion, DAU/MAU and time-series
//! queries on rollups, and a real-time WebSocket stream, all tenant-scoped
//! through `tenantkit::TenantTx` (see `ARCHITECTURE.md`). Nothing is
//! implemented yet.
