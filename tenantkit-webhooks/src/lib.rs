//! # tenantkit-webhooks
//!
//! Will hold webhook endpoints, a durable outbox queue, a delivery worker with
//! retries and a dead-letter queue, Standard Webhooks signatures, and SSRF
//! defence, all tenant-scoped through `tenantkit::TenantTx` (see
//! `ARCHITECTURE.md`). Nothing is implemented yet.
