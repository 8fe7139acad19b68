//! RateLimitLayer: the quota is crossed, and budgets are kept apart.

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tenantkit::{
    rate_limit::{Quota, RateLimitLayer},
    resolve::TenantLayer,
};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::common::{sqlite, tenant};

async fn ok<B>(_: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

fn from_ip(ip: &str) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    req.extensions_mut()
        .insert(format!("{ip}:1234").parse::<SocketAddr>().unwrap());
    req
}

/// Sends `burst` requests from `ip`, each answered `200`, then one more,
/// refused with `429`: that refusal.
async fn burst_then_refused<S>(svc: &mut S, ip: &str, burst: usize) -> Response<Full<Bytes>>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    for i in 0..burst {
        let res = svc.ready().await.unwrap().call(from_ip(ip)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "request {i} within the burst");
    }
    let refused = svc.ready().await.unwrap().call(from_ip(ip)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    refused
}

#[tokio::test]
async fn per_ip_limit_allows_exactly_the_burst_then_429_with_retry_after() {
    let quota = Quota::per_minute(NonZeroU32::new(5).unwrap());
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::per_client_ip(quota))
        .service_fn(ok);
    let refused = burst_then_refused(&mut svc, "198.51.100.1", 5).await;
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "one token per 12 s, got {retry}");
    // Another client is unaffected.
    let other = svc
        .ready()
        .await
        .unwrap()
        .call(from_ip("198.51.100.2"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn per_tenant_budgets_are_independent() {
    let db = sqlite().await;
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let quota = Quota::per_hour(NonZeroU32::new(2).unwrap());
    let mut svc = ServiceBuilder::new()
        .layer(TenantLayer::new(db.clone()))
        .layer(RateLimitLayer::per_tenant(quota))
        .service_fn(ok);
    let req = |t: &tenantkit::TenantContext, ip: &str| {
        let mut r = from_ip(ip);
        r.headers_mut()
            .insert("x-tenant-id", t.id().to_string().parse().unwrap());
        r
    };
    // Different IPs, same tenant: one budget.
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(req(&a, "10.0.0.1"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(req(&a, "10.0.0.2"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(req(&a, "10.0.0.3"))
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(req(&b, "10.0.0.1"))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A million distinct client addresses (an IPv6 spray): the budgets stay
/// bounded, the cost per request stays flat (the last 100,000 requests
/// take about as long as the first; a scan of every key per request, as
/// before, would make them thousands of times slower), and a steady client
/// is still held to its quota afterwards.
#[tokio::test]
async fn a_million_sprayed_addresses_keep_budgets_bounded_and_cost_flat() {
    use std::{
        net::{IpAddr, Ipv6Addr},
        time::Instant,
    };
    use tenantkit::rate_limit::MAX_TRACKED_KEYS;

    let layer = RateLimitLayer::per_client_ip(Quota::per_minute(NonZeroU32::new(5).unwrap()));
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service_fn(ok);
    let mut spray = |keys: std::ops::Range<u128>| {
        let started = Instant::now();
        for k in keys {
            let mut req = Request::new(Full::default());
            let ip = IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | k));
            req.extensions_mut().insert(SocketAddr::new(ip, 1234));
            // The limiter answers synchronously; the handler is ready at once.
            drop(svc.call(req));
        }
        started.elapsed()
    };
    let first = spray(0..100_000);
    spray(100_000..900_000);
    let last = spray(900_000..1_000_000);
    assert!(
        layer.tracked_keys() <= MAX_TRACKED_KEYS,
        "{} keys tracked",
        layer.tracked_keys()
    );
    assert!(
        last < first * 4,
        "the last 100,000 requests took {last:?}, the first {first:?}"
    );
    burst_then_refused(&mut svc, "198.51.100.9", 5).await;
}
