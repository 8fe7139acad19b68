//! Dropping tenantkit's layers into an existing axum app.
//!
//! The app had one handler and no notion of tenants. Adding `TenantLayer` and
//! `AuthLayer` makes it multi-tenant; `with_default_tenant` keeps requests that
//! name no tenant (the old clients) on the tenant that now holds the old data.
//!
//! ```text
//! cargo run -p tenantkit-examples --bin drop-in-layers
//! ```
//! then run the `curl` lines it prints (`--self-test` runs them itself).

#[path = "support.rs"]
mod support;

use axum::{Router, extract::State, routing::get};
use tenantkit::{
    Db, NewTenant, NewUser, Role, TenantContext,
    audit::Actor,
    auth::{AuthLayer, JwtKeys, Principal, TokenRole},
    resolve::{TenantLayer, TenantRef},
};
use tower::ServiceBuilder;

/// The app's one handler, now tenant-aware: it counts the tenant's users.
async fn hello(
    State(db): State<Db>,
    tenant: TenantContext,
    principal: Principal,
) -> Result<String, tenantkit::Error> {
    let mut tx = db.begin(&tenant).await?;
    let users = tx.count_users().await?;
    Ok(format!(
        "hello {:?} of tenant `{}`, which has {users} user(s)\n",
        principal.subject,
        tenant.tenant().subdomain
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = Db::connect("sqlite::memory:").await?;
    db.migrate().await?;
    // The tenant that holds what used to be the single tenant's data.
    let (legacy, legacy_admin) = db
        .platform()
        .create_tenant_with_owner(
            &NewTenant {
                name: "Legacy".into(),
                subdomain: "legacy".into(),
            },
            &NewUser {
                email: "admin@legacy.example".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await?;
    let (acme, acme_owner) = db
        .platform()
        .create_tenant_with_owner(
            &NewTenant {
                name: "Acme".into(),
                subdomain: "acme".into(),
            },
            &NewUser {
                email: "ann@acme.example".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await?;

    let keys = JwtKeys::hs256(b"example-secret-example-secret-example!")?;
    let layers = ServiceBuilder::new()
        .layer(
            TenantLayer::new(db.clone()).with_default_tenant(TenantRef::Subdomain("legacy".into())),
        )
        .layer(AuthLayer::new(keys.clone(), db.clone()));
    let app = Router::new()
        .route("/hello", get(hello))
        .route_layer(layers)
        .with_state(db);

    // Tokens name a user of their tenant; a member token of an owner acts as a member.
    let legacy_token = keys.issue(
        &legacy_admin.id.to_string(),
        Some(legacy.id),
        TokenRole::Member,
        3600,
    )?;
    let acme_token = keys.issue(
        &acme_owner.id.to_string(),
        Some(acme.id),
        TokenRole::Member,
        3600,
    )?;
    let listener = tokio::net::TcpListener::bind(support::listen_addr(3000)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}\n");
    println!("# an old single-tenant client, unchanged (no tenant named):");
    println!("curl -H 'Authorization: Bearer {legacy_token}' http://{addr}/hello\n");
    println!("# a new client of tenant acme:");
    println!(
        "curl -H 'Authorization: Bearer {acme_token}' -H 'X-Tenant-Id: acme' http://{addr}/hello\n"
    );
    println!("# acme's token on the legacy tenant is refused (403):");
    println!("curl -i -H 'Authorization: Bearer {acme_token}' http://{addr}/hello");

    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if support::self_test() {
        let (legacy, acme) = (
            format!("Bearer {legacy_token}"),
            format!("Bearer {acme_token}"),
        );
        let body = support::expect(addr, "/hello", &[("authorization", &legacy)], 200).await?;
        anyhow::ensure!(body.contains("tenant `legacy`"), "{body}");
        let body = support::expect(
            addr,
            "/hello",
            &[("authorization", &acme), ("x-tenant-id", "acme")],
            200,
        )
        .await?;
        anyhow::ensure!(body.contains("tenant `acme`"), "{body}");
        support::expect(addr, "/hello", &[("authorization", &acme)], 403).await?;
        return Ok(());
    }
    server.await??;
    Ok(())
}
