//! `GET /dashboard`: the tenant dashboard, served from assets embedded in
//! the binary (no CDN, no build step, works offline). The page holds no
//! data: it signs in with a token and reads everything through the public
//! API, so it can show nothing the API would not. See `docs/dashboard.md`.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use tenantkit::problem::Problem;

use crate::state::AppState;

/// Scripts, styles and connections from this origin only (and the identity
/// provider's, for its sign-in); never framed.
fn content_security_policy(provider: Option<&str>) -> String {
    let connect = match provider {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// How the dashboard at this address signs in: with the tenant's own
/// identity provider when the address is a tenant's
/// (`<subdomain>.<server.base_domain>`) and it registered one with a public
/// client; else with the first configured issuer with a `client_id`.
async fn sign_in_for(state: &AppState, headers: &HeaderMap) -> Option<SignIn> {
    if let Some(own) = tenant_sign_in(state, headers).await {
        return Some(own);
    }
    let issuer = state
        .config
        .auth
        .issuers
        .iter()
        .find(|issuer| issuer.client_id.is_some())?;
    Some(SignIn {
        issuer: issuer.issuer.clone(),
        client_id: issuer.client_id.clone().unwrap_or_default(),
        audience: issuer.audience.first().cloned().unwrap_or_default(),
        scope: SCOPE.into(),
    })
}

const SCOPE: &str = "openid email offline_access";

/// The sign-in of the tenant the `Host` names, if it registered its own
/// provider with a public client.
async fn tenant_sign_in(state: &AppState, headers: &HeaderMap) -> Option<SignIn> {
    let base = state.config.server.base_domain.as_deref()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let subdomain = tenantkit::resolve::subdomain_of_host(host, base)?;
    let found = async {
        let Some(tenant) = state
            .db
            .resolve_cached(&tenantkit::resolve::TenantRef::Subdomain(subdomain))
            .await?
        else {
            return Ok(None);
        };
        state.db.tenant_sso(&tenant).await
    };
    let sso = match found.await {
        Ok(sso) => sso?,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the tenant's single sign-on; offering the platform's");
            return None;
        }
    };
    Some(SignIn {
        issuer: sso.settings.issuer.clone()?,
        client_id: sso.settings.client_id.clone()?,
        audience: sso.settings.audience.clone()?,
        scope: SCOPE.into(),
    })
}

/// The origin (`scheme://host[:port]`) of `url` (an issuer configuration
/// has checked it is an http(s) URL).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!host.is_empty() && host.chars().all(plain)).then(|| format!("{scheme}://{host}"))
}

/// The assets under `/dashboard/assets/`: name, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "uplot.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uplot.min.js"),
    ),
    (
        "uplot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uplot.min.css"),
    ),
    (
        "LICENSE-uplot",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/LICENSE-uplot"),
    ),
];

const PAGE: &[u8] = include_bytes!("../../assets/dashboard/index.html");

fn serve(media_type: &'static str, body: &'static [u8], csp: &str) -> Response {
    let csp = HeaderValue::from_str(csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

/// `GET /dashboard`: the page.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses((status = 200, description = "The dashboard page (HTML); it signs in with a token and reads only the public API", content_type = "text/html")))]
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let provider = sign_in_for(&state, &headers)
        .await
        .and_then(|sign_in| origin(&sign_in.issuer));
    serve(
        "text/html; charset=utf-8",
        PAGE,
        &content_security_policy(provider.as_deref()),
    )
}

/// How the dashboard signs in with the identity provider: Authorization
/// Code + PKCE, in the browser, with a public client (no secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignIn {
    /// The provider's issuer; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The public client registered with the provider for the dashboard.
    pub client_id: String,
    /// The API's audience, asked for as `resource` (RFC 8707) and `audience`.
    pub audience: String,
    /// The scopes asked for.
    pub scope: String,
}

/// `GET /dashboard/sign-in`: the identity provider the dashboard offers: at
/// a tenant's address, the tenant's own (if it registered one with a public
/// client), else the platform's.
#[utoipa::path(get, path = "/dashboard/sign-in", tag = "dashboard",
    responses(
        (status = 200, description = "The provider and public client the dashboard signs in with", body = SignIn),
        (status = 404, description = "No identity provider is configured for the dashboard (sign in with a token)", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match sign_in_for(&state, &headers).await {
        Some(sign_in) => Json(sign_in).into_response(),
        None => Problem::new(StatusCode::NOT_FOUND, "Not found")
            .with_detail("no identity provider is configured for the dashboard's sign-in")
            .into_response(),
    }
}

/// `GET /dashboard/assets/{name}`: its scripts, styles and uPlot's licence.
#[utoipa::path(get, path = "/dashboard/assets/{name}", tag = "dashboard",
    params(("name" = String, Path, description = "`dashboard.js`, `dashboard.css`, `uplot.min.js`, `uplot.min.css` or `LICENSE-uplot`")),
    responses(
        (status = 200, description = "The asset"),
        (status = 404, description = "No such asset", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, media_type, body)) => serve(media_type, body, &content_security_policy(None)),
        None => Problem::new(StatusCode::NOT_FOUND, "Not found")
            .with_detail(format!("the dashboard has no asset `{name}`"))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_origin_is_the_only_other_connection_allowed() {
        assert_eq!(
            origin("https://login.example.com/tenant/v2.0").as_deref(),
            Some("https://login.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:4000").as_deref(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(origin("https://a b;c/"), None);
        assert!(
            content_security_policy(Some("https://login.example.com"))
                .contains("connect-src 'self' https://login.example.com;")
        );
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }

    #[test]
    fn every_asset_the_page_links_is_served() {
        let page = std::str::from_utf8(PAGE).unwrap();
        for link in page.split("/dashboard/assets/").skip(1) {
            let name = link.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "the page links {name}, which is not embedded"
            );
        }
    }
}
