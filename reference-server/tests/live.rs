//! `/ws/analytics` across processes: two real `tenantkit-server` processes
//! on one PostgreSQL database. Events ingested through one reach a stream
//! held by the other within 2 seconds, also right after PostgreSQL dropped
//! every listener's connection (notifications sent meanwhile are lost; the
//! hub reads every watched tenant again when its listener reconnects).

mod common;

use std::{
    path::PathBuf,
    process::Child,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tenantkit::{NewTenant, NewUser, Role, audit::Actor, testing};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

const SECRET: &str = "live-secret-live-secret-live-secret!!";
const KEY: &str = "dGVuYW50a2l0LWxpdmUtdGVzdC1rZXktMzJieXRlcyE=";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed when dropped (even by a failing test).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config_file(dir: &std::path::Path, name: &str, port: u16, url: &str) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\nurl = \"{url}\"\n\n\
             [auth]\njwt_secret = \"{SECRET}\"\n\n[webhooks]\nsecret_keys = [\"{KEY}\"]\nworker = false\n"
        ),
    )
    .unwrap();
    file
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    for _ in 0..300 {
        if let Ok(res) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} did not become ready");
}

/// Sums `counts.burst` of the updates until it reaches `want`; how long
/// after `since` that was.
async fn until_counted(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    want: u64,
    since: Instant,
) -> Duration {
    let mut seen = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an update within 10 s")
            .expect("the stream is open")
            .unwrap();
        if let Message::Text(text) = message {
            let update: Value = serde_json::from_str(text.as_str()).unwrap();
            if update["type"] == "update" {
                seen += update["counts"]["burst"].as_u64().unwrap_or(0);
                assert!(seen <= want, "counted {seen} of {want}: {update}");
                if seen == want {
                    return since.elapsed();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_events_ingested_by_one_process_reach_streams_of_another() {
    let Some((database, owner_url)) = common::create_database("tklive").await else {
        eprintln!("WARNING: PostgreSQL unreachable; cross-process live test SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = tenantkit_server::config::Config::default();
    config.database.url = Some(owner_url.clone());
    config.database.data_dir = dir.path().to_owned();
    config.auth.jwt_secret = Some(SECRET.to_owned().into());
    config.webhooks.secret_keys = vec![KEY.to_owned().into()];
    tenantkit_server::migrate(&config).await.unwrap();

    let (port_a, port_b) = (free_port(), free_port());
    let _a = Process(common::tenantkit_server(
        &config_file(dir.path(), "a", port_a, &owner_url),
        dir.path(),
        &["serve"],
    ));
    let _b = Process(common::tenantkit_server(
        &config_file(dir.path(), "b", port_b, &owner_url),
        dir.path(),
        &["serve"],
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    wait_ready(&http, port_a).await;
    wait_ready(&http, port_b).await;

    let db = tenantkit_server::open_runtime_db(&config).await.unwrap();
    let (tenant, _) = db
        .platform()
        .create_tenant_with_owner(
            &NewTenant {
                name: "Live".into(),
                subdomain: "live".into(),
            },
            &NewUser {
                email: "owner@live.test".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await
        .unwrap();
    let ctx = db.resolve_id(tenant.id).await.unwrap().unwrap();
    let keys = tenantkit_server::load_keys(&config).unwrap();
    let token = tenantkit_server::issue_user_token(&db, &keys, &ctx, None, None, 600)
        .await
        .unwrap();

    // The stream on B, following one type.
    let mut request = format!("ws://127.0.0.1:{port_b}/ws/analytics?types=burst")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-tenant-id", "live".parse().unwrap());
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("tenantkit.v1, bearer.{token}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let ready = ws.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("\"ready\""), "{ready:?}");

    let ingest = |n: usize| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let events: Vec<Value> = (0..n)
                .map(|i| json!({ "event_type": "burst", "user_id": format!("u{i}") }))
                .collect();
            let res = http
                .post(format!("http://127.0.0.1:{port_a}/analytics/events"))
                .header("x-tenant-id", "live")
                .bearer_auth(&token)
                .json(&events)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            Instant::now()
        }
    };

    // Through A, seen on B.
    let acked = ingest(50).await;
    let lag = until_counted(&mut ws, 50, acked).await;
    eprintln!("A → B: {lag:?} after the 202");
    assert!(lag < Duration::from_secs(2), "{lag:?}");

    // Every listener's connection dropped by PostgreSQL, events sent at
    // once: their notifications may be lost; the reconnect reads again.
    let admin = sqlx::PgPool::connect(&testing::admin_url()).await.unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = $1 AND query LIKE 'LISTEN%tenantkit_analytics%'",
    )
    .bind(&database)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(dropped.len(), 2, "one listener per process");
    let acked = ingest(30).await;
    let lag = until_counted(&mut ws, 30, acked).await;
    eprintln!("A → B across a lost listener: {lag:?} after the 202");
    assert!(lag < Duration::from_secs(2), "{lag:?}");

    drop(ws);
    admin.close().await;
    db.close().await;
    drop((_a, _b));
    common::drop_database(&database).await;
}
