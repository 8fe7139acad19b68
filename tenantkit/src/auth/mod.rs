//! Authentication (JWT bearer tokens and API keys) and the permission model.
//!
//! [`AuthLayer`] authenticates every request it wraps and puts a [`Principal`]
//! into the request extensions. Handlers then ask the principal for a
//! [`Permission`]:
//!
//! | permission | member | admin | owner | API key scope | platform admin |
//! |---|---|---|---|---|---|
//! | `ReadTenant` | yes | yes | yes | `tenant:read` | no |
//! | `ReadUsers` | yes | yes | yes | `users:read` | no |
//! | `WriteUsers` | no | yes | yes | `users:write` | no |
//! | `ReadApiKeys`, `WriteApiKeys` | no | yes | yes | `api_keys:read`, `api_keys:write` | no |
//! | `ReadAuditLogs` | no | yes | yes | `audit_logs:read` | only through the audited platform path |
//! | `ReadWebhooks`, `WriteWebhooks` | no | yes | yes | `webhooks:read`, `webhooks:write` | no |
//! | `PublishWebhooks` (publish messages) | no | yes | yes | `webhooks:publish` | no |
//! | `ReadAnalytics` (summary, time series) | yes | yes | yes | `analytics:read` | no |
//! | `WriteAnalytics` (send events) | yes | yes | yes | `analytics:write` | no |
//! | `GrantOwner` (make or unmake owners) | no | no | yes | never | no |
//! | `ManageBilling` (checkout, billing portal) | no | yes | yes | never | no |
//! | `ManageTenants` | no | no | no | never | yes |
//!
//! ```
//! use tenantkit::{Role, TenantId, auth::{Permission, Principal}};
//!
//! let member = Principal::user(TenantId::new(), "u1", Role::Member);
//! assert!(member.allows(Permission::ReadUsers));
//! assert!(!member.allows(Permission::WriteUsers));
//! let denied = tenantkit::problem::Problem::from(member.require(Permission::WriteUsers).unwrap_err());
//! assert_eq!(denied.status, 403);
//! ```

mod issuers;
mod jwt;
mod layer;

use http::StatusCode;
pub use issuers::{
    FETCH_TIMEOUT, IssuerConfig, IssuerToken, Issuers, KeyFetches, MAX_DOCUMENT_BYTES, MAX_KEYS,
    Refusal, TenantIssuers,
};
pub use jwt::{Claims, JwtKeys, MIN_SECRET_LEN, TokenError, TokenRole, UserClaim, parse_algorithm};
pub use layer::{
    AuthLayer, AuthService, AuthStore, Authenticated, WEBSOCKET_BEARER_PREFIX, WEBSOCKET_PROTOCOL,
    provision_within,
};
use serde::Serialize;

pub use crate::store::SecurityEvent;
use crate::{ApiKey, ApiKeyId, Role, Scope, TenantId, audit::Actor, problem::Problem};

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The tenant it acts in; `None` only for a platform admin.
    pub tenant: Option<TenantId>,
    /// Who it is.
    pub subject: Subject,
}

/// The kind of caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// A user with a JWT.
    User {
        /// The user's id.
        id: String,
        /// The effective role: the lesser of the token's and the user's current one.
        role: Role,
    },
    /// A program with an API key.
    ApiKey {
        /// The key's id.
        id: ApiKeyId,
        /// What the key may do.
        scopes: Vec<Scope>,
    },
    /// A platform operator with a platform-admin JWT.
    PlatformAdmin {
        /// The token's `sub`.
        id: String,
    },
}

/// Something a handler may need to be allowed; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permission {
    /// Read the tenant.
    ReadTenant,
    /// List and read users.
    ReadUsers,
    /// Create, change and delete users.
    WriteUsers,
    /// List API keys.
    ReadApiKeys,
    /// Create and revoke API keys.
    WriteApiKeys,
    /// Read, export and verify the tenant's audit trail.
    ReadAuditLogs,
    /// Make a user an owner, or change or delete an owner.
    GrantOwner,
    /// List webhook endpoints, deliveries and dead letters.
    ReadWebhooks,
    /// Create, change, test and delete webhook endpoints; retry deliveries.
    WriteWebhooks,
    /// Publish webhook messages to the tenant's endpoints.
    PublishWebhooks,
    /// Read the analytics summary and time series.
    ReadAnalytics,
    /// Send analytics events.
    WriteAnalytics,
    /// Start a checkout or open the billing portal.
    ManageBilling,
    /// Create and list tenants.
    ManageTenants,
    /// Register, change or remove the tenant's own identity provider.
    ManageSso,
}

impl Principal {
    /// A user with a tenant role.
    pub fn user(tenant: TenantId, id: impl Into<String>, role: Role) -> Self {
        Self {
            tenant: Some(tenant),
            subject: Subject::User {
                id: id.into(),
                role,
            },
        }
    }

    /// An API key of its tenant.
    pub fn api_key(key: &ApiKey) -> Self {
        Self {
            tenant: Some(key.tenant_id),
            subject: Subject::ApiKey {
                id: key.id,
                scopes: key.scopes.clone(),
            },
        }
    }

    /// A platform admin.
    pub fn platform_admin(id: impl Into<String>) -> Self {
        Self {
            tenant: None,
            subject: Subject::PlatformAdmin { id: id.into() },
        }
    }

    /// Whether this principal has `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        use Permission::*;
        match &self.subject {
            Subject::PlatformAdmin { .. } => permission == ManageTenants,
            Subject::User { role, .. } => match permission {
                ReadTenant | ReadUsers | ReadAnalytics | WriteAnalytics => true,
                WriteUsers | ReadApiKeys | WriteApiKeys | ReadAuditLogs | ReadWebhooks
                | WriteWebhooks | PublishWebhooks | ManageBilling => *role >= Role::Admin,
                GrantOwner | ManageSso => *role == Role::Owner,
                ManageTenants => false,
            },
            Subject::ApiKey { scopes, .. } => {
                let needed = match permission {
                    ReadTenant => Scope::TenantRead,
                    ReadUsers => Scope::UsersRead,
                    WriteUsers => Scope::UsersWrite,
                    ReadApiKeys => Scope::ApiKeysRead,
                    WriteApiKeys => Scope::ApiKeysWrite,
                    ReadAuditLogs => Scope::AuditLogsRead,
                    ReadWebhooks => Scope::WebhooksRead,
                    WriteWebhooks => Scope::WebhooksWrite,
                    PublishWebhooks => Scope::WebhooksPublish,
                    ReadAnalytics => Scope::AnalyticsRead,
                    WriteAnalytics => Scope::AnalyticsWrite,
                    GrantOwner | ManageTenants | ManageBilling | ManageSso => return false,
                };
                scopes.contains(&needed)
            }
        }
    }

    /// `Ok` when allowed, else [`Denied`] (a `403` problem).
    pub fn require(&self, permission: Permission) -> Result<(), Denied> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(Denied(permission))
        }
    }
}

/// A principal lacked a [`Permission`]; becomes a `403` problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this credential lacks the {0:?} permission")]
pub struct Denied(pub Permission);

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden").with_detail(denied.to_string())
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        match &p.subject {
            Subject::User { id, .. } => Actor::User(id.clone()),
            Subject::ApiKey { id, .. } => Actor::ApiKey(*id),
            Subject::PlatformAdmin { id } => Actor::PlatformAdmin(id.clone()),
        }
    }
}
