//! Every error is problem+json, every input is strict: a walk over every
//! route of the router with a wrong method, an oversized body (with and
//! without `Content-Length`), unknown fields and a wrong content type.

use futures_util::{StreamExt, stream};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit::auth::TokenRole;
use tenantkit_e2e::{Backend, Server, problem};

use crate::on_both_backends;

on_both_backends!(
    the_walk_covers_every_route_of_the_openapi_document,
    every_route_answers_a_wrong_method_with_405_and_allow,
    oversized_bodies_are_413_with_or_without_content_length,
    unknown_fields_are_refused_everywhere_and_change_nothing,
    wrong_content_type_is_415,
    unknown_routes_and_duplicate_tenant_headers_are_problems,
    bodies_are_objects_with_each_key_once_and_no_nul,
    nul_in_a_query_parameter_is_refused_naming_it,
    events_with_nul_or_duplicate_keys_are_refused_not_retryable,
    every_body_limit_is_the_configured_one_to_the_byte,
    a_malformed_id_is_a_documented_404_on_every_route,
);

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    Public,
    PlatformAdmin,
    Tenant,
}

/// A route of the router: method, path (`{id}` is filled in), who calls it,
/// and a valid JSON body when it takes one.
struct Route {
    method: Method,
    path: &'static str,
    access: Access,
    body: Option<Value>,
}

fn route(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        body: None,
    }
}

impl Route {
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Every route the reference server has.
fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        route(Method::GET, "/healthz", Public),
        route(Method::GET, "/readyz", Public),
        route(Method::GET, "/openapi.json", Public),
        route(Method::GET, "/dashboard", Public),
        route(Method::GET, "/dashboard/assets/{name}", Public),
        route(Method::GET, "/dashboard/sign-in", Public),
        route(Method::POST, "/webhooks/stripe", Public),
        route(Method::GET, "/metrics", PlatformAdmin),
        route(Method::GET, "/tenants", PlatformAdmin),
        route(Method::POST, "/tenants", PlatformAdmin)
            .json(json!({ "name": "Strict", "subdomain": "strict-walk" })),
        route(Method::GET, "/tenants/{id}", PlatformAdmin),
        route(Method::PATCH, "/tenants/{id}", PlatformAdmin).json(json!({ "status": "active" })),
        route(Method::DELETE, "/tenants/{id}", PlatformAdmin),
        route(Method::POST, "/tenants/{id}/export", PlatformAdmin),
        route(Method::GET, "/tenants/{id}/deletion", PlatformAdmin),
        route(Method::GET, "/tenants/{id}/audit-logs", PlatformAdmin),
        route(Method::GET, "/tenants/{id}/sso", PlatformAdmin),
        route(Method::PUT, "/tenants/{id}/sso", PlatformAdmin)
            .json(json!({ "issuer": "https://login.walk.example/", "audience": "api" })),
        route(Method::DELETE, "/tenants/{id}/sso", PlatformAdmin),
        route(
            Method::POST,
            "/tenants/{id}/webhooks/messages",
            PlatformAdmin,
        )
        .json(json!({ "event_type": "user.created", "data": {} })),
        route(
            Method::POST,
            "/tenants/{id}/webhooks/messages/batch",
            PlatformAdmin,
        )
        .json(json!({ "messages": [{ "event_type": "user.created", "data": {} }] })),
        route(Method::GET, "/tenant", Tenant),
        route(Method::GET, "/tenant/sso", Tenant),
        route(Method::PUT, "/tenant/sso", Tenant)
            .json(json!({ "issuer": "https://login.walk.example/", "audience": "api" })),
        route(Method::DELETE, "/tenant/sso", Tenant),
        route(Method::GET, "/users", Tenant),
        route(Method::POST, "/users", Tenant).json(json!({ "email": "walk@strict.test" })),
        route(Method::GET, "/users/{id}", Tenant),
        route(Method::PATCH, "/users/{id}", Tenant).json(json!({ "role": "member" })),
        route(Method::DELETE, "/users/{id}", Tenant),
        route(Method::GET, "/api-keys", Tenant),
        route(Method::POST, "/api-keys", Tenant).json(json!({ "name": "walk" })),
        route(Method::DELETE, "/api-keys/{id}", Tenant),
        route(Method::GET, "/audit-logs", Tenant),
        route(Method::GET, "/audit-logs/export", Tenant),
        route(Method::GET, "/audit-logs/verify", Tenant),
        route(Method::GET, "/billing/subscription", Tenant),
        route(Method::POST, "/billing/checkout", Tenant).json(json!({ "plan": "pro" })),
        route(Method::POST, "/billing/portal", Tenant),
        route(Method::GET, "/webhooks", Tenant),
        route(Method::POST, "/webhooks", Tenant)
            .json(json!({ "url": "https://93.184.216.34/in", "event_types": ["*"] })),
        route(Method::GET, "/webhooks/event-types", Tenant),
        route(Method::POST, "/webhooks/messages", Tenant)
            .json(json!({ "event_type": "user.created", "data": {} })),
        route(Method::POST, "/webhooks/messages/batch", Tenant)
            .json(json!({ "messages": [{ "event_type": "user.created", "data": {} }] })),
        route(Method::GET, "/webhooks/dead-letters", Tenant),
        route(Method::GET, "/webhooks/{id}", Tenant),
        route(Method::PATCH, "/webhooks/{id}", Tenant).json(json!({ "description": "walk" })),
        route(Method::DELETE, "/webhooks/{id}", Tenant),
        route(Method::POST, "/webhooks/{id}/rotate-secret", Tenant),
        route(Method::POST, "/webhooks/{id}/test", Tenant),
        route(Method::GET, "/webhooks/{id}/deliveries", Tenant),
        route(
            Method::GET,
            "/webhooks/{id}/deliveries/{message_id}/attempts",
            Tenant,
        ),
        route(
            Method::POST,
            "/webhooks/{id}/deliveries/{message_id}/retry",
            Tenant,
        ),
        route(Method::POST, "/webhooks/{id}/recover", Tenant)
            .json(json!({ "since": "2026-11-27T00:00:00Z" })),
        route(Method::POST, "/analytics/events", Tenant).json(json!({ "event_type": "page_view" })),
        route(Method::GET, "/analytics/summary", Tenant),
        route(Method::GET, "/analytics/timeseries", Tenant),
        route(Method::GET, "/ws/analytics", Tenant),
    ]
}

