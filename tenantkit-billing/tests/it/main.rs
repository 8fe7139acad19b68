//! tenantkit-billing integration tests (one binary).

mod common;

mod webhooks;
