//! The audit trail: who changed what, when, from where, hash-chained per tenant.
//!
//! Entries are written by [`crate::TenantTx`] itself, in the same transaction
//! as the change they record: its write methods ([`crate::TenantTx::insert`],
//! [`crate::TenantTx::update`], [`crate::TenantTx::delete`],
//! [`crate::TenantTx::record_event`]) are the only way to change tenant data,
//! and each appends an entry. The actor and request details come from the
//! [`crate::TenantContext`] the transaction was opened with, which
//! [`crate::resolve::TenantLayer`] and [`crate::auth::AuthLayer`] fill in.
//!
//! Each entry's `hash` is `SHA-256(prev_hash || canonical JSON of the entry)`,
//! so altering or removing an entry breaks the chain;
//! [`crate::TenantTx::verify_audit_chain`] finds the first broken link.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit::{Db, NewTenant, NewUser, Role, audit::{Actor, AuditFilter}};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.unwrap().with_actor(Actor::User("ann".into()));
//!
//! let mut tx = db.begin(&acme).await?;
//! tx.create_user(&NewUser { email: "bob@acme.test".into(), role: Role::Member }).await?;
//! tx.commit().await?;
//!
//! let mut tx = db.begin(&acme).await?;
//! let log = tx.list_audit_logs(&AuditFilter::default()).await?;
//! assert_eq!(log[0].action, "create");
//! assert_eq!(log[0].actor_id.as_deref(), Some("ann"));
//! assert!(tx.verify_audit_chain().await?.valid);
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{ApiKeyId, AuditEntryId, TenantId};

/// Who caused an audited change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A user, by the `sub` of their token.
    User(String),
    /// A program with an API key.
    ApiKey(ApiKeyId),
    /// The platform itself (jobs, the command line, Stripe webhooks).
    System,
    /// A platform operator.
    PlatformAdmin(String),
    /// Nobody authenticated (for example a failed login).
    Anonymous,
}

impl Actor {
    /// The stored `actor_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::ApiKey(_) => "api_key",
            Actor::System => "system",
            Actor::PlatformAdmin(_) => "platform_admin",
            Actor::Anonymous => "anonymous",
        }
    }

    /// The stored `actor_id`.
    pub fn id(&self) -> Option<String> {
        match self {
            Actor::User(id) | Actor::PlatformAdmin(id) => Some(id.clone()),
            Actor::ApiKey(id) => Some(id.to_string()),
            Actor::System | Actor::Anonymous => None,
        }
    }
}

/// Where a request came from, as recorded in the audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// The `x-request-id` of the request.
    pub request_id: Option<String>,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The `User-Agent` header (at most 512 characters are kept).
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// Keeps each field to a sane length.
    pub(crate) fn bounded(mut self) -> Self {
        for field in [
            &mut self.request_id,
            &mut self.client_ip,
            &mut self.user_agent,
        ] {
            if let Some(v) = field.as_mut()
                && v.chars().count() > 512
            {
                *v = v.chars().take(512).collect();
            }
        }
        self
    }
}

/// A tenant-owned record whose changes are audited.
pub trait Audited: Serialize {
    /// The `resource_type` recorded for it, e.g. `user`.
    const RESOURCE_TYPE: &'static str;
    /// Its id, recorded as `resource_id`.
    fn resource_id(&self) -> String;
}

