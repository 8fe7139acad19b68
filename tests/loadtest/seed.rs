//! Seeding through the platform's own API: tenants with their first owner
//! (`POST /tenants`, platform admin), then members (`POST /users`) and an
//! API key (`POST /api-keys`) in each, exactly as a customer's onboarding
//! would make them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use reqwest::Method;
use serde_json::{Value, json};
use tenantkit::{TenantId, auth::TokenRole};

use crate::{
    cluster::Cluster,
    engine::{self, progress},
};

/// A seeded tenant, with what the load needs to act in it.
pub(crate) struct Tenant {
    pub(crate) id: String,
    /// A JWT of its first owner.
    pub(crate) owner_token: String,
    /// An API key with every scope.
    pub(crate) api_key: String,
    /// Its members' ids.
    pub(crate) members: Vec<String>,
}

/// The HTTP side of the tool: one client, requests spread over the servers.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    bases: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

impl Api {
    pub(crate) fn new(bases: &[String]) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(512)
                .build()?,
            bases: Arc::new(bases.to_vec()),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next server, round robin.
    pub(crate) fn base(&self) -> &str {
        &self.bases[self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }

    /// A request to `path` of `tenant` with `credential` as bearer.
    pub(crate) fn tenant(
        &self,
        method: Method,
        path: &str,
        tenant: &str,
        credential: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .header("x-tenant-id", tenant)
            .bearer_auth(credential)
    }
}

/// What to make.
pub(crate) struct Plan {
    pub(crate) tenants: usize,
    pub(crate) members_per_tenant: usize,
    pub(crate) concurrency: usize,
}

/// Makes `plan.tenants` tenants (`lt-0` …) with an owner, members and an API
/// key each; returns them in order. Retries an answer of 429/503 after a
/// pause; any other failure stops the run.
pub(crate) async fn seed(
    cluster: &Cluster,
    api: &Api,
    plan: &Plan,
) -> anyhow::Result<(Vec<Tenant>, Duration)> {
    let started = Instant::now();
    let admin = cluster.admin_token();
    let bar = progress("seeding", plan.tenants as u64);
    let results: Vec<anyhow::Result<Tenant>> = stream::iter(0..plan.tenants)
        .map(|i| {
            let (admin, bar) = (&admin, &bar);
            async move {
                let t = seed_one(cluster, api, admin, i, plan.members_per_tenant).await;
                bar.inc(1);
                t
            }
        })
        .buffered(plan.concurrency)
        .collect()
        .await;
    engine::done(&bar);
    let tenants = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok((tenants, started.elapsed()))
}

async fn seed_one(
    cluster: &Cluster,
    api: &Api,
    admin: &str,
    i: usize,
    members: usize,
) -> anyhow::Result<Tenant> {
    let created = send_json(
        api.http
            .post(format!("{}/tenants", api.base()))
            .bearer_auth(admin)
            .json(&json!({
                "name": format!("Load test {i}"),
                "subdomain": format!("lt-{i}"),
                "owner_email": format!("owner@lt-{i}.test"),
            })),
        201,
    )
    .await
    .with_context(|| format!("POST /tenants lt-{i}"))?;
    let id = created["id"].as_str().context("a tenant id")?.to_owned();
    let owner = created["owner"]["id"].as_str().context("an owner id")?;
    let tenant_id: TenantId = id.parse()?;
    let owner_token = cluster
        .keys
        .issue(owner, Some(tenant_id), TokenRole::Owner, 24 * 3600)?;
    let mut member_ids = Vec::with_capacity(members);
    for m in 0..members {
        let user = send_json(
            api.tenant(Method::POST, "/users", &id, &owner_token)
                .json(&json!({
                    "email": format!("member{m}@lt-{i}.test"),
                    "role": "member",
                })),
            201,
        )
        .await
        .with_context(|| format!("POST /users in lt-{i}"))?;
        member_ids.push(user["id"].as_str().context("a user id")?.to_owned());
    }
    let key = send_json(
        api.tenant(Method::POST, "/api-keys", &id, &owner_token)
            .json(&json!({
                "name": "load test",
                "scopes": ["tenant:read", "users:read", "users:write", "api_keys:read",
                           "audit_logs:read", "analytics:read", "analytics:write",
                           "webhooks:read", "webhooks:write"],
            })),
        201,
    )
    .await
    .with_context(|| format!("POST /api-keys in lt-{i}"))?;
    Ok(Tenant {
        id,
        owner_token,
        api_key: key["key"].as_str().context("the key")?.to_owned(),
        members: member_ids,
    })
}

/// Sends `request`, retrying 429 and 503 (after `Retry-After`, at most 10
/// times); the JSON body when the status is `expect`.
pub(crate) async fn send_json(
    request: reqwest::RequestBuilder,
    expect: u16,
) -> anyhow::Result<Value> {
    for _ in 0..10 {
        let attempt = request.try_clone().context("a cloneable request")?;
        let res = attempt.send().await?;
        let status = res.status().as_u16();
        if status == expect {
            return Ok(res.json().await.unwrap_or(Value::Null));
        }
        if status == 429 || status == 503 {
            let wait = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        bail!(
            "answered {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    bail!("still refused after 10 tries")
}
