//! Domain operations on what a tenant owns for access: its users and its
//! API keys.
//!
//! They are methods of [`TenantTx`](crate::TenantTx) written only with its
//! public, scoped API (the same one a crate adding its own tables uses):
//! statements from [`store::sql`](crate::store::sql), audited writes, the
//! tenant's write lock, and the two hooks [`TenantTx::users_changed`] and
//! [`TenantTx::set_actor`]. Nothing here can reach past the tenant binding:
//! the store lends nothing crate-wide (a test in `tests/architecture.rs`
//! keeps it so).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit::{Db, NewApiKey, NewTenant, NewUser, Role, Scope, audit::Actor};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! let acme = db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_id(acme.id).await?.unwrap();
//!
//! let mut tx = db.begin(&acme).await?;
//! tx.create_user(&NewUser { email: "ann@acme.test".into(), role: Role::Owner }).await?;
//! let created = tx.create_api_key(&NewApiKey { name: "ci".into(), scopes: vec![Scope::UsersRead] }).await?;
//! tx.commit().await?;
//!
//! let mut tx = db.begin(&acme).await?;
//! assert_eq!(tx.verify_api_key(&created.key).await?.map(|k| k.id), Some(created.api_key.id));
//! assert_eq!(tx.first_owner().await?.email, "ann@acme.test");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```
//!
//! [`TenantTx::users_changed`]: crate::TenantTx::users_changed
//! [`TenantTx::set_actor`]: crate::TenantTx::set_actor

mod api_keys;
mod sso;
mod users;

pub use api_keys::CreatedApiKey;
pub(crate) use api_keys::{accepts, api_key_use_is_due};