macro_rules! server {
    ($backend:expr) => {
        // A plan with every feature: the walk is about input, not plans.
        match Server::start_with($backend, |c| {
            c.server.max_body_bytes = 2048;
            c.analytics.max_body_bytes = 2048;
            c.webhooks.max_publish_body_bytes = 2048;
            c.billing.plans.default_plan = "enterprise".into();
        })
        .await
        {
            Some(s) => s,
            None => return,
        }
    };
}

struct Walk {
    s: Server,
    tenant: tenantkit::TenantId,
    subdomain: String,
    user: String,
}

impl Walk {
    async fn new(s: Server) -> Self {
        let (tenant, subdomain) = s.create_tenant().await;
        let user = s.owner(tenant);
        Self {
            s,
            tenant,
            subdomain,
            user,
        }
    }

    /// The tenant's users, as `GET /users` lists them.
    async fn users(&self) -> Value {
        self.request(&route(Method::GET, "/users", Access::Tenant), Method::GET)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `route` with `method`, authenticated as it needs; `{id}` is the
    /// tenant's owner (or the tenant, on platform routes).
    fn request(&self, route: &Route, method: Method) -> reqwest::RequestBuilder {
        let path = match route.access {
            Access::PlatformAdmin => route.path.replace("{id}", &self.tenant.to_string()),
            _ => route
                .path
                .replace("{id}", &self.user)
                .replace("{message_id}", &self.user),
        };
        let req = self.s.http.request(method, self.s.url(&path));
        match route.access {
            Access::Public => req,
            Access::PlatformAdmin => req.bearer_auth(self.s.admin_token()),
            Access::Tenant => req
                .header("x-tenant-id", &self.subdomain)
                .bearer_auth(self.s.token(self.tenant, TokenRole::Owner)),
        }
    }
}

/// The walk's table is the router: the served OpenAPI document (generated
/// from the same declarations as the router) lists exactly these routes.
async fn the_walk_covers_every_route_of_the_openapi_document(backend: Backend) {
    let s = server!(backend);
    let res = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "served without authentication"
    );
    let spec: Value = res.json().await.unwrap();
    let mut described: Vec<String> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    let mut walked: Vec<String> = routes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    described.sort();
    walked.sort();
    assert_eq!(walked, described);
    s.stop().await;
}

