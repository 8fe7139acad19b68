//! What the examples share: where to listen, and `--self-test`, in which an
//! example serves on a free port, sends the requests it documents with a
//! real HTTP client, checks the answers and exits (the examples' tests run
//! every example this way).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// Whether the example runs its own requests and exits.
pub(crate) fn self_test() -> bool {
    std::env::args().any(|a| a == "--self-test")
}

/// `127.0.0.1:0` (a free port) in a self-test, else `127.0.0.1:<port>`.
pub(crate) fn listen_addr(port: u16) -> SocketAddr {
    let port = if self_test() { 0 } else { port };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One documented request: `GET <path>` with `headers`, expecting `status`;
/// returns the body.
pub(crate) async fn expect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> anyhow::Result<String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client.request(req.body(Empty::new())?).await?;
    let got = res.status().as_u16();
    let body = String::from_utf8(res.into_body().collect().await?.to_bytes().to_vec())?;
    anyhow::ensure!(
        got == status,
        "GET {path} {headers:?}: expected {status}, got {got}: {body}"
    );
    println!("ok: GET {path} -> {got}");
    Ok(body)
}
