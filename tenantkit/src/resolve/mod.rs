//! Tenant resolution as a tower layer.
//!
//! [`TenantLayer`] finds the tenant a request is for and puts its
//! [`TenantContext`] into the request extensions (and the response extensions,
//! so outer layers such as metrics can see it). In order:
//!
//! 1. the subdomain of `Host` under the configured base domain
//!    (`acme.example.com` → `acme`);
//! 2. the `X-Tenant-Id` header, holding a tenant id or a subdomain;
//! 3. the default tenant, if one is configured, so that existing
//!    single-tenant clients keep working unchanged.
//!
//! | outcome | response |
//! |---|---|
//! | found and active | passes to the inner service |
//! | names no known tenant | `404` problem+json |
//! | tenant suspended | `403` problem+json |
//! | host and header name different tenants, a malformed header, or the header twice | `400` problem+json |
//! | names no tenant and no default is configured | `400` problem+json |
//!
//! Refusals are `Ok(response)`, so the layer drops into axum without
//! `HandleErrorLayer`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use http::{Request, Response};
//! use tenantkit::{Db, NewTenant, TenantContext, audit::Actor, resolve::TenantLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TenantLayer::new(db).with_base_domain("example.com")?)
//!     .service_fn(|req: Request<String>| async move {
//!         let tenant = req.extensions().get::<TenantContext>().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(tenant.tenant().subdomain.clone()))
//!     });
//!
//! let req = Request::get("/").header("host", "acme.example.com").body(String::new()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.body(), "acme");
//!
//! let req = Request::get("/").header("host", "nope.example.com").body(String::new()).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), 404);
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

mod layer;
mod service;

use std::future::Future;

pub use layer::TenantLayer;
pub use service::{TenantService, subdomain_of_host};

pub use crate::context::TenantRef;

use crate::{Db, Result, TenantContext, TenantId};

/// The default header naming a tenant.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Looks tenants up. Implemented by [`Db`]; wrap it to add caching.
pub trait TenantResolver: Clone + Send + Sync + 'static {
    /// The tenant with this id.
    fn by_id(&self, id: TenantId) -> impl Future<Output = Result<Option<TenantContext>>> + Send;
    /// The tenant with this subdomain.
    fn by_subdomain(
        &self,
        subdomain: &str,
    ) -> impl Future<Output = Result<Option<TenantContext>>> + Send;

    /// The tenant a [`TenantRef`] names.
    fn resolve(
        &self,
        tenant: &TenantRef,
    ) -> impl Future<Output = Result<Option<TenantContext>>> + Send {
        async move {
            match tenant {
                TenantRef::Id(id) => self.by_id(*id).await,
                TenantRef::Subdomain(s) => self.by_subdomain(s).await,
            }
        }
    }
}

/// Through the access cache: a tenant's status change is seen within its TTL
/// in every process (at once in the one that made it).
impl TenantResolver for Db {
    async fn by_id(&self, id: TenantId) -> Result<Option<TenantContext>> {
        self.resolve_cached(&TenantRef::Id(id)).await
    }

    async fn by_subdomain(&self, subdomain: &str) -> Result<Option<TenantContext>> {
        self.resolve_cached(&TenantRef::Subdomain(subdomain.to_ascii_lowercase()))
            .await
    }
}
