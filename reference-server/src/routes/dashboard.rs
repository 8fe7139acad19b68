//! `GET /dashboard`: the tenant dashboard, served from assets embedded in
//! the binary (no CDN, no build step, works offline). The page holds no
//! data: it signs in with a token and reads everything through the public
//! API, so it can show nothing the API would not. See `docs/dashboard.md`.

use axum::{
    extract::Path,
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue, StatusCode, header};
use tenantkit::problem::Problem;

/// Scripts, styles and connections from this origin only; never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

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

fn serve(media_type: &'static str, body: &'static [u8]) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
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
pub async fn page() -> Response {
    serve("text/html; charset=utf-8", PAGE)
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
        Some((_, media_type, body)) => serve(media_type, body),
        None => Problem::new(StatusCode::NOT_FOUND, "Not found")
            .with_detail(format!("the dashboard has no asset `{name}`"))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
