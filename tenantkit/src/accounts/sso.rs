//! A tenant's own identity provider (single sign-on): tenant-owned, one per
//! tenant, reached only through [`TenantTx`].
//!
//! Registering an issuer claims it for the tenant: an issuer is the single
//! sign-on of at most one tenant ([`Error::Conflict`] otherwise), so a token
//! of tenant A's provider can never act in tenant B. Every change is audited
//! (`sso.registered`, `sso.updated`, `sso.removed`) and seen by
//! authentication at once in this process and within the access TTL (at
//! once on PostgreSQL) in every other.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    Error, Result, SsoSettings, TenantId, TenantSso, TenantTx, audit::Audited, store::sql, validate,
};

/// The row, as stored and audited.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
struct SsoRow {
    tenant_id: TenantId,
    issuer: Option<String>,
    audience: Option<String>,
    client_id: Option<String>,
    jwks_uri: Option<String>,
    email_claim: String,
    role_claim: Option<String>,
    email_domain: Option<String>,
    provision_role: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Audited for SsoRow {
    const RESOURCE_TYPE: &'static str = "sso";

    fn resource_id(&self) -> String {
        self.tenant_id.to_string()
    }
}

impl TryFrom<SsoRow> for TenantSso {
    type Error = Error;

    fn try_from(row: SsoRow) -> Result<Self> {
        Ok(TenantSso {
            tenant_id: row.tenant_id,
            settings: SsoSettings {
                issuer: row.issuer,
                audience: row.audience,
                client_id: row.client_id,
                jwks_uri: row.jwks_uri,
                email_claim: row.email_claim,
                role_claim: row.role_claim,
                email_domain: row.email_domain,
                provision_role: row.provision_role.map(|r| r.parse()).transpose()?,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl TenantTx {
    /// The tenant's identity provider, if it registered one.
    pub async fn sso(&mut self) -> Result<Option<TenantSso>> {
        let q = self.query(sql::GET_SSO);
        let row: Option<SsoRow> = self.fetch_optional(q).await?;
        row.map(TenantSso::try_from).transpose()
    }

    /// Registers the tenant's identity provider, or changes it
    /// ([`SsoSettings::checked`] first). The issuer is claimed for this
    /// tenant ([`Error::Conflict`] when it is another tenant's), and a
    /// replaced issuer released.
    pub async fn put_sso(&mut self, settings: &SsoSettings) -> Result<TenantSso> {
        let settings = settings.checked()?;
        self.lock_tenant_writes().await?;
        let current: Option<SsoRow> = {
            let q = self.query(sql::GET_SSO);
            self.fetch_optional(q).await?
        };
        let before = current.as_ref().and_then(|c| c.issuer.clone());
        if before != settings.issuer {
            if let Some(issuer) = &settings.issuer {
                self.claim_sso_issuer(issuer).await?;
            }
            if let Some(old) = &before {
                self.release_sso_issuer(old).await?;
            }
        }
        // Authentication reads the settings through the access cache.
        self.tenant_changed().await?;
        let now = validate::storage_precision(Utc::now());
        let (statement, action) = match &current {
            None => (sql::INSERT_SSO, "sso.registered"),
            Some(_) => (sql::UPDATE_SSO, "sso.updated"),
        };
        // Both statements take the settings as $2..$9 and the time as $10.
        let q = self
            .query(statement)
            .bind(settings.issuer.clone())
            .bind(settings.audience.clone())
            .bind(settings.client_id.clone())
            .bind(settings.jwks_uri.clone())
            .bind(settings.email_claim.as_str())
            .bind(settings.role_claim.clone())
            .bind(settings.email_domain.clone())
            .bind(settings.provision_role.map(|r| r.as_str().to_owned()))
            .bind(now);
        let row: SsoRow = match &current {
            None => self.insert_as(action, q).await?,
            Some(before) => self.update_as(action, before, q).await?,
        };
        TenantSso::try_from(row)
    }

    /// Removes the tenant's identity provider (its tokens stop acting in
    /// the tenant) and releases its issuer; [`Error::NotFound`] when none is
    /// registered.
    pub async fn delete_sso(&mut self) -> Result<TenantSso> {
        self.lock_tenant_writes().await?;
        let q = self.query(sql::GET_SSO);
        let current: SsoRow = self
            .fetch_optional(q)
            .await?
            .ok_or(Error::NotFound("single sign-on"))?;
        if let Some(issuer) = &current.issuer {
            self.release_sso_issuer(issuer).await?;
        }
        self.tenant_changed().await?;
        let q = self.query(sql::DELETE_SSO);
        self.delete_as("sso.removed", &current, q).await?;
        TenantSso::try_from(current)
    }
}
