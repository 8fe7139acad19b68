//! A handler's panic behind the server's layers (a file of its own: `app.rs`
//! registers routes only through `routes!`).

use std::sync::Arc;

use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::*;

async fn boom() -> &'static str {
    panic!("boom at the handler")
}

/// A handler that panics answers 500 problem+json with a request id, is
/// counted, and the same connection goes on serving.
#[tokio::test]
async fn a_panic_is_a_500_on_a_connection_that_stays_open() {
    let metrics = Metrics::default();
    let app = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = with_server_layers(app, &metrics, 8);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // One connection for every request.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = closed.clone();
    tokio::spawn(async move {
        let _ = conn.await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    for path in ["/boom", "/fine", "/boom", "/fine"] {
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = send
            .send_request(req)
            .await
            .expect("the connection is still open");
        let status = res.status();
        let request_id = res.headers().get("x-request-id").cloned();
        let content_type = res.headers().get("content-type").cloned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        if path == "/boom" {
            assert_eq!(status, 500);
            assert_eq!(content_type.unwrap(), "application/problem+json");
            assert!(request_id.is_some(), "the log line can be found by it");
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["status"], 500);
            assert!(
                !problem.to_string().contains("boom at the handler"),
                "the panic's message stays in the log: {problem}"
            );
        } else {
            assert_eq!((status.as_u16(), &body[..]), (200, &b"fine"[..]));
        }
    }
    assert!(!closed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        metrics
            .render()
            .contains("tenantkit_http_handler_panics_total 2"),
        "{}",
        metrics.render()
    );
}
