//! Publishing webhooks from your own code, with the transactional outbox.
//!
//! An embedding application adds its own event type (`order.placed`),
//! publishes it **inside the transaction of the change it announces**, and
//! runs a delivery worker. A rolled-back change sends nothing; a committed
//! one is delivered (signed, Standard Webhooks) even if the process dies
//! right after the commit: the message is in the database.
//!
//! ```text
//! cargo run -p tenantkit-examples --bin webhooks-outbox
//! ```
//!
//! It uses the embedded SQLite in a temporary directory and a receiver on
//! loopback it runs itself; with `--self-test` it checks what arrived and
//! exits.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::json;
use tenantkit::{Db, NewTenant, NewUser, Role, audit::Actor};
use tenantkit_webhooks::{
    NewWebhook, Webhooks, catalogue::EventCatalogue, secret_box::SecretBox, ssrf::UrlPolicy,
    transport::Transport, worker::Worker,
};

type Inbox = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let _ = rustls::crypto::ring::default_provider().install_default();

    // 1. The store: tenantkit's tables and the webhooks tables.
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite:{}", dir.path().join("app.db").display())).await?;
    db.migrate().await?;
    Webhooks::migrate(&db).await?;

    // 2. Webhooks with our own event type. The local receiver below needs
    //    loopback allowed; production keeps the strict policy.
    let catalogue = EventCatalogue::tenantkit()
        .with(
            "order.placed",
            "A customer placed an order",
            json!({ "order_id": "o_1", "total_cents": 4200 }),
        )
        .map_err(anyhow::Error::msg)?;
    let policy = UrlPolicy::strict()
        .with_http(true)
        .allow_network("127.0.0.1/32".parse()?);
    let keys = SecretBox::new([SecretBox::generate_key().as_str()])?;
    let webhooks = Webhooks::new(policy.clone(), keys, catalogue);

    // 3. A receiver, standing in for the tenant's partner.
    let inbox: Inbox = Arc::default();
    let app = Router::new()
        .route(
            "/hooks",
            post(
                |State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes| async move {
                    inbox.lock().unwrap().push((headers, body));
                    "thanks"
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // 4. A tenant that subscribed to `order.placed`.
    let tenant = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: "Acme".into(),
                subdomain: "acme".into(),
            },
            &Actor::System,
        )
        .await?;
    let acme = db.resolve_id(tenant.id).await?.expect("just created");
    let mut tx = db.begin(&acme).await?;
    let endpoint = webhooks
        .create(
            &mut tx,
            &NewWebhook {
                url: url.clone(),
                event_types: vec!["order.placed".into()],
                description: Some("partner".into()),
                ..Default::default()
            },
        )
        .await?;
    tx.commit().await?;
    println!("endpoint {url} registered; its secret: {}", endpoint.secret);

    // 5. A change and its event, in one transaction: committed.
    let mut tx = db.begin(&acme).await?;
    let buyer = tx
        .create_user(&NewUser {
            email: "buyer@acme.example".into(),
            role: Role::Member,
        })
        .await?;
    webhooks
        .publish(
            &mut tx,
            "order.placed",
            json!({ "order_id": "o_42", "buyer": buyer.id, "total_cents": 4200 }),
        )
        .await?;
    tx.commit().await?;

    // ...and one that is rolled back: its event is never sent.
    let mut tx = db.begin(&acme).await?;
    webhooks
        .publish(
            &mut tx,
            "order.placed",
            json!({ "order_id": "o_rolled_back" }),
        )
        .await?;
    drop(tx);

    // 6. The worker delivers (here in this process; `tenantkit-server
    //    worker` does the same in its own).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(db.clone(), webhooks.clone(), Transport::new(policy)?);
    let running = tokio::spawn(worker.run(async {
        stopped.await.ok();
    }));
    for _ in 0..100 {
        if !inbox.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).ok();
    running.await??;

    let received = inbox.lock().unwrap().clone();
    let verifier = standardwebhooks::Webhook::new(&endpoint.secret)?;
    for (headers, body) in &received {
        verifier.verify(body, headers)?;
        println!(
            "delivered {} (signature verified): {}",
            headers["webhook-id"].to_str()?,
            String::from_utf8_lossy(body)
        );
    }
    if self_test {
        anyhow::ensure!(received.len() == 1, "exactly the committed event arrives");
        anyhow::ensure!(
            String::from_utf8_lossy(&received[0].1).contains("o_42"),
            "the committed order"
        );
        println!("ok: delivered the committed event once, never the rolled-back one");
    }
    Ok(())
}
