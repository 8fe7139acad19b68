//! `GET /ws/analytics`: the live stream of the tenant's events, a message a
//! second at most (see `docs/analytics.md#live-stream` for the protocol).
//!
//! The handshake passes the tenant stack like any tenant route (tenant,
//! credential, rate limits, plan), so a bad credential is `401` and another
//! tenant's `403` before any upgrade. Browsers, which cannot set headers on a
//! WebSocket, offer the credential as a subprotocol:
//! `Sec-WebSocket-Protocol: tenantkit.v1, bearer.<token>`; the server
//! selects `tenantkit.v1` and never echoes the credential.
//!
//! Then, per connection: a message only in a second with something new
//! ([`Subscription::update`]), a ping every `ping_interval_secs`, and the
//! close codes below.

use std::{collections::BTreeSet, time::Duration};

use axum::{
    Extension,
    extract::{
        State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use tenantkit::{
    TenantContext,
    auth::{Authenticated, Permission, Principal, WEBSOCKET_BEARER_PREFIX, WEBSOCKET_PROTOCOL},
    problem::Problem,
    resolve::TenantRef,
};
use tenantkit_analytics::live::{LiveError, Subscription, Update, followed_types};
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    error::{ApiError, ApiResult, Query},
    state::AppState,
    state::LiveLimits,
};

/// Close code: the token expired.
pub const CLOSE_EXPIRED: u16 = 4001;
/// Close code: the credential no longer allows the stream (user removed or
/// demoted out of it, key revoked, tenant suspended).
pub const CLOSE_REVOKED: u16 = 4003;
/// Close code: nothing (not even a pong) heard for `idle_timeout_secs`.
pub const CLOSE_IDLE: u16 = 4008;
/// Close code: the server is shutting down (reconnect to another).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the tenant's feed could not be read (the database is
/// unreachable); reconnect later.
pub const CLOSE_UNAVAILABLE: u16 = 1011;

/// Each connection's read buffer.
const BUFFER_BYTES: usize = 4 * 1024;
/// The most a connection's unsent output may hold before sends fail.
const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// The largest message or frame a client may send (a subscription to 256 types fits).
const MAX_INCOMING_BYTES: usize = 64 * 1024;

/// How long one message may take to reach a client before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /ws/analytics` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// Event types to follow, comma-separated (default: all). A client can
    /// change them later with `{"subscribe": [...]}`.
    pub types: Option<String>,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Outgoing<'a> {
    /// First: the stream is set up; counts start from here.
    Ready {
        tenant_id: String,
        types: Option<&'a BTreeSet<String>>,
        dau_today: u64,
        expires_at: Option<DateTime<Utc>>,
    },
    /// What is new since the previous update.
    Update(&'a Update),
    /// The answer to `{"subscribe": ...}`.
    Subscribed { types: Option<&'a BTreeSet<String>> },
    /// A message the server could not use (the stream goes on).
    Error { detail: String },
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Incoming {
    /// The types to follow from now on; `null` for all.
    subscribe: Option<Vec<String>>,
}

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError(Problem::new(StatusCode::BAD_REQUEST, "Bad request").with_detail(detail))
}

/// `GET /ws/analytics` → `101`, then JSON messages: `ready` once, then an
/// `update` in each second with new events (counts by type since the
/// previous message, events in the last minute, DAU today, the newest
/// event's id). Any tenant user or an `analytics:read` key.
#[utoipa::path(get, path = "/ws/analytics", tag = "analytics", security(("bearer" = []), ("api_key" = [])), params(LiveParams),
    responses(
        (status = 101, description = "The stream: a WebSocket of JSON messages (`ready`, then `update`s); close codes 4001 token expired, 4003 access revoked, 4008 idle, 1001 server going away"),
        (status = 400, description = "Not a WebSocket handshake, a bad `types`, or a subprotocol credential without `tenantkit.v1`", body = tenantkit::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant holds its most live connections in this process", body = tenantkit::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "This process holds its most live connections", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn stream(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Extension(auth): Extension<Authenticated>,
    headers: HeaderMap,
    Query(params): Query<LiveParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    principal.require(Permission::ReadAnalytics)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError(
            Problem::new(e.status(), "WebSocket handshake required").with_detail(e.body_text()),
        )
    })?;
    if offers_credential(&headers) && !offers(&headers, WEBSOCKET_PROTOCOL) {
        return Err(bad_request(format!(
            "offer the `{WEBSOCKET_PROTOCOL}` subprotocol beside `{WEBSOCKET_BEARER_PREFIX}<token>`"
        )));
    }
    let types = match params.types.as_deref() {
        None | Some("") => None,
        Some(list) => Some(followed_types(list.split(',')).map_err(bad_request)?),
    };
    let subscription = state.live.subscribe(&tenant, types).map_err(|e| {
        let problem = match e {
            LiveError::TenantFull(_) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many live connections")
            }
            LiveError::ProcessFull(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Too many live connections")
            }
        };
        ApiError(
            problem
                .with_detail(e.to_string())
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")),
        )
    })?;
    let limits = state.live_limits;
    Ok(upgrade
        .protocols([WEBSOCKET_PROTOCOL])
        // Clients send only small subscription messages, and updates are
        // small: buffers of a few KiB, not tungstenite's 128 KiB each way,
        // keep a thousand connections in a few MiB.
        .read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_INCOMING_BYTES)
        .max_frame_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| async move {
            Connection {
                socket,
                subscription,
                auth,
                tenant,
                state,
                limits,
            }
            .run()
            .await;
        })
        .into_response())
}

