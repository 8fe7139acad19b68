//! axum extractors for what the layers put into request extensions.
//!
//! ```
//! use tenantkit::{TenantContext, auth::Principal};
//!
//! async fn handler(tenant: TenantContext, principal: Principal) -> String {
//!     format!("{} as {:?}", tenant.tenant().subdomain, principal.subject)
//! }
//! # let _ = axum::routing::get(handler);
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
