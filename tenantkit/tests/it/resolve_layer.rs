//! TenantLayer: every case runs through `tower::ServiceBuilder` directly and
//! inside a plain hyper server on a real socket.

use std::convert::Infallible;
use tenantkit::audit::Actor;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tenantkit::{
    Db, NewTenant, TenantContext, TenantStatus,
    resolve::{TenantLayer, TenantRef},
};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::sqlite;

struct Fixture {
    db: Db,
    acme: TenantContext,
    globex: TenantContext,
}

async fn fixture() -> Fixture {
    let db = sqlite().await;
    for (name, sub) in [
        ("Acme", "acme"),
        ("Globex", "globex"),
        ("Initech", "initech"),
    ] {
        db.platform()
            .create_tenant(
                &NewTenant {
                    name: name.into(),
                    subdomain: sub.into(),
                },
                &Actor::System,
            )
            .await
            .unwrap();
    }
    let initech = db.resolve_subdomain("initech").await.unwrap().unwrap();
    db.platform()
        .set_tenant_status(initech.id(), TenantStatus::Suspended, &Actor::System)
        .await
        .unwrap();
    let acme = db.resolve_subdomain("acme").await.unwrap().unwrap();
    let globex = db.resolve_subdomain("globex").await.unwrap().unwrap();
    Fixture { db, acme, globex }
}

/// The handler answers with the resolved tenant's subdomain.
async fn echo_tenant<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = req
        .extensions()
        .get::<TenantContext>()
        .map(|t| t.tenant().subdomain.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(sub)))
}

struct Case {
    host: &'static str,
    headers: Vec<String>,
    default_tenant: Option<&'static str>,
    status: StatusCode,
    tenant: &'static str,
}

fn case(host: &'static str, status: StatusCode, tenant: &'static str) -> Case {
    Case {
        host,
        headers: Vec::new(),
        default_tenant: None,
        status,
        tenant,
    }
}

impl Case {
    fn header(mut self, value: impl Into<String>) -> Self {
        self.headers.push(value.into());
        self
    }
    fn default_tenant(mut self, tenant: &'static str) -> Self {
        self.default_tenant = Some(tenant);
        self
    }
}

fn layer(f: &Fixture, c: &Case) -> TenantLayer<Db> {
    let mut layer = TenantLayer::new(f.db.clone())
        .with_base_domain("example.com")
        .unwrap();
    if let Some(d) = c.default_tenant {
        layer = layer.with_default_tenant(d.parse::<TenantRef>().unwrap());
    }
    layer
}

fn request(c: &Case) -> Request<Full<Bytes>> {
    let mut req = Request::get("/").header("host", c.host);
    for h in &c.headers {
        req = req.header("x-tenant-id", h.as_str());
    }
    req.body(Full::default()).unwrap()
}

