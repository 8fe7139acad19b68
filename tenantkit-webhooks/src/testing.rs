//! Test support (feature `testing`): a webhook receiver on loopback whose
//! answers a test scripts per path, recording what arrives. Used by this
//! crate's tests, the end-to-end tests and the throughput bench.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};

/// How a path answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// This status, with a short body.
    Status(u16),
    /// This status with this `Retry-After`.
    RetryAfter(u16, &'static str),
    /// `200` after this long.
    Slow(Duration),
    /// `200` with a body of this many bytes.
    Large(usize),
    /// Never answers (the request is seen as it arrives).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Its headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`...).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    script: Mutex<HashMap<String, Behaviour>>,
    seen: Mutex<HashMap<String, Vec<Received>>>,
}

/// The receiver; clones share it.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = inner.script.lock().unwrap().get(&path).cloned();
    if let Some(Behaviour::Slow(wait)) = behaviour {
        tokio::time::sleep(wait).await;
    }
    inner
        .seen
        .lock()
        .unwrap()
        .entry(path)
        .or_default()
        .push(Received {
            headers,
            body,
            at: Instant::now(),
        });
    match behaviour {
        Some(Behaviour::Hang) => std::future::pending().await,
        None | Some(Behaviour::Slow(_)) => (StatusCode::OK, "ok").into_response(),
        Some(Behaviour::Status(status)) => {
            (StatusCode::from_u16(status).unwrap(), "scripted").into_response()
        }
        Some(Behaviour::RetryAfter(status, after)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), "later").into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
            response
        }
        Some(Behaviour::Large(n)) => (StatusCode::OK, "x".repeat(n)).into_response(),
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1; every path answers `200 ok`
    /// until scripted otherwise.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/{path}", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, inner }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` (one path per endpoint).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// From now on `path` answers like this.
    pub fn script(&self, path: &str, behaviour: Behaviour) {
        self.inner
            .script
            .lock()
            .unwrap()
            .insert(path.to_owned(), behaviour);
    }

    /// What `path` received so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .seen
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `path` received at least `n` requests; panics after `within`.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = self.received(path);
            if seen.len() >= n {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} received {} of {n} requests within {within:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// URLs an attacker would register to reach the platform's own network:
/// each must be refused without an allow-list.
pub const HOSTILE_URLS: &[&str] = &[
    // Loopback, in every spelling the URL parser accepts.
    "https://127.0.0.1/",
    "https://127.0.0.1:8443/admin",
    "https://127.255.255.254/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://0x7f.1/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://017700000001/",
    "https://[::1]/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    // Unspecified.
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    // Private and shared.
    "https://10.0.0.1/",
    "https://10.255.255.255/",
    "https://172.16.0.1/",
    "https://172.31.255.254/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://[::ffff:10.0.0.1]/",
    "https://[64:ff9b::c0a8:101]/",
    // Link-local and cloud metadata.
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://[2002:a9fe:a9fe::]/",
    "https://[fe80::1]/",
    // Reserved, documentation, benchmarking, multicast, broadcast.
    "https://192.0.0.1/",
    "https://192.0.2.10/",
    "https://198.18.0.1/",
    "https://198.51.100.7/",
    "https://203.0.113.9/",
    "https://224.0.0.1/",
    "https://239.255.255.250/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[2001:db8::1]/",
    "https://[2001::1]/",
    // Not an https URL, or with credentials.
    "http://hooks.example.com/in",
    "ftp://hooks.example.com/in",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "hooks.example.com/in",
    "https://",
    "https://user:pass@hooks.example.com/in",
    "https://user@hooks.example.com/in",
];

/// The `data` of a `user.*` event for user `n` that satisfies the built-in
/// schema ([`crate::catalogue::EventCatalogue::tenantkit`]).
///
/// ```
/// use tenantkit_webhooks::{catalogue::EventCatalogue, testing::user_data};
///
/// assert_eq!(EventCatalogue::tenantkit().check("user.created", &user_data(7)), Ok(()));
/// ```
pub fn user_data(n: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("01935c9e-7a10-7000-8000-{:012x}", n % (1 << 48)),
        "tenant_id": "01935c9e-7a10-7000-8000-0000000000aa",
        "email": format!("user{n}@partner.test"),
        "role": "member",
        "created_at": "2026-12-07T10:00:00Z"
    })
}