/// The subprotocols offered.
fn offered(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

fn offers(headers: &HeaderMap, protocol: &str) -> bool {
    offered(headers).any(|p| p == protocol)
}

fn offers_credential(headers: &HeaderMap) -> bool {
    offered(headers).any(|p| p.starts_with(WEBSOCKET_BEARER_PREFIX))
}

struct Connection {
    socket: WebSocket,
    subscription: Subscription,
    auth: Authenticated,
    tenant: TenantContext,
    state: AppState,
    limits: LiveLimits,
}

/// Why a connection ends.
enum End {
    /// Close with this code and reason.
    Close(u16, String),
    /// The client left, or cannot be reached: nothing more to send.
    Gone,
}

impl Connection {
    async fn run(mut self) {
        let end = self.serve().await;
        if let End::Close(code, mut reason) = end {
            // A close frame's reason holds at most 123 bytes.
            while reason.len() > 123 {
                reason.pop();
            }
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame))))
                    .await;
        }
    }

    async fn send(&mut self, message: &Outgoing<'_>) -> Result<(), End> {
        let text = serde_json::to_string(message).expect("messages always serialize");
        self.send_text(text).await
    }

    async fn serve(&mut self) -> End {
        let Ok(dau_today) = tokio::time::timeout(SEND_TIMEOUT, self.subscription.ready()).await
        else {
            return End::Close(
                CLOSE_UNAVAILABLE,
                "the live feed cannot be read now; reconnect later".into(),
            );
        };
        let ready = Outgoing::Ready {
            tenant_id: self.tenant.id().to_string(),
            types: self.subscription.types(),
            dau_today,
            expires_at: self.auth.expires_at(),
        };
        let text = serde_json::to_string(&ready).expect("messages always serialize");
        if let Err(end) = self.send_text(text).await {
            return end;
        }
        let every = |period: Duration| {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            ticks
        };
        let mut updates = every(Duration::from_secs(1));
        let mut pings = every(self.limits.ping_interval);
        let mut rechecks = every(self.limits.recheck);
        let expiry = match self.auth.expires_at() {
            Some(at) => {
                let left = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(left)
            }
            None => tokio::time::sleep(Duration::MAX / 4),
        };
        tokio::pin!(expiry);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                _ = updates.tick() => {
                    if let Some(update) = self.subscription.update(Utc::now())
                        && let Err(end) = self.send(&Outgoing::Update(&update)).await
                    {
                        return end;
                    }
                }
                _ = pings.tick() => {
                    if heard.elapsed() >= self.limits.idle_timeout {
                        return End::Close(CLOSE_IDLE, "idle: nothing heard, not even a pong".into());
                    }
                    if tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                        return End::Gone;
                    }
                }
                _ = rechecks.tick() => {
                    if let Some(end) = revoked(&self.state.db, &self.auth, self.tenant.id()).await {
                        return end;
                    }
                }
                () = &mut expiry => {
                    return End::Close(CLOSE_EXPIRED, "the token has expired".into());
                }
                () = self.subscription.closing() => {
                    return End::Close(CLOSE_GOING_AWAY, "the server is shutting down".into());
                }
                received = self.socket.recv() => {
                    heard = Instant::now();
                    match received {
                        Some(Ok(Message::Text(text))) => {
                            if let Err(end) = self.incoming(text.as_str()).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let error = Outgoing::Error { detail: "send JSON text messages".into() };
                            if let Err(end) = self.send(&error).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return End::Gone,
                    }
                }
            }
        }
    }

    /// Sends `text`, or gives up on a client that takes over [`SEND_TIMEOUT`].
    async fn send_text(&mut self, text: String) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(text.into()))).await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    /// A client's message: `{"subscribe": [types] | null}`.
    async fn incoming(&mut self, text: &str) -> Result<(), End> {
        let followed = serde_json::from_str::<Incoming>(text)
            .map_err(|e| format!("expected {{\"subscribe\": [event types] or null}}: {e}"))
            .and_then(|m| m.subscribe.map(followed_types).transpose());
        match followed {
            Ok(types) => {
                self.subscription.follow(types);
                let types = self.subscription.types().cloned();
                self.send(&Outgoing::Subscribed {
                    types: types.as_ref(),
                })
                .await
            }
            Err(detail) => self.send(&Outgoing::Error { detail }).await,
        }
    }
}

/// Whether the stream must end: the tenant suspended or gone, or the
/// credential no longer accepted as [`tenantkit::auth::AuthLayer`] would
/// now (user removed, key revoked, the token expired).
async fn revoked(
    db: &tenantkit::Db,
    auth: &Authenticated,
    tenant: tenantkit::TenantId,
) -> Option<End> {
    let revoked = |reason: String| Some(End::Close(CLOSE_REVOKED, reason));
    let tenant = match db.resolve_cached(&TenantRef::Id(tenant)).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return revoked("the tenant no longer exists".into()),
        // The database is unreachable: check again at the next tick.
        Err(_) => return None,
    };
    if tenant.tenant().status != tenantkit::TenantStatus::Active {
        return revoked("the tenant is suspended".into());
    }
    match auth.recheck(Some(&tenant)).await {
        Ok(principal) if principal.allows(Permission::ReadAnalytics) => None,
        Ok(_) => revoked("the credential may no longer read analytics".into()),
        Err(problem)
            if problem.status == StatusCode::UNAUTHORIZED
                || problem.status == StatusCode::FORBIDDEN =>
        {
            let detail = problem.detail.unwrap_or_else(|| "access revoked".into());
            if detail.contains("expired") {
                Some(End::Close(CLOSE_EXPIRED, detail))
            } else {
                revoked(detail)
            }
        }
        Err(_) => None,
    }
}
