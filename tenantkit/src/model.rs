//! The tenant model: tenants, their users and their API keys.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, Error, Result, TenantId, UserId};

/// A tenant: one customer organisation, isolated from every other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unique DNS label: `acme` serves `acme.<base domain>`.
    pub subdomain: String,
    /// Whether it may be used.
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Whether a tenant may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Requests are refused; data is kept.
    Suspended,
}

/// A user of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// Its id.
    pub id: UserId,
    /// E-mail address, unique within the tenant (stored lower-case).
    pub email: String,
    /// What it may do.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A user's role within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Reads the tenant's data.
    Member,
    /// Also manages users and API keys.
    Admin,
    /// Also manages owners.
    Owner,
}

/// An API key, as stored: the secret itself is never kept, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// Its id.
    pub id: ApiKeyId,
    /// A human label.
    pub name: String,
    /// The public part of the key, used to look it up.
    pub prefix: String,
    /// SHA-256 of the secret part.
    #[serde(skip)]
    pub hash: String,
    /// What it may do.
    #[sqlx(json)]
    pub scopes: Vec<Scope>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A permission carried by an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Read the tenant.
    #[serde(rename = "tenant:read")]
    TenantRead,
    /// List and read users.
    #[serde(rename = "users:read")]
    UsersRead,
    /// Create, change and delete users.
    #[serde(rename = "users:write")]
    UsersWrite,
    /// List API keys.
    #[serde(rename = "api_keys:read")]
    ApiKeysRead,
    /// Create and revoke API keys.
    #[serde(rename = "api_keys:write")]
    ApiKeysWrite,
    /// Read, export and verify the audit trail.
    #[serde(rename = "audit_logs:read")]
    AuditLogsRead,
    /// List webhook endpoints, their deliveries and dead letters.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Create, change, test and delete webhook endpoints; retry deliveries.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    /// Publish webhook messages (`POST /webhooks/messages`).
    #[serde(rename = "webhooks:publish")]
    WebhooksPublish,
    /// Read the analytics summary and time series.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// Send analytics events.
    #[serde(rename = "analytics:write")]
    AnalyticsWrite,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and serialized spelling.
            pub const fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(crate::Error::invalid(format!(
                        concat!("unknown ", stringify!($ty), " `{}`; expected one of: ", $($text, " "),+),
                        other
                    ))),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = crate::Error;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

text_enum!(TenantStatus { Active = "active", Suspended = "suspended" });
text_enum!(Role { Member = "member", Admin = "admin", Owner = "owner" });
text_enum!(Scope {
    TenantRead = "tenant:read",
    UsersRead = "users:read",
    UsersWrite = "users:write",
    ApiKeysRead = "api_keys:read",
    ApiKeysWrite = "api_keys:write",
    AuditLogsRead = "audit_logs:read",
    WebhooksRead = "webhooks:read",
    WebhooksWrite = "webhooks:write",
    WebhooksPublish = "webhooks:publish",
    AnalyticsRead = "analytics:read",
    AnalyticsWrite = "analytics:write",
});

impl Scope {
    /// Every scope, for a key that may do everything an admin may.
    pub const ALL: [Scope; 11] = [
        Scope::TenantRead,
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::ApiKeysRead,
        Scope::ApiKeysWrite,
        Scope::AuditLogsRead,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::WebhooksPublish,
        Scope::AnalyticsRead,
        Scope::AnalyticsWrite,
    ];
}

/// What is needed to create a tenant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTenant {
    /// Display name (1 to 200 characters).
    pub name: String,
    /// DNS label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
    pub subdomain: String,
}

/// What is needed to create a user.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// E-mail address; compared case-insensitively.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    /// Role; `member` when omitted.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Member
}

/// A partial update of a user: absent fields are left as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    /// New e-mail address.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: Option<String>,
    /// New role.
    pub role: Option<Role>,
}

/// What is needed to create an API key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKey {
    /// A human label (1 to 200 characters once white space around it is
    /// trimmed, no control characters).
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]{0,198}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
        )
    )]
    pub name: String,
    /// What the key may do; read-only scopes when omitted.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<Scope>,
}

fn default_scopes() -> Vec<Scope> {
    vec![Scope::TenantRead, Scope::UsersRead]
}

/// A page of a keyset-paginated listing.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest<Id> {
    /// Return items after this id (exclusive): the previous page's `next_after`.
    pub after: Option<Id>,
    /// At most this many items (1 to [`PageRequest::MAX_LIMIT`]).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// The query parameters `after` and `limit`, whatever the id type.
#[cfg(feature = "openapi")]
impl<Id> utoipa::IntoParams for PageRequest<Id> {
    fn into_params(
        _parameter_in: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::{
            KnownFormat, ObjectBuilder, Required, SchemaFormat, Type,
            path::{ParameterBuilder, ParameterIn},
        };
        let param = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        vec![
            param(
                "after",
                "Return items after this id (exclusive): the previous page's `next_after`.",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            ),
            param(
                "limit",
                "At most this many items (1 to 500; 50 when omitted).",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(1))
                    .maximum(Some(500)),
            ),
        ]
    }
}

impl<Id> PageRequest<Id> {
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }
}

fn default_limit() -> u32 {
    50
}

