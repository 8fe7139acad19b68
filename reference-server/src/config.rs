//! Configuration: defaults, then a TOML file, then environment variables.
//!
//! Environment variables are `TENANTKIT_<SECTION>__<KEY>` (for example
//! `TENANTKIT_AUTH__JWT_SECRET`), plus `DATABASE_URL` for `database.url`.
//! See `docs/configuration.md` for every key.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
pub use tenantkit::Secret;

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP serving.
    pub server: ServerConfig,
    /// Storage.
    pub database: DatabaseConfig,
    /// Tokens.
    pub auth: AuthConfig,
    /// Request rates.
    pub rate_limit: RateLimitConfig,
    /// Audit-trail retention.
    pub audit: AuditConfig,
    /// Stripe and plans (see docs/billing.md).
    pub billing: tenantkit_billing::BillingConfig,
    /// Outbound webhooks (see docs/webhooks.md).
    pub webhooks: WebhooksConfig,
    /// Usage analytics.
    pub analytics: AnalyticsConfig,
}

/// `[analytics]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Raw events (and the rollups of their days) are kept this many days
    /// (at least 36, beyond the 35 days an event may be back-dated).
    pub retention_days: u32,
    /// The longest a fire-and-forget event (the `api_call` events of
    /// `count_api_calls`) waits for others to share its flush, in
    /// milliseconds; acknowledged events are flushed as soon as a writer is free.
    pub flush_interval_ms: u64,
    /// A flush starts as soon as this many events wait.
    pub flush_events: usize,
    /// The most events buffered at once; more get 503 (the layer drops them).
    pub buffer_events: usize,
    /// Flushes in progress at once, each on its own database connection.
    pub writers: usize,
    /// Record an `api_call` event for every tenant request.
    pub count_api_calls: bool,
    /// Largest `POST /analytics/events` body, in bytes (1,000 events).
    pub max_body_bytes: usize,
    /// `[analytics.live]`: the `/ws/analytics` stream.
    pub live: LiveConfig,
}

/// `[analytics.live]`: limits of the `/ws/analytics` stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Open streams one tenant may hold per server process (more: `429`).
    pub max_connections_per_tenant: usize,
    /// Open streams per server process (more: `503`).
    pub max_connections: usize,
    /// Seconds between the server's pings.
    pub ping_interval_secs: u64,
    /// A stream that sent nothing (not even a pong) this many seconds is closed (`4008`).
    pub idle_timeout_secs: u64,
    /// Seconds between checks that the credential, its user and the tenant still allow the stream.
    pub recheck_secs: u64,
    /// Event types followed per tenant; the rest are summed as `(other)`.
    pub max_types: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        let live = tenantkit_analytics::LiveConfig::default();
        Self {
            max_connections_per_tenant: live.max_per_tenant,
            max_connections: live.max_connections,
            ping_interval_secs: 20,
            idle_timeout_secs: 60,
            recheck_secs: 3,
            max_types: live.max_types,
        }
    }
}

impl LiveConfig {
    /// The hub's settings.
    pub fn hub(&self) -> tenantkit_analytics::LiveConfig {
        tenantkit_analytics::LiveConfig {
            max_per_tenant: self.max_connections_per_tenant,
            max_connections: self.max_connections,
            max_types: self.max_types,
            ..Default::default()
        }
    }
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        let ingest = tenantkit_analytics::IngestConfig::default();
        Self {
            retention_days: 400,
            flush_interval_ms: ingest.flush_interval.as_millis() as u64,
            flush_events: ingest.flush_events,
            buffer_events: ingest.buffer_events,
            writers: ingest.writers,
            count_api_calls: true,
            max_body_bytes: 10 * 1024 * 1024,
            live: LiveConfig::default(),
        }
    }
}

impl AnalyticsConfig {
    /// The writer's settings.
    pub fn ingest(&self) -> tenantkit_analytics::IngestConfig {
        tenantkit_analytics::IngestConfig {
            flush_interval: std::time::Duration::from_millis(self.flush_interval_ms),
            flush_events: self.flush_events,
            buffer_events: self.buffer_events,
            writers: self.writers,
        }
    }
}

