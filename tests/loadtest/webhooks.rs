//! Scenario 3, webhooks: tenants with an endpoint each at a receiver this
//! tool runs on loopback, which verifies every Standard Webhooks signature
//! and counts duplicates. Messages are published the way a customer's
//! traffic publishes them (`--webhook-publish patch`: `PATCH /users/{id}`
//! publishes `user.updated`), or the way a service in any language does
//! (`--webhook-publish http`: `POST /webhooks/messages` with the
//! `user.updated` message itself).
//! First a fixed rate (10,000/min) for minutes, then rising steps to find the
//! most the deployment sustains.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::json;

use crate::{
    engine::{self, Job},
    seed::{Api, Tenant, send_json},
};

/// What the receiver saw.
struct Seen {
    ids: Mutex<HashSet<String>>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    bad_signatures: AtomicU64,
    /// Publish-to-delivery lag, µs (from the message's `timestamp`, taken in
    /// the publishing transaction, to its arrival here).
    lag: Mutex<Histogram<u64>>,
    /// First deliveries per second since the receiver started, and the lag
    /// histogram of each second.
    per_second: Mutex<Vec<(u64, Histogram<u64>)>>,
    started: Instant,
    last_at: Mutex<Option<Instant>>,
}

/// How the scenario publishes its `user.updated` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Publish {
    /// `PATCH /users/{id}`: the server publishes in the change's transaction.
    Patch,
    /// `POST /webhooks/messages`: the message itself, published over HTTP.
    Http,
}

impl Publish {
    /// The request that publishes message `i` of tenant `t`, its label,
    /// and the status that means published.
    fn request(
        self,
        api: &Api,
        t: &Tenant,
        i: u64,
        which: usize,
    ) -> (reqwest::RequestBuilder, &'static str, u16) {
        let member = &t.members[(i as usize / which) % t.members.len()];
        match self {
            Publish::Patch => (
                api.tenant(
                    Method::PATCH,
                    &format!("/users/{member}"),
                    &t.id,
                    &t.owner_token,
                )
                .json(&json!({"role": "member"})),
                "PATCH /users/{id} (publishes user.updated)",
                200,
            ),
            Publish::Http => (
                api.tenant(Method::POST, "/webhooks/messages", &t.id, &t.owner_token)
                    .json(&json!({
                        "event_type": "user.updated",
                        "data": {
                            "id": member,
                            "tenant_id": t.id,
                            "email": format!("member{i}@loadtest.test"),
                            "role": "member",
                            "created_at": "2026-12-07T10:00:00Z",
                        },
                    })),
                "POST /webhooks/messages (user.updated)",
                202,
            ),
        }
    }
}

/// The receiver and the endpoints registered at it.
pub(crate) struct Rig {
    seen: Arc<Seen>,
    /// Endpoint secrets by tenant, as `/hook/{n}` names them.
    pub(crate) tenants: Vec<usize>,
    /// How its periods publish.
    pub(crate) publish: Publish,
    server: tokio::task::JoinHandle<()>,
}

impl Rig {
    /// Starts the receiver and registers one endpoint for `user.updated` in
    /// each of `tenants` (`POST /webhooks`).
    pub(crate) async fn start(
        api: &Api,
        tenants: &[Tenant],
        which: std::ops::Range<usize>,
        publish: Publish,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut secrets = Vec::new();
        for n in which.clone() {
            let t = &tenants[n];
            let created = send_json(
                api.tenant(Method::POST, "/webhooks", &t.id, &t.owner_token)
                    .json(&json!({
                        "url": format!("http://127.0.0.1:{port}/hook/{}", secrets.len()),
                        "event_types": ["user.updated"],
                        "description": "tenantkit-loadtest receiver",
                    })),
                201,
            )
            .await
            .with_context(|| format!("POST /webhooks in {}", t.id))?;
            let secret = created["secret"].as_str().context("the endpoint secret")?;
            secrets.push(standardwebhooks::Webhook::new(secret).context("a whsec_ secret")?);
        }
        let seen = Arc::new(Seen {
            ids: Mutex::new(HashSet::new()),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            lag: Mutex::new(engine::histogram()),
            per_second: Mutex::new(Vec::new()),
            started: Instant::now(),
            last_at: Mutex::new(None),
        });
        let app = Router::new()
            .route("/hook/{n}", post(receive))
            .with_state((seen.clone(), Arc::new(secrets)));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            seen,
            tenants: which.collect(),
            publish,
            server,
        })
    }

    pub(crate) fn stop(self) {
        self.server.abort();
    }
}

