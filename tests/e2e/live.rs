//! `/ws/analytics` over a real socket, on both backends: refusals before the
//! upgrade (no, bad, expired, another tenant's credential; a wrong tenant
//! header; limits), the three ways to present a credential, tenants apart,
//! one message a second under a burst of 10,000 events, type filters, a
//! stalled client, and the close codes (expiry, a removed user, idleness,
//! shutdown).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenantkit::auth::{Claims, TokenRole};
use tenantkit_e2e::{
    Backend, OwnedTenant, Server,
    live::{Credential, Next, Stream, connect, total},
};

use crate::on_both_backends;

on_both_backends!(
    missing_bad_and_expired_credentials_are_401_before_the_upgrade,
    another_tenants_credential_or_header_is_403,
    the_credential_comes_as_header_subprotocol_or_api_key,
    a_client_sees_only_its_own_tenants_events,
    a_burst_of_10000_events_gives_one_message_a_second,
    clients_follow_the_types_they_choose,
    a_stalled_client_slows_nobody_and_catches_up_in_one_message,
    the_stream_closes_when_the_token_expires,
    the_stream_closes_when_its_user_is_removed,
    connections_are_capped_per_tenant_and_per_process,
    a_silent_client_is_closed_as_idle,
    shutdown_closes_streams_as_going_away,
);

/// A server whose live streams recheck their credential every second.
async fn server(backend: Backend) -> Option<Server> {
    Server::start_with(backend, |c| c.analytics.live.recheck_secs = 1).await
}

const SECOND: Duration = Duration::from_secs(1);

async fn post(s: &Server, t: &OwnedTenant, events: Vec<Value>) {
    let res = t
        .call(s, Method::POST, "/analytics/events")
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
}

fn events(ty: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({ "event_type": ty, "user_id": format!("u{}", i % 7) }))
        .collect()
}

async fn open(s: &Server, t: &OwnedTenant, query: &str) -> Stream {
    let mut stream = connect(s, &t.sub, Credential::Header(&t.token), query)
        .await
        .expect("the stream opens");
    stream.ready().await;
    stream
}

