//! Scenario 1, the API: a realistic mix of reads and writes over many
//! tenants, with JWT and API-key credentials, at a fixed arrival rate. Then
//! the totals are read back through the API and compared with what the load
//! was told it did (the same check on one process and on several).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    engine::{self, Job, Outcome, RunStats},
    seed::{Api, Tenant, send_json},
};

/// The mix: route label and weight (of 100).
const MIX: [(&str, u64); 12] = [
    ("GET /users", 28),
    ("GET /users [api key]", 5),
    ("GET /users/{id}", 10),
    ("GET /tenant", 5),
    ("GET /api-keys", 5),
    ("GET /audit-logs", 10),
    ("POST /users", 6),
    ("DELETE /users/{id}", 5),
    ("PATCH /users/{id}", 4),
    ("POST /api-keys", 3),
    ("DELETE /api-keys/{id}", 2),
    ("POST /analytics/events [api key]", 17),
];

/// Events per ingestion request, and how many of them are page views (the
/// load's own: nothing else makes page views, so they can be counted back).
const EVENTS_PER_BATCH: u64 = 10;
const PAGE_VIEWS_PER_BATCH: u64 = 4;

/// What the mix did that must be visible afterwards.
#[derive(Default)]
pub(crate) struct Ledger {
    users_created: AtomicU64,
    users_deleted: AtomicU64,
    batches_accepted: AtomicU64,
}

/// Per active tenant: what the load made and may remove again.
struct Made {
    users: Mutex<Vec<String>>,
    keys: Mutex<Vec<String>>,
}

/// The result of the scenario.
pub(crate) struct ApiRun {
    pub(crate) stats: RunStats,
    pub(crate) checks: Vec<Check>,
}

/// A total compared after the run.
pub(crate) struct Check {
    pub(crate) what: String,
    pub(crate) expected: u64,
    pub(crate) found: u64,
}

impl Check {
    pub(crate) fn holds(&self) -> bool {
        self.expected == self.found
    }
}

/// The route of request `i`, by weight.
fn route_of(i: u64) -> &'static str {
    // A fixed odd multiplier scatters consecutive requests over the mix.
    let mut slot = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    slot %= 100;
    for (route, weight) in MIX {
        if slot < weight {
            return route;
        }
        slot -= weight;
    }
    unreachable!("the weights add up to 100")
}

/// Runs the mix at `rate` for `seconds` over `tenants` (a warm-up of 5 s
/// first, not recorded), then checks the totals.
///
/// Requests are numbered from `first` (e-mails and names made by the load
/// derive from the number, so a second run in the same database uses
/// another range).
pub(crate) async fn run(
    api: &Api,
    tenants: Arc<Vec<Tenant>>,
    rate: f64,
    seconds: u64,
    first: u64,
    label: &str,
) -> anyhow::Result<ApiRun> {
    assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u64>(), 100);
    let before = totals(api, &tenants, "totals before").await?;
    let ledger = Arc::new(Ledger::default());
    let made: Arc<Vec<Made>> = Arc::new(
        tenants
            .iter()
            .map(|_| Made {
                users: Mutex::new(Vec::new()),
                keys: Mutex::new(Vec::new()),
            })
            .collect(),
    );
    let job: Job = {
        let (api, tenants, made, ledger) =
            (api.clone(), tenants.clone(), made.clone(), ledger.clone());
        Arc::new(move |i| {
            let (api, tenants, made, ledger) =
                (api.clone(), tenants.clone(), made.clone(), ledger.clone());
            Box::pin(async move {
                let t = (i.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 20) as usize % tenants.len();
                one(&api, &tenants[t], &made[t], &ledger, route_of(i), i).await
            })
        })
    };
    engine::run(
        &format!("{label} warm-up"),
        rate,
        5,
        first + (1 << 31),
        job.clone(),
    )
    .await;
    let stats = engine::run(label, rate, seconds, first, job).await;
    // Analytics acknowledges only committed events, but give the rollups'
    // last flush a moment anyway.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = totals(api, &tenants, "totals after").await?;
    let created = ledger.users_created.load(Ordering::Relaxed);
    let deleted = ledger.users_deleted.load(Ordering::Relaxed);
    let batches = ledger.batches_accepted.load(Ordering::Relaxed);
    let checks = vec![
        Check {
            what: format!(
                "users in the {} tenants: {} before + created ({created}) − deleted ({deleted})",
                tenants.len(),
                before.users
            ),
            expected: before.users + created - deleted,
            found: after.users,
        },
        Check {
            what: format!(
                "page views by /analytics/summary: {} before + {PAGE_VIEWS_PER_BATCH} × {batches} accepted batches",
                before.page_views
            ),
            expected: before.page_views + PAGE_VIEWS_PER_BATCH * batches,
            found: after.page_views,
        },
    ];
    Ok(ApiRun { stats, checks })
}