async fn every_route_answers_a_wrong_method_with_405_and_allow(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let routes = routes();
    for r in &routes {
        let allowed: Vec<&Method> = routes
            .iter()
            .filter(|o| o.path == r.path)
            .map(|o| &o.method)
            .collect();
        for wrong in [Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
            if allowed.contains(&&wrong) {
                continue;
            }
            let what = format!("{wrong} {}", r.path);
            let res = w.request(r, wrong.clone()).send().await.unwrap();
            let allow = res
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("{what}: no Allow header"))
                .to_str()
                .unwrap()
                .to_owned();
            for m in &allowed {
                assert!(allow.contains(m.as_str()), "{what}: Allow {allow}");
            }
            let p = problem(res, StatusCode::METHOD_NOT_ALLOWED, &what).await;
            assert_eq!(
                p["detail"],
                format!("this endpoint accepts only {allow}"),
                "{what}"
            );
        }
    }
    w.s.stop().await;
}

/// 8 KiB in 1 KiB chunks, 20 ms apart, like a client on a slow link: the
/// server answers `413` while the body is still coming, and closes a
/// connection it has read everything from (a fast client's unread bytes would
/// turn that close into a reset, and the client might never read the answer).
fn slow_body() -> reqwest::Body {
    reqwest::Body::wrap_stream(stream::iter(0..8).then(|_| async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok::<_, std::io::Error>("x".repeat(1024))
    }))
}

async fn oversized_bodies_are_413_with_or_without_content_length(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    // With Content-Length: refused from the header, every route that takes a body.
    for r in routes()
        .iter()
        .filter(|r| r.method == Method::POST || r.method == Method::PATCH)
    {
        let what = format!("{} {} with Content-Length", r.method, r.path);
        let res = w
            .request(r, r.method.clone())
            .header("content-type", "application/json")
            .header("content-length", 8 * 1024)
            .body(slow_body())
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::PAYLOAD_TOO_LARGE, &what).await;
    }
    // Without Content-Length (chunked): refused while reading, every route that reads a body.
    for r in routes()
        .iter()
        .filter(|r| r.body.is_some() || r.path == "/webhooks/stripe")
    {
        let what = format!("{} {} chunked", r.method, r.path);
        let res = w
            .request(r, r.method.clone())
            .header("content-type", "application/json")
            .body(slow_body())
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::PAYLOAD_TOO_LARGE, &what).await;
    }
    w.s.stop().await;
}

async fn unknown_fields_are_refused_everywhere_and_change_nothing(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let users_before = w.users().await;
    for r in routes().iter().filter(|r| r.body.is_some()) {
        let mut body = r.body.clone().unwrap();
        body["surprise"] = json!(true);
        let what = format!("{} {} with an unknown field", r.method, r.path);
        let res = w
            .request(r, r.method.clone())
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &what).await;
        assert!(
            p["detail"].as_str().unwrap().contains("surprise"),
            "{what}: {p}"
        );
    }
    assert_eq!(users_before, w.users().await, "nothing changed");
    w.s.stop().await;
}

async fn wrong_content_type_is_415(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    for r in routes().iter().filter(|r| r.body.is_some()) {
        let what = format!("{} {} as text/plain", r.method, r.path);
        let res = w
            .request(r, r.method.clone())
            .header("content-type", "text/plain")
            .body(r.body.clone().unwrap().to_string())
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, &what).await;
    }
    w.s.stop().await;
}

