//! `tenantkit-loadtest`: loads a tenantkit deployment the way a busy SaaS
//! platform is loaded, and writes `docs/load-test-report.md`.
//!
//! ```text
//! cargo run --release -p tenantkit-e2e --bin tenantkit-loadtest
//! ```
//!
//! By default it builds and starts the reference server itself (release
//! build, on a fresh PostgreSQL database, loopback only), seeds 10,000
//! tenants through the API, and runs every scenario: the API mix at a fixed
//! arrival rate beside `pgbench` running the same SQL, analytics at 1M and
//! 10M events, webhooks at 10,000 deliveries a minute and then rising, and
//! the same again on two servers and two workers sharing the database. With
//! `--url` it loads a deployment someone else runs. See `docs/load-testing.md`.

mod analytics;
mod api;
mod chart;
mod cluster;
mod engine;
mod reference;
mod report;
mod seed;
mod webhooks;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::{
    cluster::{Cluster, Sampler, Start},
    report::{Results, ScaleOut, WebhookResults},
    seed::{Api, Tenant},
};

/// Loads a tenantkit deployment and writes a report.
#[derive(Debug, Parser)]
#[command(name = "tenantkit-loadtest", version)]
struct Args {
    /// Scenarios to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenarios: Vec<Scenario>,
    /// Load this deployment instead of starting one (repeat for several
    /// servers; two or more for `scale-out`). Requires `--jwt-secret`.
    #[arg(long)]
    url: Vec<String>,
    /// The HS256 secret the deployment at `--url` verifies tokens with (the
    /// tool mints a platform-admin token to seed, and owners' tokens).
    #[arg(long, env = "TENANTKIT_LOADTEST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PostgreSQL superuser/owner URL. Without `--url`: the server the fresh
    /// database is made on. With `--url`: the deployment's database, only
    /// watched (connections) and read (retries); optional.
    #[arg(long)]
    pg_url: Option<String>,
    /// The database made anew for the run (without `--url`).
    #[arg(long, default_value = "tenantkit_loadtest")]
    database: String,
    /// The `tenantkit-server` binary (default: built by cargo beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Tenants seeded.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Members seeded per tenant (besides its owner).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Tenants the API mix runs over.
    #[arg(long, default_value_t = 1_000)]
    api_tenants: usize,
    /// The API mix's arrival rate, requests/s.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Seconds of the API mix (after a 5 s warm-up).
    #[arg(long, default_value_t = 60)]
    api_secs: u64,
    /// Seconds each side of the database-vs-server reference runs.
    #[arg(long, default_value_t = 15)]
    reference_secs: u64,
    /// Events stored at the end of the analytics scenario (queries are also
    /// measured at 1M on the way).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Tenants the events go to (one big one gets a fifth).
    #[arg(long, default_value_t = 100)]
    analytics_tenants: usize,
    /// Analytics queries per second, and for how long at each size.
    #[arg(long, default_value_t = 20.0)]
    query_rate: f64,
    #[arg(long, default_value_t = 30)]
    query_secs: u64,
    /// Tenants with a webhook endpoint.
    #[arg(long, default_value_t = 100)]
    webhook_tenants: usize,
    /// The sustained webhook rate (messages/min) and for how long.
    #[arg(long, default_value_t = 10_000.0)]
    webhooks_per_min: f64,
    #[arg(long, default_value_t = 300)]
    webhook_secs: u64,
    /// How webhooks are published: by the API's own changes
    /// (`PATCH /users/{id}`) or over HTTP (`POST /webhooks/messages`).
    #[arg(long, value_enum, default_value = "patch")]
    webhook_publish: webhooks::Publish,
    /// The rising steps after it (messages/min), each this long; the ramp
    /// stops at the first step not kept up with.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "20000,40000,80000,120000"
    )]
    webhook_steps: Vec<f64>,
    #[arg(long, default_value_t = 60)]
    step_secs: u64,
    /// Seconds of the webhook period on the scale-out deployment.
    #[arg(long, default_value_t = 120)]
    scale_out_webhook_secs: u64,
    /// Small settings for a quick try (200 tenants, 10 s phases, 200k events).
    #[arg(long)]
    quick: bool,
    /// Where the report goes; charts go to `images/` beside it.
    #[arg(long, default_value = "docs/load-test-report.md")]
    report: PathBuf,
}

