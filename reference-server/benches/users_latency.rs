//! `GET /users` latency under open-loop load, beside its target.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench users_latency
//! ```
//!
//! Starts the server (release build) on a fresh PostgreSQL database, migrated
//! by `migrate` and served as the runtime role, creates a tenant with 20
//! users, and sends `GET /users` at a fixed rate (default 1,000 req/s for
//! 30 s after a 3 s warm-up) whatever the answers' speed: open loop, each
//! latency measured from when the request was due (latency correction, as
//! `oha --latency-correction` or wrk2 do). Prints p50/p95/p99/max beside the
//! target (p99 < 5 ms).
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (an owner/superuser
//! URL, default `postgres://postgres@127.0.0.1:5432/test`),
//! `TENANTKIT_BENCH_RATE` (req/s), `TENANTKIT_BENCH_SECS`;
//! `TENANTKIT_BENCH_ISSUER=1` authenticates with an access token of a real
//! OpenID provider on loopback (npm's oidc-provider, RS256, key cached)
//! instead of a token of the server's own; `TENANTKIT_BENCH_ISSUER=tenant`
//! with one of the tenant's own provider (single sign-on). To measure
//! another server (an older build, say), set `TENANTKIT_BENCH_URL`,
//! `TENANTKIT_BENCH_TOKEN` and `TENANTKIT_BENCH_TENANT`: nothing is started.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

const TARGET_P99_MS: f64 = 5.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server to load: its base URL, a token and the tenant to name.
struct Target {
    base: String,
    token: String,
    tenant: String,
    _running: Option<(
        tenantkit_server::Running,
        tempfile::TempDir,
        Option<tenantkit::testing::oidc::TestProvider>,
    )>,
}

async fn start_server() -> anyhow::Result<Target> {
    let admin = std::env::var("TENANTKIT_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::PgPool::connect(&admin).await?;
    let name = "tenantkit_bench_users";
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    }
    pool.close().await;
    let (prefix, _) = admin.rsplit_once('/').expect("a database URL");
    let dir = tempfile::tempdir()?;
    let mut config = tenantkit_server::config::Config::default();
    config.database.url = Some(format!("{prefix}/{name}"));
    config.database.data_dir = dir.path().to_owned();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.auth.jwt_secret = Some("bench-secret-bench-secret-bench-secret".to_owned().into());
    config.webhooks.secret_keys = vec![
        "dGVuYW50a2l0LWJlbmNoLXVzZXJzLWtleS0zMi1ieXQ="
            .to_owned()
            .into(),
    ];
    config.rate_limit.per_tenant_per_minute = 10_000_000;
    config.webhooks.worker = std::env::var("BENCH_NO_WORKER").is_err();
    config.rate_limit.per_ip_per_minute = 10_000_000;
    tenantkit_server::migrate(&config).await?;
    // The tenant and its users first, so a provider's tokens can name them.
    let db = tenantkit_server::open_runtime_db(&config).await?;
    let (tenant, _) = tenantkit_server::create_tenant(
        &db,
        &tenantkit::NewTenant {
            name: "Bench".into(),
            subdomain: "bench".into(),
        },
        Some("owner@bench.test".into()),
        &tenantkit::audit::Actor::System,
    )
    .await?;
    let ctx = db.resolve_id(tenant.id).await?.expect("created");
    let mut tx = db.begin(&ctx).await?;
    for i in 1..20 {
        tx.create_user(&tenantkit::NewUser {
            email: format!("user{i}@bench.test"),
            role: tenantkit::Role::Member,
        })
        .await?;
    }
    tx.commit().await?;
    // With TENANTKIT_BENCH_ISSUER set, the token is an RS256 access token
    // of a real OpenID provider on loopback (npm's oidc-provider), verified
    // with its cached key; else one this server issues (HS256).
    // `TENANTKIT_BENCH_ISSUER=tenant`: the provider is the tenant's own
    // (single sign-on, registered for the tenant); any other value: a
    // trusted issuer of the configuration.
    let issuer_mode = std::env::var("TENANTKIT_BENCH_ISSUER").ok();
    let provider = if let Some(mode) = issuer_mode {
        use tenantkit::testing::oidc::{AUDIENCE, TestClient, TestProvider};
        let claims =
            serde_json::json!({ "tenant": tenant.id.to_string(), "email": "owner@bench.test" });
        let provider = TestProvider::start(
            &[("rs1", "RS256")],
            &[TestClient::new("owner", claims).lasting(3600)],
        )
        .await;
        if mode == "tenant" {
            config.auth.sso.allow_http = true;
            config.auth.sso.allow_networks = vec!["127.0.0.1/32".into()];
            let settings: tenantkit::SsoSettings = serde_json::from_value(
                serde_json::json!({ "issuer": provider.issuer, "audience": AUDIENCE }),
            )?;
            let mut tx = db.begin(&ctx).await?;
            tx.put_sso(&settings).await?;
            tx.commit().await?;
        } else {
            let mut issuer = provider.issuer_config("bench");
            issuer.key_cache_min_secs = 300;
            issuer.key_cache_max_secs = 3600;
            issuer.leeway_secs = 30;
            config.auth.issuers = vec![issuer];
        }
        Some(provider)
    } else {
        None
    };
    let running = tenantkit_server::start(config.clone()).await?;
    let token = match &provider {
        Some(provider) => provider.token("owner").await,
        None => {
            let keys = tenantkit_server::load_keys(&config)?;
            tenantkit_server::issue_user_token(&running.db, &keys, &ctx, None, None, 3600).await?
        }
    };
    Ok(Target {
        base: format!("http://{}", running.addr),
        token,
        tenant: "bench".into(),
        _running: Some((running, dir, provider)),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: u64 = env_or("TENANTKIT_BENCH_RATE", 1000);
    let secs: u64 = env_or("TENANTKIT_BENCH_SECS", 30);
    let target = match std::env::var("TENANTKIT_BENCH_URL") {
        Ok(base) => Target {
            base,
            token: std::env::var("TENANTKIT_BENCH_TOKEN")?,
            tenant: std::env::var("TENANTKIT_BENCH_TENANT")?,
            _running: None,
        },
        Err(_) => start_server().await?,
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http::<Empty<Bytes>>();
    let url = format!("{}/users", target.base);
    let auth = format!("Bearer {}", target.token);
    let tenant = target.tenant.clone();
    let request = move || {
        http::Request::get(&url)
            .header("authorization", &auth)
            .header("x-tenant-id", &tenant)
            .body(Empty::<Bytes>::new())
            .expect("a request")
    };

    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let runtime = tokio::runtime::Handle::current();
    for (phase, seconds, record) in [("warm-up", 3, false), ("measure", secs, true)] {
        let total = rate * seconds;
        // Paced by an OS thread (microsecond sleeps), not by tokio's
        // millisecond timer, so a request leaves when it is due.
        let pacer = {
            let (runtime, request) = (runtime.clone(), request.clone());
            let (client, latencies, errors) = (client.clone(), latencies.clone(), errors.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(total as usize);
                for i in 0..total {
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (client, req) = (client.clone(), request());
                    let (latencies, errors) = (latencies.clone(), errors.clone());
                    tasks.push(runtime.spawn(async move {
                        let ok = match client.request(req).await {
                            Ok(res) => {
                                res.status() == 200 && res.into_body().collect().await.is_ok()
                            }
                            Err(_) => false,
                        };
                        // From when the request was due, not when it was sent.
                        let latency = Instant::now() - due;
                        if record {
                            if ok {
                                latencies.lock().expect("not poisoned").push(latency);
                            } else {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                }
                (tasks, start)
            })
        };
        let (tasks, start) = tokio::task::spawn_blocking(move || pacer.join())
            .await?
            .expect("the pacer runs");
        for t in tasks {
            t.await?;
        }
        eprintln!(
            "{phase}: {total} requests in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }

    let mut lat = latencies.lock().expect("not poisoned").clone();
    lat.sort();
    let errors = errors.load(Ordering::Relaxed);
    anyhow::ensure!(!lat.is_empty(), "no successful request");
    println!(
        "GET /users, open loop at {rate} req/s for {secs} s ({} ok, {errors} failed)",
        lat.len()
    );
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    println!("| p50 | {:.2} ms | |", percentile(&lat, 0.50));
    println!("| p95 | {:.2} ms | |", percentile(&lat, 0.95));
    let p99 = percentile(&lat, 0.99);
    let verdict = if p99 < TARGET_P99_MS { "met" } else { "MISSED" };
    println!("| p99 | {p99:.2} ms | < {TARGET_P99_MS} ms ({verdict}) |");
    println!("| max | {:.2} ms | |", percentile(&lat, 1.0));
    println!("| failed requests | {errors} | 0 |");
    Ok(())
}
