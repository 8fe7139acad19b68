//! tenantkit's layers in front of a plain hyper server: no axum, no router,
//! one `service_fn`.
//!
//! `TenantLayer` resolves the tenant (here from `X-Tenant-Id`), `AuthLayer`
//! checks the bearer token against it, and the handler finds both in the
//! request extensions. Refusals (unknown tenant, bad token, another tenant's
//! token) are problem+json responses made by the layers themselves.
//!
//! ```text
//! cargo run -p tenantkit-examples --bin plain-hyper
//! ```
//! then run the `curl` lines it prints (`--self-test` runs them itself).

#[path = "support.rs"]
mod support;

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tenantkit::{
    Db, NewTenant, NewUser, Role, TenantContext,
    audit::Actor,
    auth::{AuthLayer, JwtKeys, Principal, TokenRole},
    resolve::TenantLayer,
};
use tower::{ServiceBuilder, service_fn};

/// The application: a plain async function of a request.
async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Both are there: the layers refused every request they could not resolve.
    let tenant = req
        .extensions()
        .get::<TenantContext>()
        .expect("TenantLayer");
    let principal = req.extensions().get::<Principal>().expect("AuthLayer");
    let text = format!(
        "hello {:?} of tenant `{}`\n",
        principal.subject,
        tenant.tenant().subdomain
    );
    Ok(Response::new(Full::from(text)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = Db::connect("sqlite::memory:").await?;
    db.migrate().await?;
    let mut tokens = Vec::new();
    let keys = JwtKeys::hs256(b"example-secret-example-secret-example!")?;
    for sub in ["acme", "globex"] {
        let (tenant, owner) = db
            .platform()
            .create_tenant_with_owner(
                &NewTenant {
                    name: sub.into(),
                    subdomain: sub.into(),
                },
                &NewUser {
                    email: format!("owner@{sub}.example"),
                    role: Role::Owner,
                },
                &Actor::System,
            )
            .await?;
        tokens.push(keys.issue(
            &owner.id.to_string(),
            Some(tenant.id),
            TokenRole::Admin,
            3600,
        )?);
    }

    let service = ServiceBuilder::new()
        .layer(TenantLayer::new(db.clone()))
        .layer(AuthLayer::new(keys, db))
        .service(service_fn(hello));

    let listener = tokio::net::TcpListener::bind(support::listen_addr(3001)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    eprintln!("connection error: {e}");
                }
            });
        }
    });

    let (acme, globex) = (&tokens[0], &tokens[1]);
    println!("listening on http://{addr}\n");
    println!("# acme's admin at acme:");
    println!("curl -H 'Authorization: Bearer {acme}' -H 'X-Tenant-Id: acme' http://{addr}/\n");
    println!("# acme's token at globex is refused (403), an unknown tenant is 404:");
    println!("curl -i -H 'Authorization: Bearer {acme}' -H 'X-Tenant-Id: globex' http://{addr}/");
    println!(
        "curl -i -H 'Authorization: Bearer {globex}' -H 'X-Tenant-Id: initech' http://{addr}/\n"
    );

    if support::self_test() {
        let bearer = |t: &str| format!("Bearer {t}");
        let (a, g) = (bearer(acme), bearer(globex));
        let body = support::expect(
            addr,
            "/",
            &[("authorization", &a), ("x-tenant-id", "acme")],
            200,
        )
        .await?;
        anyhow::ensure!(
            body.contains("tenant `acme`") && body.contains("Admin"),
            "{body}"
        );
        support::expect(
            addr,
            "/",
            &[("authorization", &a), ("x-tenant-id", "globex")],
            403,
        )
        .await?;
        support::expect(
            addr,
            "/",
            &[("authorization", &g), ("x-tenant-id", "initech")],
            404,
        )
        .await?;
        support::expect(addr, "/", &[("x-tenant-id", "acme")], 401).await?;
        return Ok(());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