/// What can be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The API mix and the database reference.
    Api,
    /// Ingestion and queries at 1M and 10M events.
    Analytics,
    /// Sustained webhook deliveries, then the maximum.
    Webhooks,
    /// The API mix and webhooks on two servers and two workers.
    ScaleOut,
    /// Every scenario.
    All,
}

impl Args {
    fn wants(&self, s: Scenario) -> bool {
        self.scenarios.contains(&s) || self.scenarios.contains(&Scenario::All)
    }

    fn apply_quick(&mut self) {
        if self.quick {
            self.tenants = 200;
            self.api_tenants = 100;
            self.rate = 200.0;
            self.api_secs = 10;
            self.reference_secs = 5;
            self.events = 200_000;
            self.analytics_tenants = 20;
            self.query_secs = 10;
            self.webhook_tenants = 20;
            self.webhooks_per_min = 3_000.0;
            self.webhook_secs = 20;
            self.webhook_steps = vec![6_000.0, 12_000.0];
            self.step_secs = 10;
            self.scale_out_webhook_secs = 20;
        }
    }
}

/// The seeded tenants, by use.
struct Tenants {
    api: Arc<Vec<Tenant>>,
    webhooks: Arc<Vec<Tenant>>,
    analytics: Arc<Vec<Tenant>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.apply_quick();
    anyhow::ensure!(
        args.api_tenants + args.webhook_tenants + args.analytics_tenants <= args.tenants,
        "--tenants must cover --api-tenants + --webhook-tenants + --analytics-tenants"
    );
    anyhow::ensure!(
        args.analytics_tenants >= 2,
        "--analytics-tenants must be at least 2"
    );
    let remote = !args.url.is_empty();
    let pg_url = match (&args.pg_url, remote) {
        (Some(url), _) => Some(url.clone()),
        (None, false) => Some("postgres://postgres@127.0.0.1:5432/test".to_owned()),
        (None, true) => None,
    };
    let binary = if remote {
        PathBuf::new()
    } else {
        server_binary(args.server_bin.as_deref())?
    };
    let mut results = Results::new(
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        remote,
    );
    let mut tenants: Option<Tenants> = None;
    let mut rig: Option<webhooks::Rig> = None;

