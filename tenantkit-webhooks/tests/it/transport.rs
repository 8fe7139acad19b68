//! Delivery attempts against receivers on loopback: what is sent, what is
//! refused before any byte leaves, and how each failure is classified.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use tenantkit_webhooks::{
    headers::CustomHeaders,
    signature::{SigningSecret, sign},
    ssrf::{Lookup, UrlPolicy},
    transport::{ErrorClass, MAX_BODY, TIMEOUT, Transport},
};

use crate::common::{local_policy as local, tls_provider as provider};

/// What a receiver saw: path, headers, body.
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A receiver on loopback with a route per behaviour.
async fn receiver() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(("/ok".to_owned(), headers, body));
                    "thanks"
                }
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/slower",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(12)).await;
                "too late"
            }),
        )
        .route(
            "/redirect",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")], "") }),
        )
        .route(
            "/busy",
            post(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "42")],
                    "busy",
                )
            }),
        )
        .route(
            "/big",
            post(|| async { "x".repeat(1024 * 1024).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn signed(body: &[u8], secret: &SigningSecret) -> tenantkit_webhooks::signature::SignedHeaders {
    let now = chrono::Utc::now().timestamp();
    sign("msg_transport", now, body, &[secret])
}

#[tokio::test]
async fn a_delivery_arrives_signed_and_verifies() {
    let (addr, seen) = receiver().await;
    let secret = SigningSecret::generate();
    let body = br#"{"type":"webhook.test","timestamp":"2026-11-27T10:00:00Z","data":{}}"#;
    // The endpoint's own headers go along (a credential the receiver expects).
    let custom = CustomHeaders::check(&std::collections::BTreeMap::from([
        ("Authorization".to_owned(), "Bearer r3ceiver".to_owned()),
        ("X-Team".to_owned(), "blue team".to_owned()),
    ]))
    .unwrap();
    let attempt = Transport::new(local())
        .unwrap()
        .send(
            &format!("http://{addr}/ok"),
            &custom,
            &signed(body, &secret),
            body,
        )
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(
        (attempt.status, attempt.excerpt.as_str()),
        (Some(200), "thanks")
    );
    let seen = seen.lock().unwrap();
    let (_, headers, got) = &seen[0];
    assert_eq!(got.as_ref(), body);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Bearer r3ceiver");
    assert_eq!(headers["x-team"], "blue team");
    standardwebhooks::Webhook::new(&secret.expose())
        .unwrap()
        .verify(got, headers)
        .expect("the receiver verifies it");
}

#[tokio::test]
async fn loopback_is_refused_without_the_allow_list_and_nothing_is_sent() {
    let (addr, seen) = receiver().await;
    provider();
    let strict = Transport::new(UrlPolicy::strict().with_http(true)).unwrap();
    let secret = SigningSecret::generate();
    for url in [
        format!("http://{addr}/ok"),
        format!("http://[::ffff:127.0.0.1]:{}/ok", addr.port()),
    ] {
        let attempt = strict
            .send(
                &url,
                &CustomHeaders::default(),
                &signed(b"{}", &secret),
                b"{}",
            )
            .await;
        assert_eq!(attempt.error, Some(ErrorClass::BlockedAddress), "{url}");
        assert_eq!(attempt.status, None);
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_name_rebound_to_loopback_is_refused_at_connect() {
    let (addr, seen) = receiver().await;
    provider();
    // Registered while it resolved to a public address; now it points inside.
    let table: HashMap<String, Vec<std::net::IpAddr>> = [(
        "hooks.rebind.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    )]
    .into();
    let lookup = Lookup::Table(Arc::new(table));
    let strict = UrlPolicy::strict()
        .with_http(true)
        .with_lookup(lookup.clone());
    let url = format!("http://hooks.rebind.test:{}/ok", addr.port());
    let attempt = Transport::new(strict)
        .unwrap()
        .send(
            &url,
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(
        attempt.error,
        Some(ErrorClass::BlockedAddress),
        "{attempt:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
    // Allowed explicitly, the vetted address is the one connected to.
    let allowed = local().with_lookup(lookup);
    let attempt = Transport::new(allowed)
        .unwrap()
        .send(
            &url,
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, seen) = receiver().await;
    let attempt = Transport::new(local())
        .unwrap()
        .send(
            &format!("http://{addr}/redirect"),
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(attempt.status, Some(302));
    assert!(!attempt.succeeded());
    assert!(
        seen.lock().unwrap().is_empty(),
        "the Location was not visited"
    );
}

/// The production transport, unshortened: a receiver that takes longer than
/// 10 s is given up on after 10 s, connection included.
#[tokio::test]
async fn the_default_transport_gives_up_after_10_seconds() {
    let (addr, _) = receiver().await;
    let attempt = Transport::new(local())
        .unwrap()
        .send(
            &format!("http://{addr}/slower"),
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(attempt.error, Some(ErrorClass::Timeout), "{attempt:?}");
    assert!(
        attempt.duration >= Duration::from_secs(10) && attempt.duration < Duration::from_secs(11),
        "{:?}",
        attempt.duration
    );
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let (addr, _) = receiver().await;
    assert_eq!(TIMEOUT, Duration::from_secs(10));
    let attempt = Transport::with_timeout(local(), Duration::from_millis(300))
        .unwrap()
        .send(
            &format!("http://{addr}/slow"),
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(attempt.error, Some(ErrorClass::Timeout), "{attempt:?}");
    assert!(attempt.duration < Duration::from_secs(2));
}

#[tokio::test]
async fn nothing_listening_is_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let attempt = Transport::new(local())
        .unwrap()
        .send(
            &format!("http://127.0.0.1:{port}/ok"),
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(
        attempt.error,
        Some(ErrorClass::ConnectionRefused),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    provider();
    let lookup = Lookup::Table(Arc::new(HashMap::new()));
    let attempt = Transport::new(UrlPolicy::strict().with_lookup(lookup))
        .unwrap()
        .send(
            "https://nowhere.invalid/in",
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(attempt.error, Some(ErrorClass::Dns), "{attempt:?}");
}

#[tokio::test]
async fn bodies_over_1_mib_are_never_sent_and_responses_are_read_only_so_far() {
    let (addr, seen) = receiver().await;
    let transport = Transport::new(local()).unwrap();
    let secret = SigningSecret::generate();
    let big = vec![b'x'; MAX_BODY + 1];
    let attempt = transport
        .send(
            &format!("http://{addr}/ok"),
            &CustomHeaders::default(),
            &signed(&big, &secret),
            &big,
        )
        .await;
    assert_eq!(attempt.error, Some(ErrorClass::TooLarge));
    assert!(seen.lock().unwrap().is_empty());
    // Exactly 1 MiB is sent.
    let max = vec![b'x'; MAX_BODY];
    assert!(
        transport
            .send(
                &format!("http://{addr}/ok"),
                &CustomHeaders::default(),
                &signed(&max, &secret),
                &max
            )
            .await
            .succeeded()
    );
    // A 1 MiB answer: the attempt succeeds, and 4 KiB of it is kept.
    let attempt = transport
        .send(
            &format!("http://{addr}/big"),
            &CustomHeaders::default(),
            &signed(b"{}", &secret),
            b"{}",
        )
        .await;
    assert!(attempt.succeeded());
    assert_eq!(attempt.excerpt.len(), 4096);
}

#[tokio::test]
async fn retry_after_of_a_429_is_kept() {
    let (addr, _) = receiver().await;
    let attempt = Transport::new(local())
        .unwrap()
        .send(
            &format!("http://{addr}/busy"),
            &CustomHeaders::default(),
            &signed(b"{}", &SigningSecret::generate()),
            b"{}",
        )
        .await;
    assert_eq!(attempt.status, Some(429));
    assert_eq!(attempt.retry_after, Some(Duration::from_secs(42)));
    assert_eq!(attempt.excerpt, "busy");
}