async fn receive(
    State((seen, secrets)): State<(Arc<Seen>, Arc<Vec<standardwebhooks::Webhook>>)>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = Utc::now();
    let Some(secret) = secrets.get(n) else {
        return StatusCode::NOT_FOUND;
    };
    if secret.verify(&body, &headers).is_err() {
        seen.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !seen.ids.lock().expect("not poisoned").insert(id) {
        seen.duplicates.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NO_CONTENT;
    }
    let lag_us = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| DateTime::parse_from_rfc3339(b["timestamp"].as_str()?).ok())
        .map(|published| {
            (now - published.with_timezone(&Utc))
                .num_microseconds()
                .unwrap_or(0)
                .max(1) as u64
        });
    seen.delivered.fetch_add(1, Ordering::Relaxed);
    let second = seen.started.elapsed().as_secs() as usize;
    {
        let mut per_second = seen.per_second.lock().expect("not poisoned");
        while per_second.len() <= second {
            per_second.push((0, engine::histogram()));
        }
        per_second[second].0 += 1;
        if let Some(us) = lag_us {
            per_second[second].1.saturating_record(us);
        }
    }
    if let Some(us) = lag_us {
        seen.lag.lock().expect("not poisoned").saturating_record(us);
    }
    *seen.last_at.lock().expect("not poisoned") = Some(Instant::now());
    StatusCode::NO_CONTENT
}

/// One period of publishing and what came of it.
pub(crate) struct Period {
    pub(crate) label: String,
    /// Messages per minute asked for.
    pub(crate) offered_per_min: f64,
    pub(crate) seconds: u64,
    /// Messages published (`PATCH` answered 200, `POST` 202) and failed
    /// publishes.
    pub(crate) published: u64,
    pub(crate) publish_failed: u64,
    /// Delivered (first deliveries), duplicates, bad signatures.
    pub(crate) delivered: u64,
    pub(crate) duplicates: u64,
    pub(crate) bad_signatures: u64,
    /// Deliveries per minute from the first publish to the last delivery.
    pub(crate) delivered_per_min: f64,
    pub(crate) lag: Histogram<u64>,
    /// Seconds from the end of publishing until everything had arrived
    /// (`None`: some never did within the wait).
    pub(crate) drained_after: Option<f64>,
    /// Deliveries and lag p99 (ms) per second of the period.
    pub(crate) per_second: Vec<(u64, f64)>,
}

impl Period {
    /// Kept up with: everything published arrived within `within` s of the
    /// end of publishing, and 99 % of it within `within` s of its publication
    /// (a backlog that grows all period long shows in the lag).
    pub(crate) fn kept_up(&self, within: f64) -> bool {
        self.delivered >= self.published
            && self.drained_after.is_some_and(|d| d <= within)
            && engine::ms(&self.lag, 0.99) <= within * 1000.0
    }
}

