//! API keys: tenant-owned, reached only through [`TenantTx`].

use std::fmt;

use chrono::{Duration, Utc};
use serde::Serialize;

use crate::{
    ApiKey, ApiKeyId, Error, NewApiKey, PageRequest, Result, TenantTx, api_key,
    audit::{Actor, Audited},
    store::sql,
    validate,
};

/// A key just created: the only time its secret is available.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    /// The stored key.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The full key, to hand to the client once. It cannot be recovered later.
    pub key: String,
}

impl fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("api_key", &self.api_key)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl TenantTx {
    /// Creates a key with a fresh random secret.
    pub async fn create_api_key(&mut self, new: &NewApiKey) -> Result<CreatedApiKey> {
        let name = validate::name("name", &new.name)?;
        let mut scopes = new.scopes.clone();
        scopes.dedup();
        let (key, prefix, hash) = api_key::generate();
        let q = self
            .query(sql::INSERT_API_KEY)
            .bind(ApiKeyId::new())
            .bind(name)
            .bind(prefix)
            .bind(hash)
            .bind(serde_json::to_value(&scopes).map_err(|e| Error::Internal(e.to_string()))?)
            .bind(Utc::now());
        let api_key = self.insert(q).await?;
        Ok(CreatedApiKey { api_key, key })
    }

    /// The tenant's keys (revoked ones included) in id order.
    pub async fn list_api_keys(&mut self, page: PageRequest<ApiKeyId>) -> Result<Vec<ApiKey>> {
        let limit = validate::limit(page.limit)?;
        let q = self
            .query(sql::LIST_API_KEYS)
            .bind(page.after.map(|id| id.as_uuid()))
            .bind(limit);
        self.fetch_all(q).await
    }

    /// Revokes a key (audited as `api_key.revoked`). Revoking a revoked key
    /// changes nothing and succeeds.
    pub async fn revoke_api_key(&mut self, id: ApiKeyId) -> Result<ApiKey> {
        let q = self.query(sql::GET_API_KEY).bind(id);
        let current: ApiKey = self
            .fetch_optional(q)
            .await?
            .ok_or(Error::NotFound("API key"))?;
        if current.revoked_at.is_some() {
            return Ok(current);
        }
        let q = self.query(sql::REVOKE_API_KEY).bind(id).bind(Utc::now());
        // Cached keys of the tenant are dropped at commit, in every process.
        self.users_changed().await?;
        self.update_as("api_key.revoked", &current, q).await
    }

    /// The live key `presented` is, if it is one of this tenant's. Records its
    /// use (at most once a minute, so a busy key does not write on every request).
    pub async fn verify_api_key(&mut self, presented: &str) -> Result<Option<ApiKey>> {
        let Some(key) = self.find_live_api_key(presented).await? else {
            return Ok(None);
        };
        self.record_api_key_use(&key).await?;
        Ok(Some(key))
    }

    /// The live key `presented` is, if it is one of this tenant's; only
    /// reads (a snapshot will do).
    pub async fn find_live_api_key(&mut self, presented: &str) -> Result<Option<ApiKey>> {
        let Some(prefix) = api_key::prefix_of(presented) else {
            return Ok(None);
        };
        let q = self.query(sql::API_KEY_BY_PREFIX).bind(prefix);
        let Some(key) = self.fetch_optional::<ApiKey>(q).await? else {
            return Ok(None);
        };
        Ok(accepts(&key, presented).then_some(key))
    }

    /// Records that `key` was used now, unless it was within the last
    /// minute (audited as `api_key.used` by the key).
    pub async fn record_api_key_use(&mut self, key: &ApiKey) -> Result<()> {
        if !api_key_use_is_due(key) {
            return Ok(());
        }
        let q = self
            .query(sql::RECORD_API_KEY_USE)
            .bind(key.id)
            .bind(Utc::now());
        self.set_actor(Actor::ApiKey(key.id));
        self.update_as("api_key.used", key, q).await?;
        Ok(())
    }
}

/// Whether the stored `key` accepts `presented`: not revoked, and the secret
/// matches its hash.
pub(crate) fn accepts(key: &ApiKey, presented: &str) -> bool {
    key.revoked_at.is_none() && api_key::matches(presented, &key.hash)
}

/// Whether `key`'s use is to be recorded: it was not used in the last minute.
pub(crate) fn api_key_use_is_due(key: &ApiKey) -> bool {
    key.last_used_at
        .is_none_or(|t| Utc::now() - t > Duration::minutes(1))
}

impl Audited for ApiKey {
    const RESOURCE_TYPE: &'static str = "api_key";

    fn resource_id(&self) -> String {
        self.id.to_string()
    }
}