/// What a tenant's owner (or a platform admin) registers: the tenant's own
/// identity provider and how its tokens name the tenant's users, and how
/// users not yet of the tenant are treated on their first sign-in (by its
/// own provider, or by a configured issuer's token naming the tenant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoSettings {
    /// The tenant's own provider's issuer, exactly as its tokens' `iss`
    /// (https; at most 255 characters, no query or fragment). Absent: no
    /// provider of its own; `email_domain` and `provision_role` then apply
    /// to tokens of the configured issuers naming the tenant.
    #[serde(default)]
    pub issuer: Option<String>,
    /// What the tokens' `aud` must contain (the API identifier or client id
    /// registered with the provider); given with `issuer`, and only then.
    #[serde(default)]
    pub audience: Option<String>,
    /// A public client (no secret) registered with the provider, for the
    /// dashboard's sign-in by Authorization Code + PKCE (with `issuer` only).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The key set's address; by default read from the issuer's discovery
    /// document (with `issuer` only).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim of the tenant's provider's tokens holding the user's
    /// e-mail address (default `email`; Entra ID tokens, say, have
    /// `preferred_username`). A configured issuer has its own.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// A claim of the tenant's provider's tokens whose role (`member`,
    /// `admin`, `owner`, or a list) caps the user's own; none by default
    /// (with `issuer` only).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// When set, only addresses of this domain sign in (and are provisioned).
    #[serde(default)]
    pub email_domain: Option<String>,
    /// When set, a signed-in user who is not yet a user of the tenant is
    /// created with this role (audited `user.provisioned`, within the plan's
    /// user limit); when absent (the default) such a token is refused.
    #[serde(default)]
    pub provision_role: Option<Role>,
}

fn default_email_claim() -> String {
    "email".into()
}

/// A tenant's registered identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantSso {
    /// The tenant.
    pub tenant_id: TenantId,
    /// What was registered.
    pub settings: SsoSettings,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl SsoSettings {
    /// The settings checked and normalised (trimmed, the domain lower-cased):
    /// every field within its limits, the addresses absolute `http(s)` URLs.
    /// Whether an address may be contacted is the operator's
    /// [`crate::ssrf::UrlPolicy`]'s to say, see
    /// `tenantkit::auth::TenantIssuers::vet`.
    ///
    /// ```
    /// use tenantkit::SsoSettings;
    ///
    /// let settings: SsoSettings = serde_json::from_value(serde_json::json!({
    ///     "issuer": "https://login.acme.example/",
    ///     "audience": "tenantkit",
    ///     "email_domain": "ACME.example",
    /// })).unwrap();
    /// let checked = settings.checked().unwrap();
    /// assert_eq!(checked.email_domain.as_deref(), Some("acme.example"));
    /// assert_eq!(checked.email_claim, "email");
    /// ```
    pub fn checked(&self) -> Result<SsoSettings> {
        if self.issuer.is_some() != self.audience.is_some() {
            return Err(Error::invalid(
                "`issuer` and `audience` go together: give both, or neither",
            ));
        }
        if self.issuer.is_none() {
            for (field, given) in [
                ("client_id", self.client_id.is_some()),
                ("jwks_uri", self.jwks_uri.is_some()),
                ("role_claim", self.role_claim.is_some()),
            ] {
                if given {
                    return Err(Error::invalid(format!(
                        "`{field}` is about the tenant's own provider: give `issuer` too"
                    )));
                }
            }
        }
        let issuer = self
            .issuer
            .as_deref()
            .map(|u| url("issuer", u, 255))
            .transpose()?;
        let jwks_uri = self
            .jwks_uri
            .as_deref()
            .map(|u| url("jwks_uri", u, 2000))
            .transpose()?;
        let email_domain = self
            .email_domain
            .as_deref()
            .map(|d| {
                let domain = d.trim().trim_start_matches('@').to_ascii_lowercase();
                let valid = (1..=253).contains(&domain.len())
                    && domain.contains('.')
                    && !domain.starts_with(['.', '-'])
                    && !domain.ends_with(['.', '-'])
                    && domain.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                    });
                if valid {
                    Ok(domain)
                } else {
                    Err(Error::invalid(format!(
                        "`email_domain` must be a domain name such as `acme.example`, got `{d}`"
                    )))
                }
            })
            .transpose()?;
        Ok(SsoSettings {
            issuer,
            audience: self
                .audience
                .as_deref()
                .map(|a| token_text("audience", a, 255))
                .transpose()?,
            client_id: self
                .client_id
                .as_deref()
                .map(|c| token_text("client_id", c, 255))
                .transpose()?,
            jwks_uri,
            email_claim: token_text("email_claim", &self.email_claim, 100)?,
            role_claim: self
                .role_claim
                .as_deref()
                .map(|c| token_text("role_claim", c, 100))
                .transpose()?,
            email_domain,
            provision_role: self.provision_role,
        })
    }
}

/// 1 to `max` characters after trimming, no control characters.
fn token_text(field: &str, value: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 || len > max {
        return Err(Error::invalid(format!(
            "`{field}` must be 1 to {max} characters, got {len}"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// An absolute `http(s)` URL without credentials, query or fragment, kept
/// exactly as given (an issuer is compared byte for byte).
fn url(field: &str, value: &str, max: usize) -> Result<String> {
    let value = token_text(field, value, max)?;
    let parsed = url::Url::parse(&value)
        .map_err(|e| Error::invalid(format!("`{field}` is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(Error::invalid(format!(
            "`{field}` must be an https URL, not `{}`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid(format!(
            "`{field}` must not contain a user name or password"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::invalid(format!(
            "`{field}` must not have a query or fragment"
        )));
    }
    Ok(value)
}
