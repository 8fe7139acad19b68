//! Scenario 2, analytics: events ingested over HTTP up to 1M and then 10M
//! (ingestion throughput measured on the way), and summary and time-series
//! latencies at each size, for one big tenant and for small ones.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use chrono::{SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    engine::{self, Job, RunStats},
    seed::{Api, Tenant},
};

/// Events per request.
pub(crate) const BATCH: u64 = 1000;
/// Concurrent ingesting clients.
pub(crate) const CLIENTS: usize = 8;
/// Distinct end users of the big tenant, and of each small one.
const BIG_USERS: u64 = 100_000;
const SMALL_USERS: u64 = 1_000;
/// Route templates of the `api_call` events.
const ROUTES: [&str; 4] = [
    "GET /users",
    "POST /users",
    "GET /audit-logs",
    "GET /tenant",
];
/// Timestamps spread over the last 30 days.
const SPREAD_SECS: u64 = 30 * 24 * 3600 - 3600;

/// The queries, by label: big tenant first, then small tenants.
const QUERIES: [(&str, &str); 12] = [
    ("summary (30 days), big tenant", "/analytics/summary"),
    (
        "events per day, big tenant",
        "/analytics/timeseries?metric=events&interval=day",
    ),
    (
        "api_calls per hour (720 points), big tenant",
        "/analytics/timeseries?metric=api_calls&interval=hour",
    ),
    (
        "dau per day, big tenant",
        "/analytics/timeseries?metric=dau&interval=day",
    ),
    (
        "feature per day, big tenant",
        "/analytics/timeseries?metric=feature:feature-7&interval=day",
    ),
    (
        "events per day in Asia/Tokyo, big tenant",
        "/analytics/timeseries?metric=events&interval=day&tz=Asia/Tokyo",
    ),
    ("summary (30 days), small tenants", "/analytics/summary"),
    (
        "events per day, small tenants",
        "/analytics/timeseries?metric=events&interval=day",
    ),
    (
        "api_calls per hour (720 points), small tenants",
        "/analytics/timeseries?metric=api_calls&interval=hour",
    ),
    (
        "dau per day, small tenants",
        "/analytics/timeseries?metric=dau&interval=day",
    ),
    (
        "feature per day, small tenants",
        "/analytics/timeseries?metric=feature:feature-7&interval=day",
    ),
    (
        "events per day in Asia/Tokyo, small tenants",
        "/analytics/timeseries?metric=events&interval=day&tz=Asia/Tokyo",
    ),
];

/// One ingestion phase.
pub(crate) struct Ingestion {
    pub(crate) events: u64,
    pub(crate) elapsed: Duration,
    /// Events acknowledged per second of the phase.
    pub(crate) per_second: Vec<u64>,
    pub(crate) request: RunStats,
    /// 503 answers (buffer full), each retried.
    pub(crate) refused: u64,
}

impl Ingestion {
    pub(crate) fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The figures at one size.
pub(crate) struct AtSize {
    /// Events stored in all when measured.
    pub(crate) events: u64,
    pub(crate) ingestion: Ingestion,
    pub(crate) queries: RunStats,
}

/// Ingests up to each of `sizes` events in all (in order), measuring
/// queries at each size at `query_rate` for `query_secs`.
pub(crate) async fn run(
    api: &Api,
    tenants: &[Tenant],
    sizes: &[u64],
    query_rate: f64,
    query_secs: u64,
) -> anyhow::Result<Vec<AtSize>> {
    let tenants: Arc<Vec<(String, String)>> = Arc::new(
        tenants
            .iter()
            .map(|t| (t.id.clone(), t.api_key.clone()))
            .collect(),
    );
    if tenants.len() < 2 {
        bail!("the analytics scenario needs at least 2 tenants");
    }
    let mut stored = 0u64;
    let mut out = Vec::new();
    for (n, &size) in sizes.iter().enumerate() {
        let ingestion = ingest(
            api,
            &tenants,
            stored / BATCH,
            size.saturating_sub(stored) / BATCH,
            n,
        )
        .await?;
        stored += ingestion.events;
        let queries = query(
            api,
            &tenants,
            query_rate,
            query_secs,
            &format!("queries {}", human(stored)),
        )
        .await;
        out.push(AtSize {
            events: stored,
            ingestion,
            queries,
        });
    }
    Ok(out)
}

/// `1.0M`, `10M`.
pub(crate) fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", (n as f64 / 1e5).round() / 10.0)
    } else {
        format!("{}k", n / 1000)
    }
}