    let single = args.wants(Scenario::Api)
        || args.wants(Scenario::Analytics)
        || args.wants(Scenario::Webhooks);
    if single {
        let cluster = if remote {
            Cluster::remote(args.url[..1].to_vec(), secret(&args)?, pg_url.clone())?
        } else {
            println!(
                "starting one server (release build) on a fresh database `{}`",
                args.database
            );
            Cluster::start(Start {
                binary: &binary,
                pg_url: pg_url.as_deref().expect("set without --url"),
                database: &args.database,
                servers: 1,
                workers: 0,
                fresh: true,
            })
            .await?
        };
        results.machine.fill(cluster.admin_url.as_deref()).await;
        let api = Api::new(&cluster.bases)?;
        let seeded = seed_tenants(&cluster, &api, &args, &mut results).await?;

        if args.wants(Scenario::Api) {
            println!(
                "scenario 1: the API mix, {} req/s over {} tenants for {} s",
                args.rate,
                seeded.api.len(),
                args.api_secs
            );
            let sampler = Sampler::start(&cluster).await?;
            let run =
                api::run(&api, seeded.api.clone(), args.rate, args.api_secs, 0, "api").await?;
            results.api = Some((run, sampler.peaks()));
            sampler.stop();
            if let Some(admin_url) = cluster.admin_url.as_deref() {
                println!("reference: pgbench on GET /users's SQL, then the server saturated");
                results.reference = Some(
                    reference::measure(
                        &api,
                        &seeded.api[0],
                        admin_url,
                        "tenantkit_app",
                        args.reference_secs,
                    )
                    .await?,
                );
            }
        }
        if args.wants(Scenario::Analytics) {
            let sizes: Vec<u64> = if args.events > 1_000_000 {
                vec![1_000_000, args.events]
            } else {
                vec![args.events]
            };
            println!("scenario 2: analytics, ingesting up to {:?} events", sizes);
            let sampler = Sampler::start(&cluster).await?;
            let at = analytics::run(
                &api,
                &seeded.analytics,
                &sizes,
                args.query_rate,
                args.query_secs,
            )
            .await?;
            results.analytics = Some((at, sampler.peaks()));
            sampler.stop();
        }
        if args.wants(Scenario::Webhooks) {
            println!(
                "scenario 3: webhooks across {} tenants",
                seeded.webhooks.len()
            );
            let r = webhooks::Rig::start(
                &api,
                &seeded.webhooks,
                0..seeded.webhooks.len(),
                args.webhook_publish,
            )
            .await?;
            let sampler = Sampler::start(&cluster).await?;
            let w = webhook_scenario(
                &api,
                &seeded.webhooks,
                &r,
                &args,
                cluster.admin_url.as_deref(),
            )
            .await?;
            results.webhooks = Some((w, sampler.peaks()));
            sampler.stop();
            rig = Some(r);
        }
        results.lifetime_rss.extend(cluster.lifetime_peak_rss());
        cluster.stop().await;
        tenants = Some(seeded);
    }

    if args.wants(Scenario::ScaleOut) {
        let cluster = if remote {
            if args.url.len() < 2 {
                bail!(
                    "scale-out against --url needs two or more --url (their workers are yours to run)"
                );
            }
            Cluster::remote(args.url.clone(), secret(&args)?, pg_url.clone())?
        } else {
            println!("scenario 4: two servers and two workers on one database");
            Cluster::start(Start {
                binary: &binary,
                pg_url: pg_url.as_deref().expect("set without --url"),
                database: &args.database,
                servers: 2,
                workers: 2,
                fresh: tenants.is_none(),
            })
            .await?
        };
        if !single {
            results.machine.fill(cluster.admin_url.as_deref()).await;
        }
        let api = Api::new(&cluster.bases)?;
        let seeded = match tenants.take() {
            Some(t) => t,
            None => seed_tenants(&cluster, &api, &args, &mut results).await?,
        };
        let r = match rig.take() {
            Some(r) => r,
            None => {
                webhooks::Rig::start(
                    &api,
                    &seeded.webhooks,
                    0..seeded.webhooks.len(),
                    args.webhook_publish,
                )
                .await?
            }
        };
        let sampler = Sampler::start(&cluster).await?;
        println!(
            "scale-out: the API mix over {} servers",
            cluster.bases.len()
        );
        let api_run = api::run(
            &api,
            seeded.api.clone(),
            args.rate,
            args.api_secs,
            1 << 36,
            "scale-out api",
        )
        .await?;
        let period = webhooks::period(
            &api,
            &seeded.webhooks,
            &r,
            args.webhooks_per_min,
            args.scale_out_webhook_secs,
            60,
            "scale-out webhooks",
        )
        .await;
        let (retries, dead) =
            webhooks::failures(&api, &seeded.webhooks, &r, cluster.admin_url.as_deref()).await?;
        results.scale_out = Some(ScaleOut {
            servers: cluster.bases.len(),
            workers: cluster
                .pids()
                .iter()
                .filter(|(n, _)| n.starts_with("worker"))
                .count(),
            api: api_run,
            webhooks: period,
            retries,
            dead_letters: dead,
            peaks: sampler.peaks(),
        });
        sampler.stop();
        for (name, mib) in cluster.lifetime_peak_rss() {
            results
                .lifetime_rss
                .insert(format!("scale-out {name}"), mib);
        }
        cluster.stop().await;
        r.stop();
    } else if let Some(r) = rig {
        r.stop();
    }