/// `[webhooks]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Also accept plain `http` endpoint URLs (never in production).
    pub allow_http: bool,
    /// Networks endpoints may reach although blocked (e.g. `["127.0.0.1/32"]`
    /// for a local receiver, or a private network you trust).
    pub allow_networks: Vec<String>,
    /// Keys sealing endpoint secrets (base64 of 32 bytes), the current one
    /// first; older ones only open. Unset on the embedded default: generated
    /// into `database.data_dir/webhook-keys`. Required with PostgreSQL.
    #[serde(skip_serializing)]
    pub secret_keys: Vec<Secret>,
    /// How long a rotated-out secret keeps signing, in hours.
    pub rotation_grace_hours: u32,
    /// Deliveries per minute per tenant.
    pub deliveries_per_minute: u32,
    /// Per plan id, overriding `deliveries_per_minute` (0: no limit).
    pub plan_deliveries_per_minute: std::collections::BTreeMap<String, u32>,
    /// Run the delivery worker inside `serve` (`tenantkit-server worker` runs it alone).
    pub worker: bool,
    /// Deliveries in flight at once, per worker process.
    pub concurrency: usize,
    /// On PostgreSQL, database connections of the worker `serve` runs
    /// (`worker = true`), in a pool of its own beside the API's
    /// (`database.max_connections`), so a busy API cannot starve deliveries,
    /// nor deliveries the API; 0 shares the API's pool. (On SQLite the
    /// worker always shares the server's.)
    pub worker_connections: u32,
    /// The share of `concurrency` one tenant may hold (above 0, at most 1;
    /// default 0.5): one tenant's hanging endpoints leave the rest of the
    /// slots to the others.
    pub tenant_share: f64,
    /// Seconds a claimed delivery stays with its worker; after a crash,
    /// another worker retries it once this has passed (more than the 10 s
    /// request limit).
    pub lease_secs: u64,
    /// An endpoint failing this long without a success is disabled, in hours.
    pub disable_after_hours: u32,
    /// Messages (with their deliveries and attempts) are kept this many
    /// days, unless still pending; 0 keeps everything.
    pub retention_days: u32,
    /// Messages per second one tenant may publish over HTTP
    /// (`POST /webhooks/messages`, each message of a batch counted); 0: no
    /// limit. Over it: `429` with `Retry-After`.
    pub publish_per_second: u32,
    /// How many messages a tenant may publish at once above that rate (at
    /// least 100, one full batch).
    pub publish_burst: u32,
    /// Event types of the platform's own, beside the built-in ones
    /// (`[[webhooks.event_types]]`; in the environment
    /// `TENANTKIT_WEBHOOKS__EVENT_TYPES`, a JSON array): each with a JSON
    /// Schema its `data` must satisfy, and an example that does.
    pub event_types: Vec<EventTypeConfig>,
    /// Largest `POST /webhooks/messages` body, in bytes (at least 1024). A
    /// message body may be 1 MiB, so below about 1.1 MiB the largest
    /// messages are refused with `413`; a batch of 100 shares this.
    pub max_publish_body_bytes: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_networks: Vec::new(),
            secret_keys: Vec::new(),
            rotation_grace_hours: 24,
            deliveries_per_minute: tenantkit_webhooks::worker::DEFAULT_PER_MINUTE,
            plan_deliveries_per_minute: Default::default(),
            worker: true,
            concurrency: 64,
            worker_connections: 4,
            tenant_share: 0.5,
            lease_secs: 60,
            disable_after_hours: 5 * 24,
            retention_days: 30,
            event_types: Vec::new(),
            publish_per_second: 100,
            publish_burst: 1000,
            max_publish_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// `[[webhooks.event_types]]`: an event type the platform publishes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeConfig {
    /// Its name: 1 to 64 of `a-z 0-9 _ . : -`, e.g. `invoice.paid`.
    pub name: String,
    /// What it announces.
    #[serde(default)]
    pub description: String,
    /// The JSON Schema (draft 2020-12) its `data` must satisfy; none: any
    /// JSON object.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// An example of its `data` (satisfying the schema).
    pub example: serde_json::Value,
}

/// `[audit]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this many days are purged (at least 1).
    pub retention_days: u32,
    /// How often `serve` purges, in hours; 0 never (use `tenantkit-server audit purge`).
    pub purge_every_hours: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 365,
            purge_every_hours: 24,
        }
    }
}

