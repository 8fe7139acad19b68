#![recursion_limit = "256"]
//! tenantkit-billing integration tests (one binary).

mod common;

mod plans;
mod stripe_api;
mod webhooks;