/// Sends request `i` of the mix as `route` in `tenant`.
async fn one(
    api: &Api,
    tenant: &Tenant,
    made: &Made,
    ledger: &Ledger,
    route: &'static str,
    i: u64,
) -> Outcome {
    let (jwt, key, id) = (&tenant.owner_token, &tenant.api_key, &tenant.id);
    let member = &tenant.members[i as usize % tenant.members.len().max(1)];
    let pop = |list: &Mutex<Vec<String>>| list.lock().expect("not poisoned").pop();
    // A delete needs something the load made; without one it makes one.
    let mut target = String::new();
    let route = match route {
        "DELETE /users/{id}" => match pop(&made.users) {
            Some(user) => {
                target = user;
                route
            }
            None => "POST /users",
        },
        "DELETE /api-keys/{id}" => match pop(&made.keys) {
            Some(k) => {
                target = k;
                route
            }
            None => "POST /api-keys",
        },
        other => other,
    };
    let (request, expect) = match route {
        "GET /users" => (api.tenant(Method::GET, "/users", id, jwt), 200),
        "GET /users [api key]" => (api.tenant(Method::GET, "/users", id, key), 200),
        "GET /users/{id}" => (
            api.tenant(Method::GET, &format!("/users/{member}"), id, jwt),
            200,
        ),
        "GET /tenant" => (api.tenant(Method::GET, "/tenant", id, jwt), 200),
        "GET /api-keys" => (api.tenant(Method::GET, "/api-keys", id, jwt), 200),
        "GET /audit-logs" => (
            api.tenant(Method::GET, "/audit-logs?limit=20", id, jwt),
            200,
        ),
        "PATCH /users/{id}" => (
            api.tenant(Method::PATCH, &format!("/users/{member}"), id, jwt)
                .json(&json!({"role": "member"})),
            200,
        ),
        "DELETE /users/{id}" => (
            api.tenant(Method::DELETE, &format!("/users/{target}"), id, jwt),
            204,
        ),
        "DELETE /api-keys/{id}" => (
            api.tenant(Method::DELETE, &format!("/api-keys/{target}"), id, jwt),
            204,
        ),
        "POST /users" => (
            api.tenant(Method::POST, "/users", id, jwt)
                .json(&json!({"email": format!("u{i}@load.test"), "role": "member"})),
            201,
        ),
        "POST /api-keys" => (
            api.tenant(Method::POST, "/api-keys", id, jwt)
                .json(&json!({"name": format!("k{i}"), "scopes": ["users:read"]})),
            201,
        ),
        _ => (
            api.tenant(Method::POST, "/analytics/events", id, key)
                .json(&events(i)),
            202,
        ),
    };
    let (status, body) = match request.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.bytes().await.ok())
        }
        Err(_) => (0, None),
    };
    let ok = status == expect;
    if ok {
        let created_id = || {
            body.as_ref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        };
        match route {
            "POST /users" => {
                ledger.users_created.fetch_add(1, Ordering::Relaxed);
                if let Some(user) = created_id() {
                    made.users.lock().expect("not poisoned").push(user);
                }
            }
            "DELETE /users/{id}" => {
                ledger.users_deleted.fetch_add(1, Ordering::Relaxed);
            }
            "POST /api-keys" => {
                if let Some(k) = created_id() {
                    made.keys.lock().expect("not poisoned").push(k);
                }
            }
            "POST /analytics/events [api key]" => {
                ledger.batches_accepted.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    Outcome { route, status, ok }
}

/// A batch of events: page views, feature use and a custom event.
fn events(i: u64) -> Value {
    let user = format!("end-user-{}", i % 5000);
    let mut batch = Vec::with_capacity(EVENTS_PER_BATCH as usize);
    for k in 0..EVENTS_PER_BATCH {
        batch.push(if k < PAGE_VIEWS_PER_BATCH {
            json!({"event_type": "page_view", "user_id": user, "name": format!("/p/{}", (i + k) % 40)})
        } else if k < EVENTS_PER_BATCH - 1 {
            json!({"event_type": "feature_used", "user_id": user, "name": format!("feature-{}", (i + k) % 12)})
        } else {
            json!({"event_type": "custom.checkout", "user_id": user, "metadata": {"amount": i % 100}})
        });
    }
    Value::Array(batch)
}

/// What the API shows of the tenants.
struct Totals {
    users: u64,
    page_views: u64,
}

/// Reads, through the API, the users of every tenant and its page views.
async fn totals(api: &Api, tenants: &[Tenant], label: &str) -> anyhow::Result<Totals> {
    let bar = engine::progress(label, tenants.len() as u64);
    let mut totals = Totals {
        users: 0,
        page_views: 0,
    };
    for t in tenants {
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/users?limit=100&after={a}"),
                None => "/users?limit=100".to_owned(),
            };
            let page = send_json(api.tenant(Method::GET, &path, &t.id, &t.owner_token), 200)
                .await
                .context("GET /users")?;
            totals.users += page["items"].as_array().map_or(0, |a| a.len() as u64);
            match page["next_after"].as_str() {
                Some(a) => after = Some(a.to_owned()),
                None => break,
            }
        }
        let summary = send_json(
            api.tenant(Method::GET, "/analytics/summary", &t.id, &t.owner_token),
            200,
        )
        .await
        .context("GET /analytics/summary")?;
        totals.page_views += summary["page_views"].as_u64().unwrap_or(0);
        bar.inc(1);
    }
    engine::done(&bar);
    Ok(totals)
}
