//! `tenantkit-server worker` as real processes on one PostgreSQL database:
//! a worker killed with SIGKILL in the middle of deliveries loses nothing
//! (another process completes them once the leases expire), and two worker
//! processes together deliver every message exactly once.

mod common;

use std::{
    collections::HashMap,
    process::{Child, Command},
    time::Duration,
};

use tenantkit::{Db, NewTenant, audit::Actor, testing};
use tenantkit_server::config::Config;
use tenantkit_webhooks::{
    NewWebhook, Webhooks,
    testing::{Behaviour, Receiver},
};

const SECRET: &str = "worker-secret-worker-secret-worker!!";
const KEY: &str = "dGVuYW50a2l0LXdvcmtlci10ZXN0LWtleS0zMmJ5dGU=";

/// A fresh database migrated by `tenantkit-server migrate`, and a config
/// file for processes on it; `None` when PostgreSQL is not there (and not
/// required).
struct Setup {
    dir: tempfile::TempDir,
    config: Config,
    config_file: std::path::PathBuf,
    name: String,
}

impl Setup {
    async fn new() -> Option<Self> {
        let (name, owner_url) = common::create_database("tkwk").await?;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.url = Some(owner_url.clone());
        config.auth.jwt_secret = Some(SECRET.to_owned().into());
        config.webhooks.secret_keys = vec![KEY.to_owned().into()];
        config.webhooks.allow_http = true;
        config.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
        config.webhooks.lease_secs = 11;
        config.webhooks.deliveries_per_minute = 0;
        tenantkit_server::migrate(&config).await.unwrap();
        let config_file = dir.path().join("tenantkit.toml");
        std::fs::write(
            &config_file,
            format!(
                "[database]\nurl = \"{owner_url}\"\n\n[auth]\njwt_secret = \"{SECRET}\"\n\n\
                 [webhooks]\nsecret_keys = [\"{KEY}\"]\nallow_http = true\n\
                 allow_networks = [\"127.0.0.1/32\"]\nlease_secs = 11\ndeliveries_per_minute = 0\n"
            ),
        )
        .unwrap();
        Some(Self {
            dir,
            config,
            config_file,
            name,
        })
    }

    /// `tenantkit-server worker` on this database.
    fn worker(&self) -> Child {
        common::tenantkit_server(&self.config_file, self.dir.path(), &["worker"])
    }

    async fn runtime(&self) -> Db {
        tenantkit_server::open_runtime_db(&self.config)
            .await
            .unwrap()
    }

    async fn admin(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&testing::with_database(&testing::admin_url(), &self.name))
            .await
            .unwrap()
    }

    async fn drop_database(self) {
        common::drop_database(&self.name).await;
    }
}

/// A tenant with one endpoint at `url`, and `n` messages published to it.
async fn tenant_with_messages(db: &Db, webhooks: &Webhooks, url: String, n: usize) {
    let sub = format!("w{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let tenant = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: "Worker".into(),
                subdomain: sub,
            },
            &Actor::System,
        )
        .await
        .unwrap();
    let ctx = db.resolve_id(tenant.id).await.unwrap().unwrap();
    let mut tx = db.begin(&ctx).await.unwrap();
    webhooks
        .create(
            &mut tx,
            &NewWebhook {
                url,
                event_types: vec!["*".into()],
                description: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for i in 0..n {
        webhooks
            .publish(
                &mut tx,
                "user.created",
                tenantkit_webhooks::testing::user_data(i),
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Deliveries per state, counted as the owner.
async fn states(admin: &sqlx::PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT state, count(*) FROM webhook_queue GROUP BY state")
        .fetch_all(admin)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn distinct_ids(receiver: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for got in receiver.received(path) {
        *ids.entry(got.headers["webhook-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_loses_nothing() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let receiver = Receiver::start().await;
    receiver.script("in", Behaviour::Slow(Duration::from_secs(120)));
    let db = setup.runtime().await;
    let webhooks = tenantkit_server::webhooks::build(&setup.config).unwrap();
    tenant_with_messages(&db, &webhooks, receiver.url("in"), 20).await;
    let admin = setup.admin().await;

    let mut first = setup.worker();
    wait_until(
        "the first worker holds leases",
        Duration::from_secs(20),
        async || {
            let leased: i64 =
                sqlx::query_scalar("SELECT count(*) FROM webhook_queue WHERE lease_id IS NOT NULL")
                    .fetch_one(&admin)
                    .await
                    .unwrap();
            leased == 20
        },
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    receiver.script("in", Behaviour::Status(200));

    let mut second = setup.worker();
    wait_until(
        "every message delivered by the second worker",
        Duration::from_secs(60),
        async || states(&admin).await.get("succeeded") == Some(&20),
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let ids = distinct_ids(&receiver, "in");
    assert_eq!(ids.len(), 20, "every message arrived");
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM webhook_queue")
        .fetch_all(&admin)
        .await
        .unwrap();
    assert!(
        attempts.iter().all(|a| *a == 2),
        "the killed worker's claim counts as an attempt: {attempts:?}"
    );
    admin.close().await;
    db.close().await;
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_deliver_each_message_once() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let receiver = Receiver::start().await;
    let db = setup.runtime().await;
    let webhooks = tenantkit_server::webhooks::build(&setup.config).unwrap();
    for i in 0..5 {
        tenant_with_messages(&db, &webhooks, receiver.url(&format!("t{i}")), 100).await;
    }
    let admin = setup.admin().await;
    let (mut a, mut b) = (setup.worker(), setup.worker());
    wait_until("500 deliveries", Duration::from_secs(60), async || {
        states(&admin).await.get("succeeded") == Some(&500)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for child in [&mut a, &mut b] {
        // SIGTERM: graceful shutdown.
        Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
    }
    assert!(
        a.wait().unwrap().success() && b.wait().unwrap().success(),
        "graceful exits"
    );
    for i in 0..5 {
        let ids = distinct_ids(&receiver, &format!("t{i}"));
        assert_eq!(ids.len(), 100);
        assert!(
            ids.values().all(|n| *n == 1),
            "a message was delivered twice"
        );
    }
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(attempts, 500, "one attempt per delivery");
    admin.close().await;
    db.close().await;
    setup.drop_database().await;
}
