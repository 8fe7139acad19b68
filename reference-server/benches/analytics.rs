//! Analytics ingestion and query figures, beside their targets.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench analytics
//! ```
//!
//! On a fresh PostgreSQL database (migrated by `migrate`, served as the
//! runtime role) with 1,000 tenants, one `tenantkit-server serve` process
//! (release build) receives every event over HTTP: 10M events in batches of
//! 1,000 from 16 concurrent clients, each request answered `202` only once
//! its flush has committed. One tenant gets 2M of them from 100,000
//! distinct users; the others share the rest. Timestamps spread over the
//! last 30 days, so the rollups are built incrementally at full size.
//!
//! Printed beside the targets:
//!
//! - ingestion: events/s durably acknowledged (target 50,000/s), request
//!   latency, and the server's RSS during ingestion;
//! - a raw `COPY` of 1M rows of the same shape into the same `events`
//!   table in the same run (as the owner, no rollups): ours must reach half;
//! - query latency (p50/p95/p99 of 200 requests each, closed loop, over
//!   HTTP): summary, and time series of events per day, API calls per hour
//!   (720 points), DAU and one feature, for the big tenant and for small
//!   ones (target p95 < 50 ms; the seed's floor is 1 s at 1M events).
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (owner/superuser URL,
//! default `postgres://postgres@127.0.0.1:5432/test`),
//! `TENANTKIT_BENCH_EVENTS` (total, default 10,000,000),
//! `TENANTKIT_BENCH_CLIENTS` (default 16), `TENANTKIT_BENCH_COPY_ROWS`
//! (default 1,000,000).

mod common;

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{SecondsFormat, Utc};
use tenantkit::{NewTenant, audit::Actor};

use common::{env_or, rss_mib};

const TARGET_EVENTS_PER_SEC: f64 = 50_000.0;
const TARGET_P95_MS: f64 = 50.0;
const FLOOR_QUERY_MS: f64 = 1000.0;
const TENANTS: usize = 1000;
const BIG_USERS: u64 = 100_000;
const BATCH: usize = 1000;
const KEY: &str = "dGVuYW50a2l0LWJlbmNoLWFuYWx5dGljcy1rZXktMzI=";
const SECRET: &str = "bench-secret-bench-secret-bench-secret";

/// A small, fast pseudo-random sequence (xorshift), so bodies are cheap to make.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ROUTES: [&str; 8] = [
    "GET /users",
    "GET /users/{id}",
    "POST /users",
    "GET /api-keys",
    "GET /audit-logs",
    "PATCH /users/{id}",
    "GET /tenant",
    "DELETE /users/{id}",
];