/// Sends batches `first .. first + batches` from [`CLIENTS`] clients, closed
/// loop: each client sends its next batch when the last is acknowledged.
async fn ingest(
    api: &Api,
    tenants: &Arc<Vec<(String, String)>>,
    first: u64,
    batches: u64,
    phase: usize,
) -> anyhow::Result<Ingestion> {
    let next = Arc::new(AtomicU64::new(first));
    let end = first + batches;
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(RunStatsCell::default()));
    let bar = engine::progress(&format!("ingest {phase}"), batches * BATCH);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (api, tenants, next, acked, refused, stats, bar) = (
            api.clone(),
            tenants.clone(),
            next.clone(),
            acked.clone(),
            refused.clone(),
            stats.clone(),
            bar.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= end {
                    return Ok::<_, anyhow::Error>(());
                }
                // One batch in five is the big tenant's.
                let (id, key) = if k % 5 == 0 {
                    &tenants[0]
                } else {
                    &tenants[1 + (k as usize % (tenants.len() - 1))]
                };
                let body = serde_json::to_vec(&batch(k, k % 5 == 0))?;
                loop {
                    let sent = Instant::now();
                    let res = api
                        .tenant(Method::POST, "/analytics/events", id, key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = res.status().as_u16();
                    let _ = res.bytes().await;
                    let second = (Instant::now() - started).as_secs() as usize;
                    stats
                        .lock()
                        .expect("not poisoned")
                        .record(status, sent.elapsed(), second);
                    match status {
                        202 => {
                            acked.fetch_add(BATCH, Ordering::Relaxed);
                            bar.inc(BATCH);
                            break;
                        }
                        503 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        other => bail!("POST /analytics/events answered {other}"),
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await??;
    }
    engine::done(&bar);
    let elapsed = started.elapsed();
    let cell = Arc::try_unwrap(stats)
        .ok()
        .expect("the clients are done")
        .into_inner()
        .expect("not poisoned");
    Ok(Ingestion {
        events: acked.load(Ordering::Relaxed),
        elapsed,
        per_second: cell.accepted_per_second.iter().map(|n| n * BATCH).collect(),
        request: cell.into_stats(),
        refused: refused.load(Ordering::Relaxed),
    })
}

/// Request latencies of an ingestion phase, and acknowledged batches per second.
#[derive(Default)]
struct RunStatsCell {
    latency: Option<hdrhistogram::Histogram<u64>>,
    accepted_per_second: Vec<u64>,
}

impl RunStatsCell {
    fn record(&mut self, status: u16, latency: Duration, second: usize) {
        self.latency
            .get_or_insert_with(engine::histogram)
            .saturating_record(latency.as_micros() as u64);
        if status == 202 {
            if self.accepted_per_second.len() <= second {
                self.accepted_per_second.resize(second + 1, 0);
            }
            self.accepted_per_second[second] += 1;
        }
    }

    fn into_stats(self) -> RunStats {
        RunStats::from_histogram(
            "POST /analytics/events (1,000 events)",
            self.latency.unwrap_or_else(engine::histogram),
        )
    }
}

/// Batch `k`: 1,000 events of one tenant, timestamps over the last 30 days.
fn batch(k: u64, big: bool) -> Value {
    let users = if big { BIG_USERS } else { SMALL_USERS };
    let now = Utc::now();
    let mut rng = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let events: Vec<Value> = (0..BATCH)
        .map(|_| {
            let at = (now - chrono::Duration::seconds((next() % SPREAD_SECS) as i64))
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let user = format!("u{}", next() % users);
            match next() % 20 {
                0..=9 => {
                    let route = ROUTES[(next() % ROUTES.len() as u64) as usize];
                    json!({"event_type": "api_call", "user_id": user, "timestamp": at, "name": route,
                    "metadata": {"status": 200, "latency_ms": next() % 40}})
                }
                10..=15 => json!({"event_type": "page_view", "user_id": user, "timestamp": at,
                    "name": format!("/p/{}", next() % 50)}),
                16..=18 => json!({"event_type": "feature_used", "user_id": user, "timestamp": at,
                    "name": format!("feature-{}", next() % 30)}),
                _ => json!({"event_type": "custom.signup", "user_id": user, "timestamp": at,
                    "metadata": {"plan": "pro"}}),
            }
        })
        .collect();
    Value::Array(events)
}

/// The query mix, open loop: each request one of [`QUERIES`] in turn, for
/// the big tenant or one of the small ones.
async fn query(
    api: &Api,
    tenants: &Arc<Vec<(String, String)>>,
    rate: f64,
    seconds: u64,
    label: &str,
) -> RunStats {
    let job: Job = {
        let (api, tenants) = (api.clone(), tenants.clone());
        Arc::new(move |i| {
            let (label, path) = QUERIES[i as usize % QUERIES.len()];
            let big = (i as usize % QUERIES.len()) < QUERIES.len() / 2;
            let (id, key) = if big {
                &tenants[0]
            } else {
                &tenants[1 + (i as usize / QUERIES.len()) % (tenants.len() - 1)]
            };
            let request = api.tenant(Method::GET, path, id, key);
            Box::pin(engine::send(request, label, 200))
        })
    };
    engine::run(label, rate, seconds, 0, job).await
}
