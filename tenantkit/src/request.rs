//! What layers read off a request: client IP and audit details.

use std::net::{IpAddr, SocketAddr};

use http::{Request, header};

use crate::audit::RequestMeta;

/// The header carrying the request id (set by e.g. tower-http's `SetRequestIdLayer`).
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The peer address: a `SocketAddr` in the extensions, or axum's
/// `ConnectInfo<SocketAddr>` with the `axum` feature.
pub(crate) fn client_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    if let Some(addr) = req.extensions().get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    None
}

/// The request id, client IP and user agent, for the audit trail.
pub(crate) fn request_meta<B>(req: &Request<B>) -> RequestMeta {
    let text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RequestMeta {
        request_id: text(REQUEST_ID),
        client_ip: client_ip(req).map(|ip| ip.to_string()),
        user_agent: text(header::USER_AGENT.as_str()),
    }
}
