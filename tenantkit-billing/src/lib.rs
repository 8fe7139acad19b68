//! # tenantkit-billing
//!
//! Will hold Stripe subscriptions (async-stripe), plans loaded from
//! configuration, and `PlanLayer`, a tower layer that refuses requests a
//! tenant's plan does not allow with `402 Payment Required`.
//!
//! Its tables (`subscriptions`, processed Stripe event ids) are tenant-owned
//! and plug into `tenantkit` as described in `ARCHITECTURE.md`: `tenant_id`
//! leads every key, row-level security on PostgreSQL, and every query through
//! `tenantkit::TenantTx`. Nothing is implemented yet.
