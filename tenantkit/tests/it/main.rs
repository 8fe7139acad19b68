//! tenantkit integration tests (one binary; see `common` for the harness).

mod common;

mod access;
mod audit;
mod auth_layer;
mod erase;
mod interleavings;
mod issuers;
mod lock_order;
mod postgres_rls;
mod rate_limit;
mod resolve_layer;
mod sso;
mod store;
