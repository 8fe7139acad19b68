//! axum extractors for what the layers put into request extensions.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use http_body_util::BodyExt;
//! use tenantkit::{Db, NewTenant, TenantContext, audit::Actor, resolve::TenantLayer};
//! use tower::ServiceExt;
//!
//! async fn handler(tenant: TenantContext) -> String {
//!     tenant.tenant().subdomain.clone()
//! }
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let app = Router::new().route("/", get(handler)).route_layer(TenantLayer::new(db));
//!
//! let req = Request::get("/").header("x-tenant-id", "acme").body(Body::empty()).unwrap();
//! let body = app.oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "acme");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

use axum::extract::FromRequestParts;
use http::{StatusCode, request::Parts};

use crate::{TenantContext, auth::Principal, problem::Problem};

fn missing(what: &str, layer: &str) -> Problem {
    tracing::error!(
        "{what} missing from request extensions: is `{layer}` installed on this route?"
    );
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").with_detail(format!(
        "{what} unavailable: is `{layer}` installed on this route?"
    ))
}

impl<S: Send + Sync> FromRequestParts<S> for TenantContext {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TenantContext>()
            .cloned()
            .ok_or_else(|| missing("TenantContext", "TenantLayer"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| missing("Principal", "AuthLayer"))
    }
}