async fn unknown_routes_and_duplicate_tenant_headers_are_problems(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    // Query strings are strict too: a misspelt parameter is not ignored.
    for path in [
        "/users?limt=5",
        "/api-keys?limit=5&page=2",
        "/audit-logs?colour=red",
        "/analytics/summary?colour=red",
    ] {
        let res = w
            .request(&route(Method::GET, "/users", Access::Tenant), Method::GET)
            .build()
            .map(|mut req| {
                *req.url_mut() = reqwest::Url::parse(&w.s.url(path)).unwrap();
                req
            })
            .unwrap();
        let res = w.s.http.execute(res).await.unwrap();
        let p = problem(res, StatusCode::BAD_REQUEST, path).await;
        assert!(
            p["detail"].as_str().unwrap().contains("unknown field"),
            "{path}: {p}"
        );
    }
    for path in ["/nope", "/users/extra/segments", "/tenants/x/y/z"] {
        let res = w.s.http.get(w.s.url(path)).send().await.unwrap();
        problem(res, StatusCode::NOT_FOUND, path).await;
    }
    let res =
        w.s.http
            .get(w.s.url("/users"))
            .header("x-tenant-id", &w.subdomain)
            .header("x-tenant-id", &w.subdomain)
            .bearer_auth(w.s.token(w.tenant, TokenRole::Owner))
            .send()
            .await
            .unwrap();
    let p = problem(res, StatusCode::BAD_REQUEST, "two X-Tenant-Id headers").await;
    assert!(p["detail"].as_str().unwrap().contains("once"), "{p}");
    w.s.stop().await;
}

/// A path id that is not a UUID names nothing: `404` problem+json on every
/// route that takes one, platform routes included (some answered `400`, one
/// `404`), and the OpenAPI document says so for each of them.
async fn a_malformed_id_is_a_documented_404_on_every_route(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let spec: Value =
        w.s.http
            .get(w.s.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let mut checked = 0;
    for r in routes().iter().filter(|r| r.path.contains("{id}")) {
        let what = format!("{} {}", r.method, r.path);
        let documented = &spec["paths"][r.path][r.method.as_str().to_lowercase()]["responses"];
        assert!(documented.get("404").is_some(), "{what}: 404 undocumented");
        let mut req = w.request(r, r.method.clone()).build().unwrap();
        let path = r
            .path
            .replace("{id}", "not-a-uuid")
            .replace("{message_id}", "not-a-uuid-either");
        *req.url_mut() = reqwest::Url::parse(&w.s.url(&path)).unwrap();
        if let Some(body) = &r.body {
            req.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            *req.body_mut() = Some(body.to_string().into());
        }
        let res = w.s.http.execute(req).await.unwrap();
        problem(res, StatusCode::NOT_FOUND, &what).await;
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} routes take an id");
    w.s.stop().await;
}

/// Sends `body` as JSON text, exactly as given.
fn raw_json(req: reqwest::RequestBuilder, body: impl Into<String>) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(body.into())
}

/// The JSON shape rule, the same on every route that takes an object: an
/// array (which serde would map onto the fields by position: `["x@y.z",
/// "admin"]` would create an admin), a key given twice, or a NUL anywhere is
/// `422` naming where, and changes nothing.
async fn bodies_are_objects_with_each_key_once_and_no_nul(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let users_before = w.users().await;
    let admin = route(Method::POST, "/users", Access::Tenant);
    let res = raw_json(
        w.request(&admin, Method::POST),
        r#"["x@strict.test","admin"]"#,
    )
    .send()
    .await
    .unwrap();
    let p = problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an array as a new user",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("JSON object"), "{p}");
    for r in routes()
        .iter()
        .filter(|r| r.body.is_some() && r.path != "/analytics/events")
    {
        let body = r.body.clone().unwrap();
        let fields = body.as_object().unwrap();
        let (key, value) = fields.iter().next().unwrap();

        let what = format!("{} {} as an array", r.method, r.path);
        let array = Value::Array(fields.values().cloned().collect()).to_string();
        let res = raw_json(w.request(r, r.method.clone()), array)
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &what).await;
        assert!(
            p["detail"].as_str().unwrap().contains("JSON object"),
            "{what}: {p}"
        );

        let what = format!("{} {} with `{key}` twice", r.method, r.path);
        let text = body.to_string();
        let twice = format!("{{{}:{value},{}", json!(key), &text[1..]);
        let res = raw_json(w.request(r, r.method.clone()), twice)
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &what).await;
        assert_eq!(p["field"], json!(key), "{what}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains("twice"),
            "{what}: {p}"
        );

        // A batch's text is deeper down (below).
        let Some((key, text)) = fields.iter().find_map(|(k, v)| Some((k, v.as_str()?))) else {
            continue;
        };
        let what = format!("{} {} with a NUL in `{key}`", r.method, r.path);
        let mut nul = body.clone();
        nul[key] = json!(format!("{text}\u{0}"));
        let res = w
            .request(r, r.method.clone())
            .json(&nul)
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &what).await;
        assert_eq!(p["field"], json!(key), "{what}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("NUL"), "{what}: {p}");
    }
    // Deeper down too.
    let hooks = route(Method::POST, "/webhooks", Access::Tenant);
    let res = w
        .request(&hooks, Method::POST)
        .json(&json!({ "url": "https://93.184.216.34/in", "event_types": ["*", "user.\u{0}"] }))
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "a NUL in a list").await;
    assert_eq!(p["field"], "event_types[1]", "{p}");
    let batch = route(Method::POST, "/webhooks/messages/batch", Access::Tenant);
    let res = w
        .request(&batch, Method::POST)
        .json(&json!({ "messages": [{ "event_type": "user.\u{0}", "data": {} }] }))
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "a NUL in a batch").await;
    assert_eq!(p["field"], "messages[0].event_type", "{p}");
    assert_eq!(users_before, w.users().await, "nothing changed");
    w.s.stop().await;
}