/// Publishes `per_min` messages a minute for `seconds` across the rig's
/// tenants, then waits (up to `drain_secs`) for the deliveries.
pub(crate) async fn period(
    api: &Api,
    tenants: &Arc<Vec<Tenant>>,
    rig: &Rig,
    per_min: f64,
    seconds: u64,
    drain_secs: u64,
    label: &str,
) -> Period {
    let seen = &rig.seen;
    let base = Snapshot::take(seen);
    let published = Arc::new(AtomicU64::new(0));
    let job: Job = {
        let (api, tenants, published) = (api.clone(), tenants.clone(), published.clone());
        let (which, publish) = (Arc::new(rig.tenants.clone()), rig.publish);
        Arc::new(move |i| {
            let t = &tenants[which[i as usize % which.len()]];
            let (request, label, published_status) = publish.request(&api, t, i, which.len());
            let published = published.clone();
            Box::pin(async move {
                let outcome = engine::send(request, label, published_status).await;
                if outcome.ok {
                    published.fetch_add(1, Ordering::Relaxed);
                }
                outcome
            })
        })
    };
    let started = Instant::now();
    let stats = engine::run(label, per_min / 60.0, seconds, 0, job).await;
    let published = published.load(Ordering::Relaxed);
    let publishing_ended = Instant::now();
    let deadline = publishing_ended + Duration::from_secs(drain_secs);
    let mut drained_after = None;
    while Instant::now() < deadline {
        if seen.delivered.load(Ordering::Relaxed) - base.delivered >= published {
            drained_after = Some(publishing_ended.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Late duplicates would show in the next second or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = Snapshot::take(seen);
    let last = seen
        .last_at
        .lock()
        .expect("not poisoned")
        .unwrap_or(publishing_ended);
    let window = (last.max(publishing_ended) - started).as_secs_f64();
    let per_second = {
        let all = seen.per_second.lock().expect("not poisoned");
        let from = (started - seen.started).as_secs() as usize;
        all.iter()
            .skip(from)
            .map(|(n, h)| (*n, engine::ms(h, 0.99)))
            .collect()
    };
    Period {
        label: label.to_owned(),
        offered_per_min: per_min,
        seconds,
        published,
        publish_failed: stats.failed(),
        delivered: now.delivered - base.delivered,
        duplicates: now.duplicates - base.duplicates,
        bad_signatures: now.bad_signatures - base.bad_signatures,
        delivered_per_min: (now.delivered - base.delivered) as f64 * 60.0 / window,
        lag: now.lag_since(&base),
        drained_after,
        per_second,
    }
}

/// The receiver's counters at one moment.
struct Snapshot {
    delivered: u64,
    duplicates: u64,
    bad_signatures: u64,
    lag: Histogram<u64>,
}

impl Snapshot {
    fn take(seen: &Seen) -> Self {
        Self {
            delivered: seen.delivered.load(Ordering::Relaxed),
            duplicates: seen.duplicates.load(Ordering::Relaxed),
            bad_signatures: seen.bad_signatures.load(Ordering::Relaxed),
            lag: seen.lag.lock().expect("not poisoned").clone(),
        }
    }

    /// The lags recorded after `earlier` was taken.
    fn lag_since(&self, earlier: &Snapshot) -> Histogram<u64> {
        let mut lag = self.lag.clone();
        let _ = lag.subtract(&earlier.lag);
        lag
    }
}

/// Retried attempts and dead letters of the rig's endpoints: from the
/// database when the tool can see it, dead letters through the API.
pub(crate) async fn failures(
    api: &Api,
    tenants: &[Tenant],
    rig: &Rig,
    admin_url: Option<&str>,
) -> anyhow::Result<(Option<u64>, u64)> {
    let retries = match admin_url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await?;
            let (n,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM webhook_deliveries WHERE attempt > 1")
                    .fetch_one(&pool)
                    .await?;
            pool.close().await;
            Some(n as u64)
        }
        None => None,
    };
    let mut dead = 0;
    for &n in &rig.tenants {
        let t = &tenants[n];
        let page = send_json(
            api.tenant(
                Method::GET,
                "/webhooks/dead-letters?limit=100",
                &t.id,
                &t.owner_token,
            ),
            200,
        )
        .await?;
        dead += page["items"].as_array().map_or(0, |a| a.len() as u64);
    }
    Ok((retries, dead))
}
