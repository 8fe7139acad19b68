//! # tenantkit-server
//!
//! The reference server: every tenantkit crate composed into one multi-tenant
//! platform. `main.rs` is only the command line; everything it does is here so
//! that tests can start the same server on a real socket, or drive its
//! router without one ([`app::app`]).

mod admin;
pub mod app;
pub mod config;
pub mod deletion;
pub mod error;
pub mod export;
pub mod metrics;
pub mod openapi;
pub mod overload;
pub mod routes;
mod serve;
mod setup;
pub mod state;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

pub use admin::{
    Demo, bootstrap_demo, create_tenant, delete_tenant, find_tenant, issue_user_token,
    purge_audit_logs,
};
pub use serve::{Running, run_worker, shutdown_signal, start};
pub use setup::{is_sqlite, load_keys, migrate, open_runtime_db};