/// A NUL in any query parameter is `422` naming it, on both backends (it
/// was `500` on PostgreSQL and `200` on SQLite).
async fn nul_in_a_query_parameter_is_refused_naming_it(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let tenant = w.tenant.to_string();
    let hook = w.user.clone();
    let cases = [
        (
            Access::Tenant,
            "/audit-logs?action=a%00b".to_owned(),
            "action",
        ),
        (
            Access::Tenant,
            "/audit-logs?actor_id=a%00b".to_owned(),
            "actor_id",
        ),
        (
            Access::Tenant,
            "/audit-logs?resource_type=a%00".to_owned(),
            "resource_type",
        ),
        (
            Access::Tenant,
            "/audit-logs?resource_id=%00".to_owned(),
            "resource_id",
        ),
        (
            Access::PlatformAdmin,
            format!("/tenants/{tenant}/audit-logs?action=a%00b"),
            "action",
        ),
        (
            Access::Tenant,
            format!("/webhooks/{hook}/deliveries?event_type=a%00"),
            "event_type",
        ),
        (
            Access::Tenant,
            "/analytics/timeseries?metric=feature:a%00".to_owned(),
            "metric",
        ),
        (Access::Tenant, "/users?after=%00".to_owned(), "after"),
    ];
    for (access, path, parameter) in cases {
        let template = route(Method::GET, "/users", access);
        let req = w
            .request(&template, Method::GET)
            .build()
            .map(|mut req| {
                *req.url_mut() = reqwest::Url::parse(&w.s.url(&path)).unwrap();
                req
            })
            .unwrap();
        let res = w.s.http.execute(req).await.unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &path).await;
        assert_eq!(p["parameter"], parameter, "{path}: {p}");
    }
    w.s.stop().await;
}

