//! `POST /analytics/events` against the real binary, killed with SIGKILL
//! while clients send batches: every batch that was acknowledged (202) is
//! in the database whole after the crash, no batch is there in part, the
//! rollups agree with the raw events, and the restarted server serves them.

mod common;

use std::{
    collections::HashMap,
    process::Child,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tenantkit::{Db, NewTenant, NewUser, Role, TenantContext, audit::Actor};
use tenantkit_server::config::Config;

const SECRET: &str = "ingest-secret-ingest-secret-ingest!!";
const KEY: &str = "dGVuYW50a2l0LWluZ2VzdC10ZXN0LWtleS0zMmJ5dGU=";
const BATCH: usize = 200;

struct Setup {
    dir: tempfile::TempDir,
    config: Config,
    config_file: std::path::PathBuf,
    port: u16,
    database: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Setup {
    async fn new(postgres: bool) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = Config::default();
        config.database.data_dir = dir.path().to_owned();
        config.auth.jwt_secret = Some(SECRET.to_owned().into());
        config.webhooks.secret_keys = vec![KEY.to_owned().into()];
        let mut database = None;
        let mut db_line = format!("data_dir = \"{}\"", dir.path().display());
        if postgres {
            let (name, owner_url) = common::create_database("tkin").await?;
            config.database.url = Some(owner_url.clone());
            tenantkit_server::migrate(&config).await.unwrap();
            db_line = format!("url = \"{owner_url}\"");
            database = Some(name);
        }
        let config_file = dir.path().join("tenantkit.toml");
        std::fs::write(
            &config_file,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\n{db_line}\n\n\
                 [auth]\njwt_secret = \"{SECRET}\"\n\n\
                 [rate_limit]\nper_tenant_per_minute = 1000000\nper_ip_per_minute = 1000000\n\n[webhooks]\nsecret_keys = [\"{KEY}\"]\nworker = false\n"
            ),
        )
        .unwrap();
        Some(Self {
            dir,
            config,
            config_file,
            port,
            database,
        })
    }

    fn serve(&self) -> Killed {
        Killed(self.spawn())
    }

    fn spawn(&self) -> Child {
        common::tenantkit_server(&self.config_file, self.dir.path(), &["serve"])
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(res) = http.get(self.url("/readyz")).send().await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become ready");
    }

    async fn drop_database(self) {
        if let Some(name) = &self.database {
            common::drop_database(name).await;
        }
    }
}

/// A server process, killed with SIGKILL when dropped (even by a failing test).
struct Killed(Child);

impl Killed {
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tenant with an owner, and a token for them.
async fn tenant(db: &Db, config: &Config) -> (TenantContext, String) {
    let sub = format!("in{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (tenant, _) = db
        .platform()
        .create_tenant_with_owner(
            &NewTenant {
                name: "Ingest".into(),
                subdomain: sub,
            },
            &NewUser {
                email: "owner@ingest.test".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await
        .unwrap();
    let ctx = db.resolve_id(tenant.id).await.unwrap().unwrap();
    let keys = tenantkit_server::load_keys(config).unwrap();
    let token = tenantkit_server::issue_user_token(db, &keys, &ctx, None, None, 600)
        .await
        .unwrap();
    (ctx, token)
}

/// Events per batch name, as stored.
async fn stored(db: &Db, ctx: &TenantContext) -> HashMap<String, i64> {
    let mut tx = db.begin(ctx).await.unwrap();
    let q = tx.query("SELECT name, COUNT(*) FROM events WHERE tenant_id = $1 AND event_type = 'feature_used' GROUP BY name");
    let rows: Vec<(String, i64)> = tx.fetch_all(q).await.unwrap();
    rows.into_iter().collect()
}

async fn acknowledged_events_survive_sigkill(postgres: bool) {
    let Some(setup) = Setup::new(postgres).await else {
        return;
    };
    let db = tenantkit_server::open_runtime_db(&setup.config)
        .await
        .unwrap();
    let (ctx, token) = tenant(&db, &setup.config).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut server = setup.serve();
    setup.wait_ready(&http).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..4 {
        let (http, url, token, tenant, acked) = (
            http.clone(),
            setup.url("/analytics/events"),
            token.clone(),
            ctx.id().to_string(),
            acked.clone(),
        );
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("c{client}-{i}");
                let events: Vec<Value> = (0..BATCH)
                    .map(|k| json!({ "event_type": "feature_used", "name": name, "user_id": format!("u{k}") }))
                    .collect();
                match http
                    .post(&url)
                    .header("x-tenant-id", &tenant)
                    .bearer_auth(&token)
                    .json(&events)
                    .send()
                    .await
                {
                    Ok(res) if res.status() == 202 => acked.lock().unwrap().push(name),
                    Ok(res) => panic!("unexpected {}: {:?}", res.status(), res.text().await),
                    // The server is gone: this batch was never acknowledged.
                    Err(e) => {
                        eprintln!("client {client} stops at batch {i}: {e}");
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill(); // SIGKILL, mid-stream
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 4,
        "only {} batches acknowledged before the kill",
        acked.len()
    );

    let stored = stored(&db, &ctx).await;
    for name in &acked {
        assert_eq!(
            stored.get(name),
            Some(&(BATCH as i64)),
            "acknowledged batch {name}"
        );
    }
    for (name, n) in &stored {
        assert_eq!(
            *n, BATCH as i64,
            "batch {name} is stored whole or not at all"
        );
    }
    let total: i64 = stored.values().sum();
    eprintln!(
        "{} batches acknowledged before SIGKILL, {} stored (committed, the answer lost)",
        acked.len(),
        stored.len() - acked.len()
    );

    // The restarted server serves what was stored, rollups included.
    let mut server = setup.serve();
    setup.wait_ready(&http).await;
    let summary: Value = http
        .get(setup.url("/analytics/summary"))
        .header("x-tenant-id", ctx.id().to_string())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Besides the batches, only `api_call` events (the layer counting requests).
    let events = summary["events"].as_i64().unwrap() - summary["api_calls"].as_i64().unwrap();
    assert_eq!(
        events, total,
        "the rollups agree with the raw events: {summary}"
    );
    // The batches' users, and the owner whose requests the layer counted.
    assert_eq!(summary["dau"], BATCH as i64 + 1, "{summary}");
    server.kill();
    db.close().await;
    setup.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_events_survive_sigkill() {
    acknowledged_events_survive_sigkill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_events_survive_sigkill() {
    acknowledged_events_survive_sigkill(true).await;
}
