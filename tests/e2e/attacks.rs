//! HTTP-level attacks that need the socket: a flood past the in-flight cap
//! (a request whose body trickles in stays in flight). The others run
//! without a socket in `reference-server/tests/routes/attacks.rs`.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenantkit_e2e::{Backend, Server};

use crate::on_both_backends;

on_both_backends!(past_the_in_flight_cap_requests_get_503_at_once);

async fn problem(res: reqwest::Response) -> Value {
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    res.json().await.unwrap()
}

/// A flood cannot queue without bound: past `server.max_in_flight_requests`
/// a request is answered 503 with `Retry-After` at once, and the room comes
/// back when the requests in flight finish.
async fn past_the_in_flight_cap_requests_get_503_at_once(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| c.server.max_in_flight_requests = 1).await else {
        return;
    };
    let t = s.owned_tenant().await;
    // A request whose body trickles in stays in flight.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<&'static [u8], std::io::Error>>(1);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let slow = t
        .call(&s, Method::POST, "/users")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(body));
    let slow = tokio::spawn(slow.send());
    tx.send(Ok(br#"{"email":"#)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let res = t.call(&s, Method::GET, "/users").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let body = problem(res).await;
    assert_eq!(body["title"], "Server busy");

    tx.send(Ok(br#""late@in-flight.test","role":"member"}"#))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::CREATED);
    let res = t.call(&s, Method::GET, "/users").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "room again once it finished");
}