async fn missing_bad_and_expired_credentials_are_401_before_the_upgrade(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let expired = s
        .keys()
        .sign(&Claims {
            sub: s.owner(t.id),
            tenant: Some(t.id),
            role: TokenRole::Owner,
            exp: chrono::Utc::now().timestamp() as u64 - 3600,
            iat: 0,
            nbf: None,
            email: None,
        })
        .unwrap();
    for (credential, why) in [
        (Credential::None, "authentication required"),
        (Credential::Header("not-a-jwt"), "the token is invalid"),
        (Credential::Subprotocol("not-a-jwt"), "the token is invalid"),
        (Credential::Header(&expired), "the token has expired"),
        (Credential::Subprotocol(&expired), "the token has expired"),
        (
            Credential::Header("tk_nope_0000000000000000"),
            "the API key is invalid or revoked",
        ),
    ] {
        let refused = connect(&s, &t.sub, credential, "")
            .await
            .err()
            .unwrap_or_else(|| panic!("{credential:?} must be refused"));
        assert_eq!(refused.status, 401, "{credential:?}: {:?}", refused.body);
        assert_eq!(
            refused.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(refused.body["detail"], why, "{credential:?}");
    }
    // A token in the query string (where access logs would keep it) is no credential.
    let url = format!("/ws/analytics?access_token={}", t.token);
    let res = s
        .http
        .get(s.url(&url))
        .header("x-tenant-id", &t.sub)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    s.stop().await;
}

async fn another_tenants_credential_or_header_is_403(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let (a, b) = (s.owned_tenant().await, s.owned_tenant().await);
    // A's token naming B's tenant, as a header and as a subprotocol.
    for credential in [
        Credential::Header(&a.token),
        Credential::Subprotocol(&a.token),
    ] {
        let refused = connect(&s, &b.sub, credential, "").await.err().unwrap();
        assert_eq!(refused.status, 403, "{:?}", refused.body);
        assert_eq!(refused.body["title"], "Wrong tenant");
    }
    // A's API key naming B's tenant is simply not a key there.
    s.subscribe(a.id, "price_pro").await;
    let key = a.api_key(&s, json!(["analytics:read"])).await;
    let refused = connect(&s, &b.sub, Credential::Header(&key), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 401);
    // A tenant that does not exist, and one the host and header disagree on.
    let refused = connect(&s, "nosuchtenant", Credential::Header(&a.token), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 404);
    s.stop().await;
}

async fn the_credential_comes_as_header_subprotocol_or_api_key(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let header = connect(&s, &t.sub, Credential::Header(&t.token), "")
        .await
        .unwrap();
    assert_eq!(header.protocol, None, "nothing offered, nothing selected");
    // A browser's offer: the server selects tenantkit.v1 and never echoes the token.
    let mut browser = connect(&s, &t.sub, Credential::Subprotocol(&t.token), "")
        .await
        .unwrap();
    assert_eq!(browser.protocol.as_deref(), Some("tenantkit.v1"));
    let ready = browser.ready().await;
    assert_eq!(ready["tenant_id"], t.id.to_string());
    assert!(ready["expires_at"].is_string(), "{ready}");
    // The credential alone, without the protocol a browser needs selected.
    let refused = connect(&s, &t.sub, Credential::SubprotocolOnly(&t.token), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("tenantkit.v1")
    );
    // Server-to-server: an API key with analytics:read, as a header or
    // subprotocol (keys need a plan with API access).
    s.subscribe(t.id, "price_pro").await;
    let key = t.api_key(&s, json!(["analytics:read"])).await;
    for credential in [Credential::Header(&key), Credential::Subprotocol(&key)] {
        let mut stream = connect(&s, &t.sub, credential, "").await.unwrap();
        let ready = stream.ready().await;
        assert_eq!(ready["expires_at"], Value::Null, "keys do not expire");
    }
    let unscoped = t.api_key(&s, json!(["users:read"])).await;
    let refused = connect(&s, &t.sub, Credential::Header(&unscoped), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 403);
    // Not a WebSocket handshake at all.
    let res = t
        .call(&s, Method::GET, "/ws/analytics")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    s.stop().await;
}

async fn a_client_sees_only_its_own_tenants_events(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let (a, b) = (s.owned_tenant().await, s.owned_tenant().await);
    let mut watch_a = open(&s, &a, "?types=signup").await;
    let mut watch_b = open(&s, &b, "?types=signup").await;
    for _ in 0..3 {
        post(&s, &a, events("signup", 5)).await;
        post(&s, &b, events("signup", 50)).await;
    }
    let (seen_a, seen_b) = tokio::join!(
        watch_a.updates_for(3 * SECOND),
        watch_b.updates_for(3 * SECOND)
    );
    assert_eq!(total(&seen_a, "signup"), 15, "{seen_a:?}");
    assert_eq!(total(&seen_b, "signup"), 150, "{seen_b:?}");
    assert!(
        seen_a.iter().all(|u| u["dau_today"].as_u64() <= Some(7)),
        "{seen_a:?}"
    );
    s.stop().await;
}

async fn a_burst_of_10000_events_gives_one_message_a_second(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let mut stream = open(&s, &t, "?types=burst").await;
    let started = Instant::now();
    let sends = (0..10).map(|_| post(&s, &t, events("burst", 1000)));
    futures_util::future::join_all(sends).await;
    let updates = stream.updates_for(4 * SECOND).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(total(&updates, "burst"), 10_000, "{updates:?}");
    assert!(
        (updates.len() as f64) <= elapsed.ceil() + 1.0,
        "{} messages in {elapsed:.1} s",
        updates.len()
    );
    let at: Vec<chrono::DateTime<chrono::Utc>> = updates
        .iter()
        .map(|u| u["at"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in at.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(gap >= 950, "two messages {gap} ms apart");
    }
    let last = updates.last().unwrap();
    assert_eq!(last["events_last_minute"], 10_000);
    // u0..u6, and the owner, whose requests the layer counts as api_calls.
    assert_eq!(last["dau_today"], 8);
    assert!(last["last_event_id"].is_string());
    s.stop().await;
}

async fn clients_follow_the_types_they_choose(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let mut stream = open(&s, &t, "?types=signup,export").await;
    post(
        &s,
        &t,
        [
            events("signup", 3),
            events("page_view", 4),
            events("export", 2),
        ]
        .concat(),
    )
    .await;
    let updates = stream.updates_for(2 * SECOND).await;
    assert_eq!(total(&updates, "signup"), 3);
    assert_eq!(total(&updates, "export"), 2);
    assert_eq!(total(&updates, "page_view"), 0, "not followed");
    assert!(
        updates
            .iter()
            .all(|u| u["counts"].get("api_call").is_none())
    );

    stream.send(&json!({ "subscribe": ["page_view"] })).await;
    let answer = stream.json(2 * SECOND).await;
    assert_eq!(
        answer,
        json!({ "type": "subscribed", "types": ["page_view"] })
    );
    post(
        &s,
        &t,
        [events("signup", 3), events("page_view", 4)].concat(),
    )
    .await;
    let updates = stream.updates_for(2 * SECOND).await;
    assert_eq!(total(&updates, "page_view"), 4);
    assert_eq!(total(&updates, "signup"), 0);

    // A bad message is answered, and the stream goes on.
    stream.send(&json!({ "subscribe": ["Not A Type"] })).await;
    let error = stream.json(2 * SECOND).await;
    assert_eq!(error["type"], "error");
    assert!(
        error["detail"].as_str().unwrap().contains("`Not A Type`"),
        "{error}"
    );
    stream.send(&json!({ "subscribe": null })).await;
    assert_eq!(stream.json(2 * SECOND).await["types"], Value::Null);
    post(&s, &t, events("signup", 1)).await;
    let updates = stream.updates_for(2 * SECOND).await;
    assert_eq!(total(&updates, "signup"), 1, "following every type again");

    // A bad filter in the handshake is 400.
    let refused = connect(
        &s,
        &t.sub,
        Credential::Header(&t.token),
        "?types=Bad%20Type",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(refused.status, 400);
    s.stop().await;
}

async fn a_stalled_client_slows_nobody_and_catches_up_in_one_message(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let mut stalled = open(&s, &t, "?types=tick").await;
    let mut reader = open(&s, &t, "?types=tick").await;
    // Four seconds of events, one batch every 500 ms; the reader reads, the
    // stalled client does not.
    let sender = async {
        for _ in 0..8 {
            post(&s, &t, events("tick", 100)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (_, read) = tokio::join!(sender, reader.updates_for(7 * SECOND));
    assert_eq!(total(&read, "tick"), 800);
    // The reader got a message every second: nobody waited on the stalled one.
    assert!(read.len() >= 4, "{read:?}");
    let at: Vec<chrono::DateTime<chrono::Utc>> = read
        .iter()
        .map(|u| u["at"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in at.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((950..=1600).contains(&gap), "two messages {gap} ms apart");
    }
    // The stalled client gets everything, at most one message per second
    // it stalled (about 8), and its last message says where things stand now.
    let caught_up = stalled.updates_for(2 * SECOND).await;
    assert_eq!(total(&caught_up, "tick"), 800);
    assert!(caught_up.len() <= 9, "{} messages", caught_up.len());
    assert_eq!(
        caught_up.last().unwrap()["last_event_id"],
        read.last().unwrap()["last_event_id"]
    );
    s.stop().await;
}

async fn the_stream_closes_when_the_token_expires(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let short = s
        .keys()
        .issue(&s.owner(t.id), Some(t.id), TokenRole::Owner, 3)
        .unwrap();
    let mut stream = connect(&s, &t.sub, Credential::Subprotocol(&short), "")
        .await
        .unwrap();
    let ready = stream.ready().await;
    let expires: chrono::DateTime<chrono::Utc> =
        ready["expires_at"].as_str().unwrap().parse().unwrap();
    let closed = stream.end(8 * SECOND).await;
    assert_eq!(closed, Next::Closed(4001, "the token has expired".into()));
    assert!(chrono::Utc::now() >= expires);
    s.stop().await;
}

async fn the_stream_closes_when_its_user_is_removed(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let res = t
        .call(&s, Method::POST, "/users")
        .json(&json!({ "email": "watcher@e2e.test", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let user: Value = res.json().await.unwrap();
    let id = user["id"].as_str().unwrap();
    let token = s
        .keys()
        .issue(id, Some(t.id), TokenRole::Member, 600)
        .unwrap();
    let mut stream = connect(&s, &t.sub, Credential::Header(&token), "")
        .await
        .unwrap();
    stream.ready().await;
    let res = t
        .call(&s, Method::DELETE, &format!("/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let removed = Instant::now();
    let closed = stream.end(10 * SECOND).await;
    assert_eq!(
        closed,
        Next::Closed(
            4003,
            "the token's user does not exist in this tenant".into()
        )
    );
    assert!(removed.elapsed() < 5 * SECOND, "{:?}", removed.elapsed());
    s.stop().await;
}

async fn connections_are_capped_per_tenant_and_per_process(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| {
        c.analytics.live.max_connections_per_tenant = 2;
        c.analytics.live.max_connections = 3;
    })
    .await
    else {
        return;
    };
    let (a, b, c) = (
        s.owned_tenant().await,
        s.owned_tenant().await,
        s.owned_tenant().await,
    );
    let first = open(&s, &a, "").await;
    let _second = open(&s, &a, "").await;
    let refused = connect(&s, &a.sub, Credential::Header(&a.token), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("2 live connections")
    );
    let _third = open(&s, &b, "").await;
    let refused = connect(&s, &c.sub, Credential::Header(&c.token), "")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    // A closed connection gives its place back.
    first.close().await;
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        match connect(&s, &c.sub, Credential::Header(&c.token), "").await {
            Ok(_) => break,
            Err(refused) if Instant::now() < deadline => {
                assert_eq!(refused.status, 503);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(refused) => panic!("the place was not given back: {refused:?}"),
        }
    }
    s.stop().await;
}

async fn a_silent_client_is_closed_as_idle(backend: Backend) {
    let Some(s) = Server::start_with(backend, |c| {
        c.analytics.live.ping_interval_secs = 1;
        c.analytics.live.idle_timeout_secs = 2;
    })
    .await
    else {
        return;
    };
    let t = s.owned_tenant().await;
    let mut silent = open(&s, &t, "").await;
    // Not reading, so not answering pings, for 4 seconds.
    tokio::time::sleep(4 * SECOND).await;
    let closed = silent.end(5 * SECOND).await;
    assert_eq!(
        closed,
        Next::Closed(4008, "idle: nothing heard, not even a pong".into())
    );
    // A client that reads answers the pings and stays.
    let mut awake = open(&s, &t, "?types=still_here").await;
    assert_eq!(awake.next(4 * SECOND).await, Next::Silent);
    post(&s, &t, events("still_here", 1)).await;
    let updates = awake.updates_for(2 * SECOND).await;
    assert_eq!(total(&updates, "still_here"), 1);
    s.stop().await;
}

async fn shutdown_closes_streams_as_going_away(backend: Backend) {
    let Some(s) = server(backend).await else {
        return;
    };
    let t = s.owned_tenant().await;
    let mut stream = open(&s, &t, "").await;
    let stopping = tokio::spawn(async move { s.stop().await });
    let closed = stream.end(10 * SECOND).await;
    assert_eq!(
        closed,
        Next::Closed(1001, "the server is shutting down".into())
    );
    stopping.await.unwrap();
}
