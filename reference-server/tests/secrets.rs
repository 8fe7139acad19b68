//! No configured secret reaches the logs: a full run of the real binary on
//! PostgreSQL at debug level (every SQL statement logged), `migrate` with a
//! runtime password, tenant and token commands, then `serve` answering
//! users, webhooks, a signed Stripe event, platform routes and metrics;
//! every line it wrote is searched for every secret the configuration holds.

mod common;

use std::{
    io::Read,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

const JWT_SECRET: &str = "jwt-secret-7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c8e";
const OWNER_PASSWORD: &str = "owner-password-4d9e2b7a1c6f";
const RUNTIME_PASSWORD: &str = "runtime-password-8b3f6a2d9e1c";
const SEAL_KEY: &str = "c2VhbC1rZXktZm9yLXRoZS1zZWNyZXRzLXRlc3QtMzI=";
const STRIPE_KEY: &str = "sk_test_51secretstripekey0c7e3a9f2b";
const STRIPE_WEBHOOK_SECRET: &str = "whsec_secretwebhooksigning5e8a1d4b";

/// The binary with `args`, logging at debug level: whether it succeeded,
/// its standard output and its standard error (the log).
fn run(
    config_file: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let out = common::tenantkit_server_command(config_file, dir, args)
        .env("TENANTKIT_LOG", "debug")
        .output()
        .expect("tenantkit-server runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn no_configured_secret_is_ever_logged_at_debug_level() {
    let Some((name, owner_url)) = common::create_database("tksecrets").await else {
        return;
    };
    // The owner URL carries a password (trust authentication ignores it).
    let owner_url =
        owner_url.replacen("://postgres@", &format!("://postgres:{OWNER_PASSWORD}@"), 1);
    assert!(owner_url.contains(OWNER_PASSWORD), "{owner_url}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("tenantkit.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [database]\nurl = \"{owner_url}\"\nruntime_password = \"{RUNTIME_PASSWORD}\"\n\n\
             [auth]\njwt_secret = \"{JWT_SECRET}\"\n\n\
             [webhooks]\nsecret_keys = [\"{SEAL_KEY}\"]\nallow_http = true\n\
             allow_networks = [\"127.0.0.1/32\"]\n\n\
             [billing]\ndefault_plan = \"pro\"\nstripe_secret_key = \"{STRIPE_KEY}\"\n\
             stripe_webhook_secrets = [\"{STRIPE_WEBHOOK_SECRET}\"]\n\
             stripe_api_base = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();

    let mut logs = String::new();
    let mut step = |args: &[&str]| {
        let (ok, out, err) = run(&config_file, dir.path(), args);
        assert!(ok, "{args:?} failed:\n{err}");
        logs.push_str(&err);
        out
    };
    step(&["migrate"]);
    step(&[
        "tenant",
        "create",
        "--name",
        "Acme",
        "--subdomain",
        "acme",
        "--owner-email",
        "owner@acme.example",
    ]);
    let owner_token = step(&["token", "issue", "--tenant", "acme"])
        .trim()
        .to_owned();
    let admin_token = step(&["token", "issue", "--platform-admin", "--sub", "ops"])
        .trim()
        .to_owned();
    // The tokens are signed with the secret, not the secret: never logged either.
    let tokens = [owner_token.clone(), admin_token.clone()];

    let mut serve = common::tenantkit_server_command(&config_file, dir.path(), &["serve"])
        .env("TENANTKIT_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tenant = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .header("x-tenant-id", "acme")
            .bearer_auth(&owner_token)
    };
    let res = tenant(reqwest::Method::POST, "/users")
        .json(&json!({ "email": "member@acme.example", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = tenant(reqwest::Method::POST, "/webhooks")
        .json(&json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["user.created"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let endpoint: Value = res.json().await.unwrap();
    let endpoint_secret = endpoint["secret"].as_str().unwrap().to_owned();
    let res = tenant(reqwest::Method::POST, "/api-keys")
        .json(&json!({ "name": "robot", "scopes": ["users:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let api_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = tenant(reqwest::Method::GET, "/audit-logs")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let event = json!({
        "id": "evt_secrets", "object": "event", "type": "customer.created",
        "created": chrono::Utc::now().timestamp(), "livemode": false,
        "data": { "object": { "id": "cus_1", "object": "customer" } }
    })
    .to_string();
    let signature = tenantkit_billing::signature::sign(
        event.as_bytes(),
        &STRIPE_WEBHOOK_SECRET.to_owned().into(),
        chrono::Utc::now().timestamp(),
    );
    let res = http
        .post(format!("{base}/webhooks/stripe"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let res = http
        .get(format!("{base}/tenants"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Wrong credentials are logged as refusals, never echoed.
    let res = http
        .get(format!("{base}/users"))
        .header("x-tenant-id", "acme")
        .bearer_auth(format!("{JWT_SECRET}.x.y"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // SIGTERM: a graceful stop, so every buffered line is written.
    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    let mut served = String::new();
    serve
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut served)
        .unwrap();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut served)
        .unwrap();
    serve.wait().unwrap();
    logs.push_str(&served);

    // Not vacuous: statements (the runtime role's password change among
    // them) and requests were logged at debug level.
    assert!(logs.contains("DEBUG"), "no debug lines:\n{logs}");
    assert!(logs.contains("ALTER ROLE"), "statements are not logged");
    assert!(logs.contains("SCRAM-SHA-256$"), "the verifier was sent");
    assert!(logs.contains("/webhooks/stripe"), "requests are logged");

    let mut secrets: Vec<(&str, String)> = vec![
        ("auth.jwt_secret", JWT_SECRET.into()),
        ("the owner URL's password", OWNER_PASSWORD.into()),
        ("database.runtime_password", RUNTIME_PASSWORD.into()),
        ("webhooks.secret_keys", SEAL_KEY.into()),
        ("billing.stripe_secret_key", STRIPE_KEY.into()),
        (
            "billing.stripe_webhook_secrets",
            STRIPE_WEBHOOK_SECRET.into(),
        ),
        ("an endpoint's signing secret", endpoint_secret),
        ("an API key", api_key),
    ];
    secrets.extend(tokens.into_iter().map(|t| ("a token", t)));
    for (what, secret) in &secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line = logs[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = logs[at..].find('\n').map_or(logs.len(), |n| at + n);
            panic!("{what} is in the logs:\n{}", &logs[line..end]);
        }
    }
    common::drop_database(&name).await;
}
