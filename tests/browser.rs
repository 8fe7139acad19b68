//! The dashboard in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver) by fantoccini, against the reference server on
//! SQLite and on PostgreSQL.
//!
//! It signs in with a token handed over in the URL fragment, checks that the
//! numbers shown are `/analytics/summary`'s, sends events through the API
//! and sees the live counter move within 3 seconds, then replays a
//! dead-lettered webhook delivery from the webhooks view and sees it
//! succeed. It saves a screenshot of each view under the target directory
//! (`TENANTKIT_UPDATE_SCREENSHOTS=1` also writes `docs/images/`).
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium
//! chromium-driver`, which `.ci/run` does); nothing is downloaded at test
//! time. Without them the test is skipped, except in CI, where it fails.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};
use tenantkit_e2e::{Backend, Server};
use tenantkit_webhooks::testing::{Behaviour, Receiver};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_on_sqlite() {
    dashboard(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_on_postgres() {
    dashboard(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_identity_provider_on_sqlite() {
    provider_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_identity_provider_on_postgres() {
    provider_sign_in(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_tenants_own_provider_on_sqlite() {
    tenant_provider_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_tenants_own_provider_on_postgres() {
    tenant_provider_sign_in(Backend::Postgres).await;
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        assert!(
            !required(),
            "CI needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})"
        );
        eprintln!("WARNING: {CHROMIUM} or {CHROMEDRIVER} missing; browser test SKIPPED");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Some(Driver { child, port })
}

/// Chromium, with `secure_origins` treated as https (the Web Crypto API
/// the provider sign-in needs exists only in secure contexts).
async fn browser(driver: &Driver, profile: &std::path::Path, secure_origins: &[&str]) -> Client {
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1500",
        // Tenants live at <subdomain>.example.test: send those to this machine.
        "--host-resolver-rules=MAP *.example.test 127.0.0.1",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("--user-data-dir={}", profile.display())])
    .chain((!secure_origins.is_empty()).then(|| {
        format!(
            "--unsafely-treat-insecure-origin-as-secure={}",
            secure_origins.join(",")
        )
    }))
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start Chromium: {e}"),
        }
    }
}

/// The value of `attribute` on `selector`, polled until `done` holds (or
/// panics after `within`, naming `what`).
async fn wait_for(
    c: &Client,
    selector: &str,
    attribute: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Ok(el) = c.find(Locator::Css(selector)).await
            && let Ok(Some(value)) = el.attr(attribute).await
        {
            if done(&value) {
                return value;
            }
            last = Some(value);
        }
        if Instant::now() > deadline {
            let error = match c.find(Locator::Css("#error")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!(
                "{what}: `{selector}` [{attribute}] is {last:?} after {within:?}; page error: {error:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var("TENANTKIT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

/// A webhook delivery to `receiver` dead-lettered for real: the worker
/// (with a clock the test moves through the retry schedule) fails it six
/// times against a `500`.
async fn dead_letter(
    s: &Server,
    t: &tenantkit_e2e::OwnedTenant,
    receiver: &Receiver,
) -> (
    String,
    Arc<AtomicI64>,
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    receiver.script("in", Behaviour::Status(500));
    let res = t
        .call(s, Method::POST, "/webhooks")
        .json(&json!({ "url": receiver.url("in"), "description": "browser test", "event_types": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let hook: Value = res.json().await.unwrap();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let res = t
        .call(s, Method::POST, &format!("/webhooks/{hook_id}/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let message: Value = res.json().await.unwrap();
    let message_id = message["message_id"].as_str().unwrap().to_owned();

    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let clock: tenantkit_webhooks::worker::Clock = Arc::new(move || {
        chrono::Utc::now() + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst))
    });
    let webhooks = tenantkit_server::webhooks::build(&s.config).unwrap();
    let billing =
        tenantkit_billing::Billing::new(s.running.db.clone(), s.config.billing.clone()).unwrap();
    let worker = tenantkit_server::webhooks::worker(&s.config, &s.running.db, &webhooks, &billing)
        .unwrap()
        .with_clock(clock);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        worker
            .run(async {
                stopped.await.ok();
            })
            .await
            .unwrap();
    });
    // Each step moves the clock past the next retry (at most an hour).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = t
            .call(s, Method::GET, "/webhooks/dead-letters")
            .send()
            .await
            .unwrap();
        let dead: Value = res.json().await.unwrap();
        if dead["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["message_id"] == message_id.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the delivery never died");
        offset.fetch_add(2 * 3600, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        receiver.received("in").len(),
        6,
        "the first attempt and five retries"
    );
    (message_id, offset, task, stop)
}

async fn dashboard(backend: Backend) {
    let Some(driver) = chromedriver() else {
        return;
    };
    let Some(s) = Server::start_with(backend, |c| {
        c.billing.plans.default_plan = "pro".into();
        c.webhooks.allow_http = true;
        c.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
        // The test runs the worker itself, with a clock it can move.
        c.webhooks.worker = false;
        // The page's own requests would otherwise count as API calls
        // between its summary and the test's.
        c.analytics.count_api_calls = false;
    })
    .await
    else {
        return;
    };
    let t = s.owned_tenant().await;
    let receiver = Receiver::start().await;
    let (message_id, _clock, worker, stop_worker) = dead_letter(&s, &t, &receiver).await;

    // Some history: page views, features, users.
    let seed: Vec<Value> = (0..60)
        .map(|i| match i % 3 {
            0 => json!({ "event_type": "page_view", "user_id": format!("u{}", i % 11), "name": "/home" }),
            1 => {
                let feature = ["export", "search", "share"][i % 4 % 3];
                json!({ "event_type": "feature_used", "user_id": format!("u{}", i % 11), "name": feature })
            }
            _ => json!({ "event_type": "signup", "user_id": format!("u{}", i % 11) }),
        })
        .collect();
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path(), &[]).await;
    let port = s.running.addr.port();
    let page = format!(
        "http://{}.{}:{port}/dashboard#token={}",
        t.sub,
        tenantkit_e2e::BASE_DOMAIN,
        t.token
    );
    c.goto(&page).await.unwrap();

    // Signed in from the fragment, which is then gone from the address bar.
    wait_for(
        &c,
        "#analytics .cards",
        "data-loaded",
        Duration::from_secs(15),
        "the summary loads",
        |v| v == "true",
    )
    .await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.fragment(), None, "the token left the address bar");

    // The numbers shown are the API's, for the same days and zone.
    let cards = c.find(Locator::Css("#analytics .cards")).await.unwrap();
    let bound = |name: &'static str| {
        let cards = cards.clone();
        async move { cards.attr(name).await.unwrap().unwrap() }
    };
    let (from, to, tz) = (
        bound("data-from").await,
        bound("data-to").await,
        bound("data-tz").await,
    );
    let path = format!(
        "/analytics/summary?from={from}&to={to}&tz={}",
        tz.replace('/', "%2F")
    );
    let res = t.call(&s, Method::GET, &path).send().await.unwrap();
    let summary: Value = res.json().await.unwrap();
    for (card, field) in [
        ("#stat-dau", "dau"),
        ("#stat-mau", "mau"),
        ("#stat-api-calls", "api_calls"),
        ("#stat-page-views", "page_views"),
        ("#stat-events", "events"),
    ] {
        let shown = c
            .find(Locator::Css(card))
            .await
            .unwrap()
            .attr("data-value")
            .await
            .unwrap();
        assert_eq!(
            shown,
            Some(summary[field].to_string()),
            "{card} vs summary.{field}"
        );
    }
    assert_eq!(summary["events"], 60);
    let top = c
        .find(Locator::Css("#top-features tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for feature in summary["top_features"].as_array().unwrap() {
        assert!(top.contains(feature["name"].as_str().unwrap()), "{top}");
    }
    wait_for(
        &c,
        "#series-chart",
        "data-points",
        Duration::from_secs(5),
        "the chart loads",
        |v| v != "0",
    )
    .await;

    // Live: events sent through the API move the counter within 3 seconds.
    wait_for(
        &c,
        "#live-status",
        "data-state",
        Duration::from_secs(10),
        "the stream opens",
        |v| v == "live",
    )
    .await;
    let before: u64 = wait_for(
        &c,
        "#live-total",
        "data-value",
        Duration::from_secs(1),
        "the counter",
        |_| true,
    )
    .await
    .parse()
    .unwrap_or(0);
    let burst: Vec<Value> = (0..25)
        .map(|i| json!({ "event_type": "live_test", "user_id": format!("l{i}") }))
        .collect();
    let res = t
        .call(&s, Method::POST, "/analytics/events")
        .json(&burst)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let sent = Instant::now();
    let want = (before + 25).to_string();
    wait_for(
        &c,
        "#live-total",
        "data-value",
        Duration::from_secs(3),
        "the live counter",
        |v| v == want,
    )
    .await;
    eprintln!(
        "live counter moved {:?} after the events were stored",
        sent.elapsed()
    );
    screenshot(&c, "dashboard-analytics").await;

    // Webhooks: the dead letter is there, replayed from the page, and succeeds.
    receiver.script("in", Behaviour::Status(204));
    c.find(Locator::Css("#tabs button[data-tab='webhooks']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let replay = format!("button[data-replay='{message_id}']");
    let deadline = Instant::now() + Duration::from_secs(10);
    let button = loop {
        if let Ok(b) = c.find(Locator::Css(&replay)).await {
            break b;
        }
        assert!(Instant::now() < deadline, "the dead letter is not listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let endpoints = c
        .find(Locator::Css("#endpoints tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(endpoints.contains(&receiver.url("in")), "{endpoints}");
    // The event types, each with its schema.
    let schema = c
        .find(Locator::Css(
            "#event-types tr[data-event-type='user.created'] pre.schema",
        ))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    assert!(
        schema.contains("\"email\"") && schema.contains("\"format\""),
        "{schema}"
    );
    button.click().await.unwrap();
    let outcome = format!("tr[data-message-id='{message_id}'] td.outcome");
    wait_for(
        &c,
        &outcome,
        "data-state",
        Duration::from_secs(30),
        "the replay",
        |v| v == "succeeded",
    )
    .await;
    assert_eq!(receiver.received("in").len(), 7, "replayed once");
    screenshot(&c, "dashboard-webhooks").await;

    // Audit: the trail and its verified chain, filtered by action.
    c.find(Locator::Css("#tabs button[data-tab='audit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        "#chain-status",
        "data-valid",
        Duration::from_secs(10),
        "the chain check",
        |v| v == "true",
    )
    .await;
    let action = c
        .find(Locator::Css("#audit-filter input[name='action']"))
        .await
        .unwrap();
    action.send_keys("webhook.delivery_replayed").await.unwrap();
    c.find(Locator::Css("#audit-filter button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = c
            .find_all(Locator::Css("#audit-entries tbody tr"))
            .await
            .unwrap();
        let mut texts = Vec::new();
        for row in &rows {
            // A row re-rendered meanwhile is stale: read them all again.
            match row.text().await {
                Ok(text) => texts.push(text),
                Err(_) => texts.clear(),
            }
        }
        if !texts.is_empty()
            && texts
                .iter()
                .all(|r| r.contains("webhook.delivery_replayed"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the filtered trail: {texts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(&c, "dashboard-audit").await;

    // An expired session is said so, not swallowed.
    c.execute("sessionStorage.setItem('tenantkit.dashboard.token', 'expired.or.bogus'); location.reload();", vec![])
        .await
        .unwrap();
    wait_for(
        &c,
        "#error",
        "data-status",
        Duration::from_secs(10),
        "the 401 is shown",
        |v| v == "401",
    )
    .await;

    c.close().await.unwrap();
    stop_worker.send(()).ok();
    worker.await.unwrap();
    s.stop().await;
}

/// The dashboard signs in through a real OpenID provider's login page
/// (Authorization Code + PKCE, no secret in the page), shows the tenant's
/// numbers, and signs out at the provider too.
async fn provider_sign_in(backend: Backend) {
    use tenantkit::testing::oidc::TestProvider;
    let Some(driver) = chromedriver() else {
        return;
    };
    let mut provider = TestProvider::start(&[("rs1", "RS256")], &[]).await;
    let org = format!("org_{}", uuid::Uuid::new_v4().simple());
    let mut issuer = provider.issuer_config("corp-dashboard");
    issuer.tenant_claim = "org_id".into();
    issuer.client_id = Some("dashboard".into());
    let Some(s) = Server::start_with(backend, |c| {
        c.auth.issuers = vec![issuer];
        c.analytics.count_api_calls = false;
    })
    .await
    else {
        return;
    };
    let t = s.owned_tenant().await;
    s.running
        .db
        .platform()
        .link_external_id("corp-dashboard", &org, t.id)
        .await
        .unwrap();
    let page = seven_events_and_their_page(&s, &t).await;
    provider
        .dashboard(
            "dashboard",
            &page,
            // Renewed 30 s before expiry: 5 s after sign-in.
            35,
            json!({ "owner@e2e.test": { "org_id": org, "email": "owner@e2e.test" } }),
        )
        .await;

    let profile = tempfile::tempdir().unwrap();
    let origin = page.trim_end_matches("/dashboard");
    let c = browser(&driver, profile.path(), &[origin]).await;
    let token =
        sign_in_with_provider(&c, &page, &provider, "owner@e2e.test", &t.id.to_string()).await;
    let token = token.as_str();
    let res = s
        .request(Method::GET, "/users", &t.sub, token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    screenshot(&c, "dashboard-provider-sign-in").await;

    // Before it expires the page renews it with its refresh token.
    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        let now: Value = c
            .execute(
                "return sessionStorage.getItem('tenantkit.dashboard.token')",
                vec![],
            )
            .await
            .unwrap();
        match now.as_str() {
            Some(now) if now != token => break now.to_owned(),
            _ if Instant::now() > deadline => panic!("the token was not renewed within 20 s"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let res = s
        .request(Method::GET, "/users", &t.sub, &renewed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the renewed token works");
    wait_shown(&c, "#sign-out", "still signed in after the renewal").await;

    // Signing out ends the provider's session too, then comes back here.
    click_when_shown(&c, "#sign-out", "sign-out is offered").await;
    click_when_shown(&c, "button[name=logout]", "the provider asks to confirm").await;
    wait_shown(&c, "#sign-in-provider", "signed out, back on the dashboard").await;
    let left: Value = c
        .execute(
            "return sessionStorage.getItem('tenantkit.dashboard.token')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(left, Value::Null, "the token is gone");
    c.close().await.unwrap();
    s.stop().await;
}

/// Seven page views for tenant `t`; the address of its dashboard.
async fn seven_events_and_their_page(s: &Server, t: &tenantkit_e2e::OwnedTenant) -> String {
    let seed: Vec<Value> = (0..7)
        .map(|i| json!({ "event_type": "page_view", "user_id": format!("u{i}"), "name": "/home" }))
        .collect();
    let res = t
        .call(s, Method::POST, "/analytics/events")
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    format!(
        "http://{}.{}:{}/dashboard",
        t.sub,
        tenantkit_e2e::BASE_DOMAIN,
        s.running.addr.port()
    )
}

/// Opens the dashboard at `page`, signs in through `provider`'s login page
/// as `login`, and waits for tenant `tenant`'s numbers (7 events): the token
/// the page keeps, checked to be the provider's, with no client secret
/// anywhere in the page.
async fn sign_in_with_provider(
    c: &Client,
    page: &str,
    provider: &tenantkit::testing::oidc::TestProvider,
    login: &str,
    tenant: &str,
) -> String {
    c.goto(page).await.unwrap();
    click_when_shown(c, "#sign-in-provider", "the provider's sign-in is offered").await;

    // The provider's own login page (any login and password in development).
    let field = wait_shown(c, "input[name=login]", "the provider's login page").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&provider.issuer),
        "the login page is the provider's"
    );
    field.send_keys(login).await.unwrap();
    let password = wait_shown(c, "input[name=password]", "the password field").await;
    password.send_keys("any password").await.unwrap();
    click_when_shown(c, "button[type=submit]", "the login button").await;

    // Back on the dashboard, signed in to the tenant: its numbers.
    wait_for(
        c,
        "#analytics .cards",
        "data-loaded",
        Duration::from_secs(20),
        "the summary loads after the provider's sign-in",
        |v| v == "true",
    )
    .await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.query(), None, "the code left the address bar");
    let shown = wait_for(
        c,
        "body",
        "data-tenant",
        Duration::from_secs(5),
        "the tenant",
        |v| !v.is_empty(),
    )
    .await;
    assert_eq!(shown, tenant);
    wait_for(
        c,
        "#stat-events",
        "data-value",
        Duration::from_secs(10),
        "the events card shows the tenant's events",
        |v| v == "7",
    )
    .await;
    let stored: Value = c
        .execute(
            "return [sessionStorage.getItem('tenantkit.dashboard.token'), \
             (document.documentElement.outerHTML + JSON.stringify(sessionStorage)).includes('client_secret')]",
            vec![],
        )
        .await
        .unwrap();
    let token = stored[0]
        .as_str()
        .expect("the access token is kept in the tab");
    assert_eq!(stored[1], false, "no client secret in the page");
    assert_eq!(
        tenantkit::auth::Issuers::issuer_of(token).as_deref(),
        Some(provider.issuer.as_str()),
        "the token is the provider's"
    );
    token.to_owned()
}

/// A tenant's own provider, registered by its owner with just-in-time
/// provisioning: a newcomer signs in to the dashboard at the tenant's
/// address through it, is created as a member, and sees the tenant's
/// numbers; the platform trusts no issuer itself.
async fn tenant_provider_sign_in(backend: Backend) {
    use tenantkit::testing::oidc::{AUDIENCE, TestProvider};
    let Some(driver) = chromedriver() else {
        return;
    };
    let mut provider = TestProvider::start(&[("rs1", "RS256")], &[]).await;
    let Some(s) = Server::start_with(backend, |c| {
        c.auth.sso.allow_http = true;
        c.auth.sso.allow_networks = vec!["127.0.0.1/32".into()];
        c.analytics.count_api_calls = false;
        // The owner registers the tenant's provider: a plan with `sso`.
        c.billing.plans.default_plan = "enterprise".into();
    })
    .await
    else {
        return;
    };
    let t = s.owned_tenant().await;
    let res = t
        .call(&s, Method::PUT, "/tenant/sso")
        .json(&json!({
            "issuer": provider.issuer,
            "audience": AUDIENCE,
            "client_id": "acme-dashboard",
            "email_domain": "acme.example",
            "provision_role": "member",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let page = seven_events_and_their_page(&s, &t).await;
    provider
        .dashboard(
            "acme-dashboard",
            &page,
            300,
            json!({ "newcomer@acme.example": { "email": "newcomer@acme.example" } }),
        )
        .await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(
        &driver,
        profile.path(),
        &[page.trim_end_matches("/dashboard")],
    )
    .await;
    sign_in_with_provider(
        &c,
        &page,
        &provider,
        "newcomer@acme.example",
        &t.id.to_string(),
    )
    .await;
    screenshot(&c, "dashboard-tenant-provider-sign-in").await;
    // The newcomer was provisioned as a member.
    let users: Value = t
        .call(&s, Method::GET, "/users?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newcomer = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "newcomer@acme.example")
        .expect("provisioned on first sign-in");
    assert_eq!(newcomer["role"], "member");
    c.close().await.unwrap();
    s.stop().await;
}

/// The element `selector` once it is shown (panics after 20 s, naming `what`).
async fn wait_shown(c: &Client, selector: &str, what: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(el) = c.find(Locator::Css(selector)).await
            && el.is_displayed().await.unwrap_or(false)
        {
            return el;
        }
        if Instant::now() > deadline {
            let error = match c.find(Locator::Css("#error")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            panic!("{what}: `{selector}` not shown after 20 s at {url}; page error: {error:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click_when_shown(c: &Client, selector: &str, what: &str) {
    wait_shown(c, selector, what).await.click().await.unwrap();
}
