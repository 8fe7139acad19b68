//! tenantkit-webhooks integration tests (one binary; `common` is the harness).

mod common;

mod delivery;
mod direct;
mod endpoints;
mod isolation;
mod outbox;
mod publishing;
mod retention;
mod signature;
mod ssrf;
mod transport;