/// One entry of a tenant's audit trail.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Position in the tenant's chain, from 1, without gaps.
    pub seq: i64,
    /// Its id.
    pub id: AuditEntryId,
    /// `user`, `api_key`, `system`, `platform_admin` or `anonymous`.
    pub actor_type: String,
    /// The actor's id, if it has one.
    pub actor_id: Option<String>,
    /// `create`, `update`, `delete`, or a named action such as `api_key.revoked`.
    pub action: String,
    /// What kind of thing changed, e.g. `user`.
    pub resource_type: String,
    /// Which one.
    pub resource_id: Option<String>,
    /// State before the change.
    #[sqlx(json(nullable))]
    pub before: Option<Value>,
    /// State after the change (or details of an event).
    #[sqlx(json(nullable))]
    pub after: Option<Value>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// When it happened (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    /// The previous entry's hash (`""` for the first).
    pub prev_hash: String,
    /// `SHA-256(prev_hash || canonical entry)`, hex.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should have, given its `prev_hash`.
    pub fn compute_hash(&self) -> String {
        let mut canonical = String::new();
        let fields: [(&str, Value); 14] = [
            ("action", Value::from(self.action.clone())),
            ("actor_id", self.actor_id.clone().into()),
            ("actor_type", Value::from(self.actor_type.clone())),
            ("after", self.after.clone().unwrap_or(Value::Null)),
            ("before", self.before.clone().unwrap_or(Value::Null)),
            ("client_ip", self.client_ip.clone().into()),
            ("id", Value::from(self.id.to_string())),
            (
                "occurred_at",
                Value::from(
                    self.occurred_at
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                ),
            ),
            ("request_id", self.request_id.clone().into()),
            ("resource_id", self.resource_id.clone().into()),
            ("resource_type", Value::from(self.resource_type.clone())),
            ("seq", Value::from(self.seq)),
            ("tenant_id", Value::from(self.tenant_id.to_string())),
            ("user_agent", self.user_agent.clone().into()),
        ];
        canonical_json(
            &Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            &mut canonical,
        );
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical.as_bytes());
        hasher
            .finalize()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

/// JSON with object keys sorted at every level and no white space, whatever
/// order the map keeps: the form that is hashed.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The public shape of an entry: every stored field, plus the SOC 2 names
/// `user_id`, `resource`, `timestamp` and `changes`.
impl Serialize for AuditEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntryView {
            id: self.id,
            tenant_id: self.tenant_id,
            seq: self.seq,
            user_id: (self.actor_type == "user")
                .then_some(self.actor_id.as_deref())
                .flatten(),
            actor: ActorView {
                kind: &self.actor_type,
                id: self.actor_id.as_deref(),
            },
            action: &self.action,
            resource: match &self.resource_id {
                Some(id) => format!("{}/{id}", self.resource_type),
                None => self.resource_type.clone(),
            },
            resource_type: &self.resource_type,
            resource_id: self.resource_id.as_deref(),
            changes: Changes {
                before: self.before.as_ref(),
                after: self.after.as_ref(),
            },
            timestamp: &self.occurred_at,
            request_id: self.request_id.as_deref(),
            client_ip: self.client_ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
        .serialize(s)
    }
}

/// An audit entry as the API shows it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditEntry))]
struct EntryView<'a> {
    id: AuditEntryId,
    tenant_id: TenantId,
    /// Position in the tenant's chain, from 1, without gaps.
    seq: i64,
    /// The acting user's id (for users), else null.
    user_id: Option<&'a str>,
    actor: ActorView<'a>,
    /// What happened, e.g. `create`, `user.role_changed`, `auth.failed`.
    action: &'a str,
    /// `<resource_type>/<resource_id>`.
    resource: String,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    changes: Changes<'a>,
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    timestamp: &'a DateTime<Utc>,
    request_id: Option<&'a str>,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    /// The previous entry's `hash` (the chain anchor for the first).
    prev_hash: &'a str,
    /// SHA-256 of `prev_hash` and this entry's canonical JSON.
    hash: &'a str,
}

/// Who acted.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditActor))]
struct ActorView<'a> {
    /// `user`, `api_key`, `system`, `platform_admin` or `anonymous`.
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<&'a str>,
}