/// `[server]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Tenants are served at `<subdomain>.<base_domain>` (default
    /// `localhost`: browsers send `demo.localhost` to this machine); unset:
    /// only `X-Tenant-Id`.
    pub base_domain: Option<String>,
    /// Requests naming no tenant go here (id or subdomain); for single-tenant clients.
    pub default_tenant: Option<String>,
    /// PEM certificate chain; with `tls_key`, serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests in flight at once; more get `503` with `Retry-After` at once.
    pub max_in_flight_requests: usize,
    /// How long `DELETE /tenants/{id}` waits for the deletion to finish
    /// before answering `202` (it goes on; `GET /tenants/{id}/deletion`
    /// follows it); 0 to 25 s, under the 30 s request timeout.
    pub deletion_wait_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_domain: Some("localhost".into()),
            default_tenant: None,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            shutdown_grace_secs: 20,
            max_body_bytes: 64 * 1024,
            max_in_flight_requests: 512,
            deletion_wait_secs: 10,
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[database]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://owner@host/db` or `sqlite:path`; unset: SQLite in `data_dir`.
    pub url: Option<String>,
    /// PostgreSQL: the role `serve` connects as (created by `migrate`).
    pub runtime_role: String,
    /// PostgreSQL: its password, if the server requires one.
    #[serde(skip_serializing)]
    pub runtime_password: Option<Secret>,
    /// PostgreSQL: a full URL for the runtime role, overriding the two above.
    #[serde(skip_serializing)]
    pub runtime_url: Option<Secret>,
    /// Pool size.
    pub max_connections: u32,
    /// Where the embedded default keeps its files.
    pub data_dir: PathBuf,
}

/// The owner URL's password stays out of `Debug` output (and so out of
/// logs and panics), like every [`Secret`].
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field(
                "url",
                &self.url.as_deref().map(tenantkit::store::redact_url),
            )
            .field("runtime_role", &self.runtime_role)
            .field("runtime_password", &self.runtime_password)
            .field("runtime_url", &self.runtime_url)
            .field("max_connections", &self.max_connections)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            runtime_role: tenantkit::store::RuntimeRole::DEFAULT_NAME.into(),
            runtime_password: None,
            runtime_url: None,
            max_connections: 10,
            data_dir: PathBuf::from("tenantkit-data"),
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `HS256`, `RS256` or `EdDSA`.
    pub jwt_algorithm: String,
    /// HS256 shared secret (at least 32 bytes).
    #[serde(skip_serializing)]
    pub jwt_secret: Option<Secret>,
    /// RS256/EdDSA: PEM public key file (verifies tokens).
    pub jwt_public_key: Option<PathBuf>,
    /// RS256/EdDSA: PEM private key file (issues tokens; only `token issue` and first start need it).
    pub jwt_private_key: Option<PathBuf>,
    /// Lifetime of issued tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Which claim of a tenant token names its user: `sub` (the tenantkit
    /// user id; tokens this server issues) or `email` (tokens of an external
    /// identity provider). See docs/configuration.md.
    pub user_claim: String,
    /// How long a tenant or user is trusted from the in-process cache, in
    /// milliseconds: the longest a deleted user, a demotion or a suspension
    /// can go unseen by a process (others are told at once on PostgreSQL).
    pub access_cache_ttl_ms: u64,
    /// Trusted token issuers (OpenID providers), `[[auth.issuers]]`; in the
    /// environment, `TENANTKIT_AUTH__ISSUERS` as a JSON array. See
    /// docs/authentication.md.
    pub issuers: Vec<tenantkit::auth::IssuerConfig>,
    /// Tenants' own identity providers (single sign-on), `[auth.sso]`.
    pub sso: SsoConfig,
}

/// `[auth.sso]`: how tenants' own identity providers may be reached. Their
/// addresses are the tenants' to give, so by default only `https` at
/// public addresses.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsoConfig {
    /// Also accept plain `http` issuers (never in production).
    pub allow_http: bool,
    /// Networks issuers may be at although blocked (e.g. `["127.0.0.1/32"]`
    /// for a local test provider, or a private network you trust).
    pub allow_networks: Vec<String>,
}

impl SsoConfig {
    /// The URL policy tenants' issuers are reached under.
    pub fn url_policy(&self) -> Result<tenantkit::ssrf::UrlPolicy, ConfigError> {
        url_policy("auth.sso", self.allow_http, &self.allow_networks)
    }
}

/// A [`tenantkit::ssrf::UrlPolicy`] from a section's `allow_http` and
/// `allow_networks`: the one reading of both, for every section that has them.
pub fn url_policy(
    section: &str,
    allow_http: bool,
    allow_networks: &[String],
) -> Result<tenantkit::ssrf::UrlPolicy, ConfigError> {
    let mut policy = tenantkit::ssrf::UrlPolicy::strict().with_http(allow_http);
    for network in allow_networks {
        let network = network.parse().map_err(|_| {
            ConfigError(format!(
                "{section}.allow_networks: `{network}` is not a network"
            ))
        })?;
        policy = policy.allow_network(network);
    }
    Ok(policy)
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_algorithm: "HS256".into(),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_private_key: None,
            token_ttl_secs: 3600,
            user_claim: "sub".into(),
            access_cache_ttl_ms: 2000,
            issuers: Vec::new(),
            sso: SsoConfig::default(),
        }
    }
}