/// One batch of events for a tenant: its JSON body.
fn batch(rng: &mut Rng, big: bool, now: chrono::DateTime<Utc>, spread_secs: u64) -> String {
    let users = if big { BIG_USERS } else { 1_000 };
    let mut body = String::with_capacity(BATCH * 180);
    body.push('[');
    for i in 0..BATCH {
        if i > 0 {
            body.push(',');
        }
        let ago = rng.below(spread_secs);
        let at = (now - chrono::Duration::seconds(ago as i64))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let user = rng.below(users);
        let _ = match rng.below(20) {
            0..=9 => write!(
                body,
                r#"{{"event_type":"api_call","user_id":"u{user}","name":"{}","timestamp":"{at}","metadata":{{"status":200,"latency_ms":{}}}}}"#,
                ROUTES[rng.below(ROUTES.len() as u64) as usize],
                rng.below(40)
            ),
            10..=15 => write!(
                body,
                r#"{{"event_type":"page_view","user_id":"u{user}","name":"/p/{}","timestamp":"{at}"}}"#,
                rng.below(50)
            ),
            16..=18 => write!(
                body,
                r#"{{"event_type":"feature_used","user_id":"u{user}","name":"feature-{}","timestamp":"{at}"}}"#,
                rng.below(30)
            ),
            _ => write!(
                body,
                r#"{{"event_type":"custom.signup","user_id":"u{user}","timestamp":"{at}","metadata":{{"plan":"pro"}}}}"#
            ),
        };
    }
    body.push(']');
    body
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Tenant {
    id: String,
    token: String,
}

/// What one ingestion phase measured.
struct Phase {
    events: u64,
    rate: f64,
    p50: f64,
    p99: f64,
    refused: u64,
    rss_median: f64,
}

/// Sends `count` events (batch k goes to the big tenant when k % 5 == 0)
/// from `clients` connections, timestamps up to `spread_secs` old.
#[allow(clippy::too_many_arguments)]
async fn ingest(
    http: &reqwest::Client,
    base: &str,
    tenants: &Arc<Vec<Tenant>>,
    clients: usize,
    count: u64,
    spread_secs: u64,
    pid: u32,
    first_batch: u64,
) -> Phase {
    let batches = count / BATCH as u64;
    println!(
        "ingesting {} events, timestamps up to {spread_secs} s old",
        batches * BATCH as u64
    );
    let next = Arc::new(AtomicU64::new(first_batch));
    let end = first_batch + batches;
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(batches as usize)));
    let rss_samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let rss_samples = rss_samples.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_mib(pid, "VmRSS:") {
                    rss_samples.lock().unwrap().push(rss);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, tenants, next, acked, refused, latencies) = (
            http.clone(),
            base.to_owned(),
            tenants.clone(),
            next.clone(),
            acked.clone(),
            refused.clone(),
            latencies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15
                ^ (first_batch + c as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= end {
                    return;
                }
                // One batch in five is the big tenant's: 2M of 10M.
                let big = k % 5 == 0;
                let tenant = if big {
                    &tenants[0]
                } else {
                    &tenants[1 + (k as usize % (TENANTS - 1))]
                };
                let body = batch(&mut rng, big, Utc::now(), spread_secs);
                loop {
                    let sent = Instant::now();
                    let res = http
                        .post(format!("{base}/analytics/events"))
                        .header("x-tenant-id", &tenant.id)
                        .header("content-type", "application/json")
                        .bearer_auth(&tenant.token)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the server answers");
                    match res.status().as_u16() {
                        202 => {
                            latencies.lock().unwrap().push(sent.elapsed());
                            acked.fetch_add(BATCH as u64, Ordering::Relaxed);
                            break;
                        }
                        503 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        other => panic!("ingest answered {other}: {:?}", res.text().await),
                    }
                }
            }
        }));
    }
    let progress = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let now = (Instant::now(), acked.load(Ordering::Relaxed));
                println!(
                    "  {:>10} events acknowledged, {:>7.0}/s over the last 10 s",
                    now.1,
                    (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64()
                );
                last = now;
            }
        })
    };
    for t in tasks {
        t.await.expect("a client task");
    }
    let elapsed = started.elapsed();
    progress.abort();
    sampler.abort();
    let events = acked.load(Ordering::Relaxed);
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let mut rss = rss_samples.lock().unwrap().clone();
    rss.sort_by(|a, b| a.total_cmp(b));
    Phase {
        events,
        rate: events as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        refused: refused.load(Ordering::Relaxed),
        rss_median: rss.get(rss.len() / 2).copied().unwrap_or(f64::NAN),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total: u64 = env_or("TENANTKIT_BENCH_EVENTS", 10_000_000);
    let clients: usize = env_or("TENANTKIT_BENCH_CLIENTS", 16);
    let copy_rows: usize = env_or("TENANTKIT_BENCH_COPY_ROWS", 1_000_000);
    let writers: usize = env_or(
        "TENANTKIT_BENCH_WRITERS",
        tenantkit_analytics::IngestConfig::default().writers,
    );

    let (owner_url, config) =
        common::migrated_database("tenantkit_bench_analytics", SECRET, KEY).await?;
    let dir = tempfile::tempdir()?;

    // Tenants, each with an owner and a token.
    let db = tenantkit_server::open_runtime_db(&config).await?;
    let keys = tenantkit_server::load_keys(&config)?;
    let mut tenants = Vec::with_capacity(TENANTS);
    let seeding = Instant::now();
    for i in 0..TENANTS {
        let (tenant, _) = tenantkit_server::create_tenant(
            &db,
            &NewTenant {
                name: format!("Bench {i}"),
                subdomain: format!("bench-{i}"),
            },
            Some(format!("owner{i}@bench.test")),
            &Actor::System,
        )
        .await?;
        let ctx = db.resolve_id(tenant.id).await?.expect("just created");
        let token = tenantkit_server::issue_user_token(&db, &keys, &ctx, None, None, 7200).await?;
        tenants.push(Tenant {
            id: tenant.id.to_string(),
            token,
        });
    }
    println!(
        "{TENANTS} tenants with owners made in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // The server, a release build in its own process.
    let port = common::free_port()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let (mut server, base) = common::serve(
        dir.path(),
        port,
        &format!(
            "{}\n[analytics]\nwriters = {writers}\n",
            common::server_config(port, &owner_url, SECRET, KEY)
        ),
        &http,
    )
    .await?;
    let pid = server.id();

    // Ingestion: live traffic (timestamps of the last minute), then the
    // backfill of the rest of the 30 days.
    let tenants = Arc::new(tenants);
    let live_events = (total / 5).max(BATCH as u64);
    println!(
        "server pid {pid}; {writers} analytics writers; {clients} clients, batches of {BATCH}"
    );
    let live = ingest(&http, &base, &tenants, clients, live_events, 60, pid, 0).await;
    let backfill = ingest(
        &http,
        &base,
        &tenants,
        clients,
        total.saturating_sub(live_events),
        30 * 24 * 3600 - 3600,
        pid,
        live_events / BATCH as u64,
    )
    .await;
    let ingested = live.events + backfill.events;
    let rss_peak = rss_mib(pid, "VmHWM:").unwrap_or(f64::NAN);

    // A raw COPY of rows of the same shape, as the owner, in the same run.
    let owner = sqlx::PgPool::connect(&owner_url).await?;
    let copy_started;
    {
        let mut conn = owner.acquire().await?;
        let mut rng = Rng(42);
        let now = Utc::now();
        let tenant = &tenants[0].id;
        let mut copy = conn
            .copy_in_raw(
                "COPY events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) FROM STDIN",
            )
            .await?;
        copy_started = Instant::now();
        let mut chunk = String::with_capacity(1 << 20);
        let received = now.to_rfc3339_opts(SecondsFormat::Micros, true);
        for i in 0..copy_rows {
            let at = (now - chrono::Duration::seconds(rng.below(30 * 24 * 3600 - 3600) as i64))
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let _ = writeln!(
                chunk,
                "{tenant}\t{at}\t{}\tpage_view\tu{}\t/p/{}\t{{}}\t{received}",
                uuid::Uuid::now_v7(),
                rng.below(BIG_USERS),
                i % 50
            );
            if chunk.len() > (1 << 20) - 512 {
                copy.send(chunk.as_bytes()).await?;
                chunk.clear();
            }
        }
        copy.send(chunk.as_bytes()).await?;
        copy.finish().await?;
    }
    let copy_rate = copy_rows as f64 / copy_started.elapsed().as_secs_f64();

    // Queries, over HTTP, closed loop.
    let mut query_rows = Vec::new();
    let queries = [
        ("summary (30 days)", "/analytics/summary".to_owned()),
        (
            "events per day (30)",
            "/analytics/timeseries?metric=events&interval=day".to_owned(),
        ),
        (
            "api_calls per hour (720)",
            "/analytics/timeseries?metric=api_calls&interval=hour".to_owned(),
        ),
        (
            "dau per day (30)",
            "/analytics/timeseries?metric=dau&interval=day".to_owned(),
        ),
        (
            "feature:feature-7 per day",
            "/analytics/timeseries?metric=feature:feature-7&interval=day".to_owned(),
        ),
        (
            "events per day, Asia/Tokyo",
            "/analytics/timeseries?metric=events&interval=day&tz=Asia/Tokyo".to_owned(),
        ),
    ];
    for (label, path) in &queries {
        for big in [true, false] {
            let mut lat = Vec::with_capacity(200);
            for i in 0..200usize {
                let tenant = if big {
                    &tenants[0]
                } else {
                    &tenants[1 + (i * 37) % (TENANTS - 1)]
                };
                let sent = Instant::now();
                let res = http
                    .get(format!("{base}{path}"))
                    .header("x-tenant-id", &tenant.id)
                    .bearer_auth(&tenant.token)
                    .send()
                    .await?;
                assert_eq!(res.status(), 200, "{path}");
                res.bytes().await?;
                lat.push(sent.elapsed());
            }
            lat.sort();
            query_rows.push((
                format!(
                    "{label}, {}",
                    if big {
                        "big tenant (2M events, 100k users)"
                    } else {
                        "small tenants"
                    }
                ),
                percentile(&lat, 0.5),
                percentile(&lat, 0.95),
                percentile(&lat, 0.99),
            ));
        }
    }
    let big_summary: serde_json::Value = http
        .get(format!("{base}/analytics/summary"))
        .header("x-tenant-id", &tenants[0].id)
        .bearer_auth(&tenants[0].token)
        .send()
        .await?
        .json()
        .await?;
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&owner)
        .await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&owner)
            .await?;
    server.kill()?;
    server.wait()?;

    println!();
    println!(
        "## Analytics, PostgreSQL, release build, {} ({} cores)",
        Utc::now().date_naive(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "events in the database: {stored} (ingested over HTTP {ingested}, raw COPY {copy_rows}); database size {size}"
    );
    println!(
        "big tenant summary: events {}, dau {}, mau {}",
        big_summary["events"], big_summary["dau"], big_summary["mau"]
    );
    println!();
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    let rate = live.rate;
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "| ingestion over HTTP, durably acknowledged, live (timestamps of the last minute; {} events, {clients} clients, batches of {BATCH}) | {rate:.0} events/s | ≥ {TARGET_EVENTS_PER_SEC:.0} events/s: {} |",
        live.events,
        met(rate >= TARGET_EVENTS_PER_SEC)
    );
    println!(
        "| raw COPY of the same rows into the same table (no rollups, one connection) | {copy_rate:.0} rows/s | ours ≥ ½ of it ({:.0}): {} |",
        copy_rate / 2.0,
        met(rate >= copy_rate / 2.0)
    );
    println!(
        "| ingestion, backfill (timestamps spread over 30 days, so nearly every event adds rollup rows; {} events) | {:.0} events/s | (no target) |",
        backfill.events, backfill.rate
    );
    for (phase, p) in [("live", &live), ("backfill", &backfill)] {
        println!(
            "| ingest request latency p50 / p99, {phase} | {:.1} / {:.1} ms | (group commit: 50 ms interval) |",
            p.p50, p.p99
        );
        println!(
            "| 503 answers (buffer full, retried), {phase} | {} | |",
            p.refused
        );
        println!(
            "| server RSS during ingestion, {phase}: median | {:.0} MiB | bounded (buffer 50,000 events) |",
            p.rss_median
        );
    }
    println!("| server peak RSS (VmHWM), whole run | {rss_peak:.0} MiB | |");
    for (label, p50, p95, p99) in &query_rows {
        println!(
            "| {label}: p50 / p95 / p99 | {p50:.1} / {p95:.1} / {p99:.1} ms | p95 < {TARGET_P95_MS:.0} ms {} (floor {FLOOR_QUERY_MS:.0} ms) |",
            met(*p95 < TARGET_P95_MS)
        );
    }
    Ok(())
}
