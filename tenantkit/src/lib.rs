//! # tenantkit
//!
//! Multi-tenancy for Rust services, as tower layers and a tenant-scoped store.
//!
//! - [`resolve::TenantLayer`] finds each request's tenant (subdomain,
//!   `X-Tenant-Id`, or a default for single-tenant clients);
//! - [`auth::AuthLayer`] authenticates JWTs and API keys and checks they
//!   belong to that tenant;
//! - [`rate_limit::RateLimitLayer`] limits rates per tenant or per client IP;
//! - [`Db`] stores tenants, users and API keys in PostgreSQL (isolated by
//!   row-level security) or embedded SQLite, and every tenant-owned query runs
//!   through a [`TenantTx`], the one place that scopes queries to a tenant;
//! - [`problem::Problem`] turns every error into RFC 9457 problem+json.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit::{Db, NewTenant, NewUser, PageRequest, Role, audit::Actor};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! db.platform().create_tenant(&NewTenant { name: "Globex".into(), subdomain: "globex".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.unwrap();
//! let globex = db.resolve_subdomain("globex").await?.unwrap();
//!
//! let mut tx = db.begin(&acme).await?;
//! let ann = tx.create_user(&NewUser { email: "ann@acme.test".into(), role: Role::Owner }).await?;
//! tx.commit().await?;
//!
//! // Globex cannot see Acme's user: another tenant's row is "not found".
//! let mut tx = db.begin(&globex).await?;
//! assert!(tx.list_users(PageRequest::first(50)).await?.is_empty());
//! assert!(matches!(tx.get_user(ann.id).await, Err(tenantkit::Error::NotFound(_))));
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

pub mod accounts;
pub mod api_key;
pub mod audit;
pub mod auth;
mod context;
mod error;
#[cfg(feature = "axum")]
mod extract;
pub mod guard;
mod id;
mod model;
pub mod problem;
pub mod rate_limit;
mod request;
pub mod resolve;
pub mod retry;
mod secret;
pub mod ssrf;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;

pub use accounts::CreatedApiKey;
pub use context::TenantContext;
pub use error::{BackendError, Error, Result};
pub use id::{ApiKeyId, AuditEntryId, TenantId, UserId};
pub use model::{
    ApiKey, NewApiKey, NewTenant, NewUser, PageRequest, Role, Scope, SsoSettings, Tenant,
    TenantSso, TenantStatus, User, UserPatch,
};
pub use secret::Secret;
pub use store::{Backend, Db, TenantTx};