/// `[rate_limit]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute per tenant on tenant routes.
    pub per_tenant_per_minute: u32,
    /// Requests per minute per client IP on routes without a tenant.
    pub per_ip_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_tenant_per_minute: 1200,
            per_ip_per_minute: 600,
        }
    }
}

/// Variables holding a JSON array (past the `TENANTKIT_` prefix), and the
/// setting each is: `TENANTKIT_AUTH__ISSUERS`, `TENANTKIT_WEBHOOKS__EVENT_TYPES`.
const JSON_VARS: [(&str, &str); 2] = [
    ("AUTH__ISSUERS", "auth.issuers"),
    ("WEBHOOKS__EVENT_TYPES", "webhooks.event_types"),
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

/// The longest retention any setting may ask for: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl Config {
    /// Loads defaults, then `file` (if given, it must exist; otherwise
    /// `tenantkit.toml` if present), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        // The defaults are serialized for figment to merge over, without
        // their secrets (`Secret` has no `Serialize`; the defaults hold none).
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if std::path::Path::new("tenantkit.toml").exists() => {
                figment = figment.merge(Toml::file_exact("tenantkit.toml"));
            }
            None => {}
        }
        // Only `TENANTKIT_<SECTION>__<KEY>` variables are configuration;
        // the lists (issuers, event types) are JSON, read apart.
        figment = figment.merge(
            Env::prefixed("TENANTKIT_")
                .filter(|k| {
                    k.as_str().contains("__")
                        && !JSON_VARS
                            .iter()
                            .any(|(var, _)| k.as_str().eq_ignore_ascii_case(var))
                })
                .split("__"),
        );
        for (var, setting) in JSON_VARS {
            if let Ok(json) = std::env::var(format!("TENANTKIT_{var}"))
                && !json.trim().is_empty()
            {
                let list: Vec<serde_json::Value> = serde_json::from_str(&json)
                    .map_err(|e| ConfigError(format!("TENANTKIT_{var}: {e}")))?;
                figment = figment.merge(figment::providers::Serialized::default(setting, list));
            }
        }
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            figment = figment.merge(("database.url", url));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.max_in_flight_requests == 0 {
            return Err(ConfigError(
                "server.max_in_flight_requests must be positive".into(),
            ));
        }
        if self.server.deletion_wait_secs > 25 {
            return Err(ConfigError(
                "server.deletion_wait_secs must be at most 25 (requests time out at 30 s)".into(),
            ));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ConfigError(
                "server.tls_cert and server.tls_key go together".into(),
            ));
        }
        if self.rate_limit.per_tenant_per_minute == 0 || self.rate_limit.per_ip_per_minute == 0 {
            return Err(ConfigError(
                "rate limits must be at least 1 per minute".into(),
            ));
        }
        if !(self.webhooks.tenant_share > 0.0 && self.webhooks.tenant_share <= 1.0) {
            return Err(ConfigError(format!(
                "webhooks.tenant_share must be above 0 and at most 1, got {}",
                self.webhooks.tenant_share
            )));
        }
        let batch = tenantkit_webhooks::outbox::MAX_BATCH;
        if self.webhooks.publish_per_second > 0 && (self.webhooks.publish_burst as usize) < batch {
            return Err(ConfigError(format!(
                "webhooks.publish_burst must be at least {batch} (one full batch), got {}",
                self.webhooks.publish_burst
            )));
        }
        if self.webhooks.max_publish_body_bytes < 1024 {
            return Err(ConfigError(format!(
                "webhooks.max_publish_body_bytes must be at least 1024, got {}",
                self.webhooks.max_publish_body_bytes
            )));
        }
        // Days are subtracted from today: a bound keeps that arithmetic sound.
        for (key, days) in [
            ("audit.retention_days", self.audit.retention_days),
            ("analytics.retention_days", self.analytics.retention_days),
            ("webhooks.retention_days", self.webhooks.retention_days),
        ] {
            if days > MAX_RETENTION_DAYS {
                return Err(ConfigError(format!(
                    "{key} must be at most {MAX_RETENTION_DAYS} (100 years), got {days}"
                )));
            }
        }
        if self.audit.retention_days == 0 {
            return Err(ConfigError(
                "audit.retention_days must be at least 1".into(),
            ));
        }
        if self.auth.token_ttl_secs == 0 {
            return Err(ConfigError("auth.token_ttl_secs must be positive".into()));
        }
        self.auth
            .user_claim
            .parse::<tenantkit::auth::UserClaim>()
            .map_err(|e| ConfigError(format!("auth.user_claim: {e}")))?;
        tenantkit::auth::Issuers::new(&self.auth.issuers)
            .map_err(|e| ConfigError(format!("auth.issuers: {e}")))?;
        self.auth.sso.url_policy()?;
        let analytics = &self.analytics;
        if analytics.retention_days < 36 {
            return Err(ConfigError(
                "analytics.retention_days must be at least 36 (events may be 35 days old when sent)".into(),
            ));
        }
        if analytics.flush_interval_ms == 0 || analytics.flush_events == 0 || analytics.writers == 0
        {
            return Err(ConfigError(
                "analytics.flush_interval_ms, analytics.flush_events and analytics.writers must be positive".into(),
            ));
        }
        if analytics.buffer_events < tenantkit_analytics::event::MAX_BATCH
            || analytics.buffer_events > u32::MAX as usize
        {
            return Err(ConfigError(format!(
                "analytics.buffer_events must hold at least one batch ({}) and at most {}",
                tenantkit_analytics::event::MAX_BATCH,
                u32::MAX
            )));
        }
        let live = &analytics.live;
        if live.max_connections == 0
            || live.max_connections_per_tenant == 0
            || live.max_types == 0
            || live.recheck_secs == 0
        {
            return Err(ConfigError(
                "analytics.live.max_connections, max_connections_per_tenant, max_types and recheck_secs must be positive".into(),
            ));
        }
        if live.ping_interval_secs == 0 || live.idle_timeout_secs <= live.ping_interval_secs {
            return Err(ConfigError(
                "analytics.live.ping_interval_secs must be positive and below idle_timeout_secs"
                    .into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.database.data_dir.join("tenantkit.db").display()
            ),
        }
    }

    /// How long tenants and users are cached ([`AuthConfig::access_cache_ttl_ms`]).
    pub fn access_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.auth.access_cache_ttl_ms)
    }

    /// Whether this runs on the embedded default.
    pub fn is_embedded(&self) -> bool {
        !self.database_url().starts_with("postgres")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn a_deletion_wait_past_the_request_timeout_is_refused() {
        let mut config = Config::default();
        config.server.deletion_wait_secs = 26;
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string().contains("server.deletion_wait_secs"),
            "{err}"
        );
        config.server.deletion_wait_secs = 0;
        config.validate().unwrap();
    }

    #[test]
    fn zero_requests_in_flight_is_refused() {
        let mut config = Config::default();
        config.server.max_in_flight_requests = 0;
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string().contains("server.max_in_flight_requests"),
            "{err}"
        );
    }

    #[test]
    fn a_tenant_share_outside_zero_to_one_is_refused() {
        for share in [0.0, -0.5, 1.01, f64::NAN] {
            let mut config = Config::default();
            config.webhooks.tenant_share = share;
            let err = config.validate().unwrap_err();
            assert!(
                err.to_string().contains("webhooks.tenant_share"),
                "{share}: {err}"
            );
        }
        let mut config = Config::default();
        config.webhooks.tenant_share = 1.0;
        config.validate().unwrap();
    }

    #[test]
    fn a_publish_burst_below_one_batch_or_a_tiny_body_limit_is_refused() {
        let mut config = Config::default();
        config.webhooks.publish_burst = 99;
        let e = config.validate().unwrap_err();
        assert!(e.0.contains("publish_burst must be at least 100"), "{e}");
        config.webhooks.publish_burst = 100;
        config.validate().unwrap();
        config.webhooks.publish_per_second = 0;
        config.webhooks.publish_burst = 0;
        config.validate().expect("no limit: no burst needed");
        config.webhooks.max_publish_body_bytes = 1023;
        let e = config.validate().unwrap_err();
        assert!(
            e.0.contains("max_publish_body_bytes must be at least 1024"),
            "{e}"
        );
    }

    #[test]
    fn a_retention_past_a_century_is_refused() {
        let mut config = Config::default();
        config.analytics.retention_days = u32::MAX;
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string().contains("analytics.retention_days"),
            "{err}"
        );
        let mut config = Config::default();
        config.webhooks.retention_days = MAX_RETENTION_DAYS + 1;
        assert!(config.validate().is_err());
        config.webhooks.retention_days = MAX_RETENTION_DAYS;
        config.validate().unwrap();
    }
}