async fn check(c: &Case, status: StatusCode, content_type: Option<String>, body: Bytes) {
    assert_eq!(
        status, c.status,
        "host {} headers {:?}: {body:?}",
        c.host, c.headers
    );
    if status.is_success() {
        assert_eq!(body, c.tenant.as_bytes());
    } else {
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
}

async fn via_service_builder(f: Fixture, c: Case) {
    let svc = ServiceBuilder::new()
        .layer(layer(&f, &c))
        .service_fn(echo_tenant);
    let res = svc.oneshot(request(&c)).await.unwrap();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    check(
        &c,
        status,
        ct,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
    .await;
}

async fn via_hyper_server(f: Fixture, c: Case) {
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer(&f, &c))
        .service_fn(echo_tenant::<hyper::body::Incoming>);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .await
            .unwrap();
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(request(&c)).await.unwrap();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    server.await.unwrap();
    check(&c, status, ct, body).await;
}

macro_rules! cases {
    ($($name:ident: |$f:ident| $case:expr;)+) => {
        mod service_builder {
            use super::*;
            $(#[tokio::test]
            async fn $name() {
                let $f = fixture().await;
                let c = $case;
                via_service_builder($f, c).await;
            })+
        }
        mod hyper_server {
            use super::*;
            $(#[tokio::test]
            async fn $name() {
                let $f = fixture().await;
                let c = $case;
                via_hyper_server($f, c).await;
            })+
        }
    };
}

cases! {
    subdomain_resolves: |f| case("acme.example.com", StatusCode::OK, "acme");
    subdomain_is_case_insensitive: |f| case("ACME.Example.COM", StatusCode::OK, "acme");
    host_port_is_ignored: |f| case("globex.example.com:8443", StatusCode::OK, "globex");
    trailing_dot_host_resolves: |f| case("acme.example.com.", StatusCode::OK, "acme");
    unknown_subdomain_is_404: |f| case("nope.example.com", StatusCode::NOT_FOUND, "");
    nested_subdomain_is_404: |f| case("www.acme.example.com", StatusCode::NOT_FOUND, "");
    apex_without_header_is_400: |f| case("example.com", StatusCode::BAD_REQUEST, "");
    lookalike_domain_is_not_a_subdomain: |f| case("acme-example.com", StatusCode::BAD_REQUEST, "");
    header_by_subdomain_resolves: |f| case("example.com", StatusCode::OK, "globex").header("globex");
    header_by_id_resolves: |f| case("localhost", StatusCode::OK, "acme").header(f.acme.id().to_string());
    header_unknown_id_is_404: |f| case("localhost", StatusCode::NOT_FOUND, "").header(tenantkit::TenantId::new().to_string());
    header_unknown_subdomain_is_404: |f| case("localhost", StatusCode::NOT_FOUND, "").header("nobody");
    malformed_header_is_400: |f| case("localhost", StatusCode::BAD_REQUEST, "").header("not a tenant!");
    header_sent_twice_is_400: |f| case("localhost", StatusCode::BAD_REQUEST, "").header("acme").header("globex");
    header_sent_twice_alike_is_400_too: |f| case("localhost", StatusCode::BAD_REQUEST, "").header("acme").header("acme");
    host_and_header_agreeing_resolve: |f| case("acme.example.com", StatusCode::OK, "acme").header(f.acme.id().to_string());
    host_and_header_disagreeing_is_400: |f| case("acme.example.com", StatusCode::BAD_REQUEST, "").header(f.globex.id().to_string());
    default_tenant_serves_unnamed_requests: |f| case("localhost", StatusCode::OK, "acme").default_tenant("acme");
    header_overrides_default_tenant: |f| case("localhost", StatusCode::OK, "globex").header("globex").default_tenant("acme");
    subdomain_overrides_default_tenant: |f| case("globex.example.com", StatusCode::OK, "globex").default_tenant("acme");
    unknown_default_tenant_is_404: |f| case("localhost", StatusCode::NOT_FOUND, "").default_tenant("gone");
    suspended_tenant_is_403: |f| case("initech.example.com", StatusCode::FORBIDDEN, "");
}

#[tokio::test]
async fn resolved_tenant_is_also_in_response_extensions() {
    let f = fixture().await;
    let svc = ServiceBuilder::new()
        .layer(TenantLayer::new(f.db.clone()))
        .service_fn(echo_tenant);
    let req = Request::get("/")
        .header("x-tenant-id", "acme")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(
        res.extensions().get::<TenantContext>().map(|t| t.id()),
        Some(f.acme.id())
    );
}

#[test]
fn invalid_base_domains_are_refused_at_build_time() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(sqlite());
    for bad in [
        "",
        "https://example.com",
        "example.com:80",
        "exa mple.com",
        ".com.",
    ] {
        assert!(
            TenantLayer::new(db.clone()).with_base_domain(bad).is_err(),
            "{bad:?}"
        );
    }
    assert!(
        TenantLayer::new(db)
            .with_base_domain("Example.COM.")
            .is_ok()
    );
}