/// The state before and after the change.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditChanges))]
struct Changes<'a> {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    before: Option<&'a Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    after: Option<&'a Value>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AuditEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <EntryView<'static> as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AuditEntry {
    fn name() -> std::borrow::Cow<'static, str> {
        <EntryView<'static> as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <EntryView<'static> as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Which entries to list; every field is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditFilter {
    /// `user`, `api_key`, `system`, `platform_admin` or `anonymous`.
    #[cfg_attr(
        feature = "openapi",
        param(pattern = "^(user|api_key|system|platform_admin|anonymous)$")
    )]
    pub actor_type: Option<String>,
    /// The actor's id.
    pub actor_id: Option<String>,
    /// The action, e.g. `update` or `api_key.revoked`.
    pub action: Option<String>,
    /// The resource type, e.g. `user`.
    pub resource_type: Option<String>,
    /// The resource id.
    pub resource_id: Option<String>,
    /// At or after this time.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$"))]
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$"))]
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: entries with a smaller `seq` (newest first).
    pub before_seq: Option<i64>,
    /// Page size, 1 to 500 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// The outcome of checking a tenant's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    /// Whether every link holds.
    pub valid: bool,
    /// How many entries were checked.
    pub checked: u64,
    /// The first entry of the chain (after any retention purge).
    pub first_seq: i64,
    /// The last entry, as the chain head records it.
    pub head_seq: i64,
    /// The first broken or missing link, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Checks a chain link by link, entries fed in `seq` order: the one check
/// behind [`crate::TenantTx::verify_audit_chain`] (entries read from the
/// database) and an export's offline verification (entries read from a
/// file). It holds one entry's worth of state, whatever the chain's length.
///
/// ```
/// use tenantkit::audit::ChainCheck;
///
/// // An empty chain whose head says so is valid.
/// let report = ChainCheck::new(0, "").finish(0, "");
/// assert!(report.valid);
/// // A head that claims entries nobody fed is a deleted tail.
/// let report = ChainCheck::new(0, "").finish(3, "abc");
/// assert_eq!(report.first_broken.unwrap().reason, "head_mismatch");
/// ```
#[derive(Clone, Debug)]
pub struct ChainCheck {
    first_seq: i64,
    expected_seq: i64,
    prev_hash: String,
    checked: u64,
    first_broken: Option<BrokenLink>,
}

impl ChainCheck {
    /// A check of a chain that starts after `anchor_seq` (0, or where a
    /// retention purge ended), whose first entry links to `anchor_hash`.
    pub fn new(anchor_seq: i64, anchor_hash: &str) -> Self {
        Self {
            first_seq: anchor_seq + 1,
            expected_seq: anchor_seq + 1,
            prev_hash: anchor_hash.to_owned(),
            checked: 0,
            first_broken: None,
        }
    }

    /// The `seq` the next entry must have (the last one checked, plus one).
    pub fn next_seq(&self) -> i64 {
        self.expected_seq
    }

    /// Checks the next entry: its position, its link to the previous one
    /// and its own hash. `false` once a link is broken (feed no more).
    pub fn push(&mut self, entry: &AuditEntry) -> bool {
        if self.first_broken.is_some() {
            return false;
        }
        self.checked += 1;
        let broken = |seq, id, reason| Some(BrokenLink { seq, id, reason });
        self.first_broken = if entry.seq != self.expected_seq {
            broken(self.expected_seq, None, "missing_entry")
        } else if entry.prev_hash != self.prev_hash {
            broken(entry.seq, Some(entry.id), "prev_hash_mismatch")
        } else if entry.compute_hash() != entry.hash {
            broken(entry.seq, Some(entry.id), "hash_mismatch")
        } else {
            None
        };
        if self.first_broken.is_some() {
            return false;
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&entry.hash);
        true
    }

    /// The report, once every entry was fed: the last one must be the head
    /// (`head_seq`, `head_hash`), or the tail was cut off.
    pub fn finish(mut self, head_seq: i64, head_hash: &str) -> ChainReport {
        if self.first_broken.is_none()
            && (self.expected_seq - 1 != head_seq || self.prev_hash != head_hash)
        {
            self.first_broken = Some(BrokenLink {
                seq: self.expected_seq,
                id: None,
                reason: "head_mismatch",
            });
        }
        ChainReport {
            valid: self.first_broken.is_none(),
            checked: self.checked,
            first_seq: self.first_seq,
            head_seq,
            first_broken: self.first_broken,
        }
    }
}

/// Where and how a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokenLink {
    /// The position of the broken link.
    pub seq: i64,
    /// The entry there, if it exists.
    pub id: Option<AuditEntryId>,
    /// What is wrong: `hash_mismatch`, `prev_hash_mismatch`, `missing_entry` or `head_mismatch`.
    pub reason: &'static str,
}