    let written = report::write(&args.report, &results)?;
    println!("{}", results.summary());
    println!("report written to {}", written.display());
    Ok(())
}

fn secret(args: &Args) -> anyhow::Result<&str> {
    args.jwt_secret
        .as_deref()
        .context("--url needs --jwt-secret (or TENANTKIT_LOADTEST_JWT_SECRET)")
}

/// Seeds the tenants and splits them by use.
async fn seed_tenants(
    cluster: &Cluster,
    api: &Api,
    args: &Args,
    results: &mut Results,
) -> anyhow::Result<Tenants> {
    println!(
        "seeding {} tenants, each with an owner, {} members and an API key, through the API",
        args.tenants, args.members
    );
    let (mut all, took) = seed::seed(
        cluster,
        api,
        &seed::Plan {
            tenants: args.tenants,
            members_per_tenant: args.members.max(1),
            concurrency: 16,
        },
    )
    .await?;
    results.seeding = Some(report::Seeding {
        tenants: args.tenants,
        members: args.members.max(1),
        took,
    });
    let rest = all.split_off(args.api_tenants);
    let mut rest = rest.into_iter();
    let webhooks: Vec<Tenant> = rest.by_ref().take(args.webhook_tenants).collect();
    let analytics: Vec<Tenant> = rest.take(args.analytics_tenants).collect();
    Ok(Tenants {
        api: Arc::new(all),
        webhooks: Arc::new(webhooks),
        analytics: Arc::new(analytics),
    })
}

/// The sustained period, then the rising steps until one is not kept up.
async fn webhook_scenario(
    api: &Api,
    tenants: &Arc<Vec<Tenant>>,
    rig: &webhooks::Rig,
    args: &Args,
    admin_url: Option<&str>,
) -> anyhow::Result<WebhookResults> {
    let sustained = webhooks::period(
        api,
        tenants,
        rig,
        args.webhooks_per_min,
        args.webhook_secs,
        120,
        "webhooks",
    )
    .await;
    let mut steps = Vec::new();
    for &per_min in &args.webhook_steps {
        let step = webhooks::period(
            api,
            tenants,
            rig,
            per_min,
            args.step_secs,
            60,
            &format!("{per_min}/min"),
        )
        .await;
        let kept_up = step.kept_up(report::KEPT_UP_WITHIN_SECS) && step.publish_failed == 0;
        steps.push(step);
        if !kept_up {
            break;
        }
        // Let the queue empty between steps.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (retries, dead_letters) = webhooks::failures(api, tenants, rig, admin_url).await?;
    Ok(WebhookResults {
        publish: rig.publish,
        sustained,
        steps,
        retries,
        dead_letters,
    })
}

/// The `tenantkit-server` binary: `--server-bin`, or the one cargo builds
/// beside this executable (built now when run through cargo).
fn server_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("this executable's folder")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "tenantkit-server",
            "--bin",
            "tenantkit-server",
        ]);
        // `cargo run` describes this package in the environment; build
        // scripts that watch those variables would rebuild every time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
            {
                build.env_remove(name.as_ref());
            }
        }
        if dir.ends_with("release") {
            build.arg("--release");
        }
        println!(
            "building tenantkit-server ({})",
            if dir.ends_with("release") {
                "release"
            } else {
                "debug"
            }
        );
        anyhow::ensure!(
            build.status()?.success(),
            "building tenantkit-server failed"
        );
    }
    let binary = dir.join("tenantkit-server");
    anyhow::ensure!(
        binary.exists(),
        "{} not found: build it (cargo build --release -p tenantkit-server) or pass --server-bin",
        binary.display()
    );
    Ok(binary)
}