/// An event with a NUL (in metadata, at any depth) or a key given twice is
/// refused by index with `422`: a retry cannot succeed, so never `503` (it
/// was `503 Retry-After: 1` on PostgreSQL and `202` on SQLite).
async fn events_with_nul_or_duplicate_keys_are_refused_not_retryable(backend: Backend) {
    let w = Walk::new(server!(backend)).await;
    let events = route(Method::POST, "/analytics/events", Access::Tenant);
    for (body, path) in [
        (
            json!([{ "event_type": "ok" }, { "event_type": "x", "metadata": { "k": "a\u{0}" } }])
                .to_string(),
            "metadata.k",
        ),
        (
            r#"[{"event_type": "ok"}, {"event_type": "x", "metadata": {"a": {"k": 1, "k": 2}}}]"#
                .to_owned(),
            "metadata.a.k",
        ),
    ] {
        let res = raw_json(w.request(&events, Method::POST), body.clone())
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, &body).await;
        assert_eq!(p["invalid"][0]["index"], 1, "{p}");
        assert!(
            p["invalid"][0]["reason"].as_str().unwrap().contains(path),
            "{p}"
        );
    }
    let res = w
        .request(&events, Method::POST)
        .json(&json!([{ "event_type": "ok", "metadata": { "k": "fine" } }]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    w.s.stop().await;
}

/// `body` padded with white space (still the same JSON) to `len` bytes.
fn padded(body: &str, len: usize) -> String {
    assert!(body.len() <= len, "{} > {len}", body.len());
    format!("{body}{}", " ".repeat(len - body.len()))
}

/// The documented defaults are the effective limits, to the byte: 64 KiB
/// for a request body, 10 MiB for `POST /analytics/events` (room for the
/// documented 1,000 events of 8 KiB metadata; a 2 MiB framework default
/// used to apply underneath), 4 MiB for publishing webhook messages.
async fn every_body_limit_is_the_configured_one_to_the_byte(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| {
        c.billing.plans.default_plan = "enterprise".into();
    })
    .await
    else {
        return;
    };
    assert_eq!(
        s.config.server.max_body_bytes,
        64 * 1024,
        "the documented default"
    );
    assert_eq!(
        s.config.analytics.max_body_bytes,
        10 * 1024 * 1024,
        "the documented default"
    );
    let t = s.owned_tenant().await;
    let auth = [
        ("x-tenant-id", t.sub.clone()),
        ("authorization", format!("Bearer {}", t.token)),
    ];
    let limit = s.config.server.max_body_bytes;
    let body = padded(
        &json!({ "email": "at-limit@strict.test" }).to_string(),
        limit,
    );
    let res = raw_json(t.call(&s, Method::POST, "/users"), body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "POST /users of {limit} bytes"
    );
    assert_eq!(declared(&s, "/users", &auth, limit + 1).await, 413);
    // The Stripe webhook shares the server's limit (400 there: not signed).
    let res = raw_json(s.http.post(s.url("/webhooks/stripe")), padded("{}", limit))
        .header("stripe-signature", "t=1,v1=00")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "POST /webhooks/stripe of {limit} bytes"
    );
    let signed = [("stripe-signature", "t=1,v1=00".to_owned())];
    assert_eq!(
        declared(&s, "/webhooks/stripe", &signed, limit + 1).await,
        413
    );
    // The largest documented batch: 1,000 events, each with 8 KiB of metadata.
    let limit = s.config.analytics.max_body_bytes;
    let pad = "x".repeat(8 * 1024 - r#"{"pad":""}"#.len());
    let batch = Value::Array(
        (0..1000)
            .map(|_| json!({ "event_type": "big", "metadata": { "pad": pad } }))
            .collect(),
    )
    .to_string();
    let res = raw_json(
        t.call(&s, Method::POST, "/analytics/events"),
        padded(&batch, limit),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::ACCEPTED,
        "POST /analytics/events of {limit} bytes"
    );
    assert_eq!(
        declared(&s, "/analytics/events", &auth, limit + 1).await,
        413
    );
    // Publishing webhook messages: 4 MiB (a 1 MiB message, or a batch).
    let limit = s.config.webhooks.max_publish_body_bytes;
    assert_eq!(limit, 4 * 1024 * 1024, "the documented default");
    for path in ["/webhooks/messages", "/webhooks/messages/batch"] {
        let data = tenantkit_webhooks::testing::user_data(1);
        let message = json!({ "event_type": "user.created", "data": data });
        let body = if path.ends_with("batch") {
            json!({ "messages": [message] })
        } else {
            message
        };
        let res = raw_json(
            t.call(&s, Method::POST, path),
            padded(&body.to_string(), limit),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::ACCEPTED,
            "POST {path} of {limit} bytes"
        );
        assert_eq!(
            declared(&s, path, &auth, limit + 1).await,
            413,
            "POST {path}"
        );
    }
    s.stop().await;
}

/// The status of `POST path` declaring a JSON body of `len` bytes, read
/// before any of the body is sent: a body past the limit is refused from its
/// `Content-Length` (sending megabytes the server will not read would race
/// its answer against a reset).
async fn declared(s: &Server, path: &str, headers: &[(&str, String)], len: usize) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n",
        s.running.addr
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).await.unwrap();
    status
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("POST {path}: no status line in {status:?}"))
}
