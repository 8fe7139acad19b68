//! [`Billing`] as the authentication store: everything as [`Db`] does it,
//! except that a user provisioned on first sign-in counts against the
//! tenant's plan (`402` at its user limit, as creating a user would be).

use std::sync::Arc;

use tenantkit::{
    ApiKey, Result, Role, TenantContext, TenantId, TenantSso,
    auth::{AuthStore, provision_within},
    store::{SecurityEvent, UserAccess, UserRef},
};

use crate::Billing;

impl AuthStore for Billing {
    async fn user_access(
        &self,
        tenant: &TenantContext,
        user: &UserRef,
    ) -> Result<Option<UserAccess>> {
        AuthStore::user_access(self.db(), tenant, user).await
    }

    async fn verify_api_key(
        &self,
        tenant: &TenantContext,
        presented: &str,
    ) -> Result<Option<ApiKey>> {
        AuthStore::verify_api_key(self.db(), tenant, presented).await
    }

    async fn tenant_of_external_id(
        &self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<TenantId>> {
        AuthStore::tenant_of_external_id(self.db(), provider, external_id).await
    }

    async fn tenant_sso(&self, tenant: &TenantContext) -> Result<Option<Arc<TenantSso>>> {
        AuthStore::tenant_sso(self.db(), tenant).await
    }

    async fn provision_user(
        &self,
        tenant: &TenantContext,
        email: &str,
        role: Role,
    ) -> Result<UserAccess> {
        let plan = self.plan_for(tenant).await?;
        provision_within(self.db(), tenant, email, role, plan.max_users).await
    }

    async fn record_refusal(&self, tenant: &TenantContext, refusal: &SecurityEvent) -> Result<()> {
        AuthStore::record_refusal(self.db(), tenant, refusal).await
    }
}
