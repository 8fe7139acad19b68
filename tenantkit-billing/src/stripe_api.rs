//! Outbound calls to Stripe (async-stripe): customers, Checkout, the billing
//! portal, cancellation.

use std::collections::HashMap;

use stripe::StripeRequest;
use stripe_billing::{
    billing_portal_session::CreateBillingPortalSession, subscription::CancelSubscription,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;
use tenantkit::{Secret, Tenant, TenantId};

use crate::BillingError;

/// A Stripe API client.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi").finish_non_exhaustive()
    }
}

fn stripe_error(e: stripe::StripeError) -> BillingError {
    BillingError::Stripe(e.to_string())
}

/// What this crate reads of a canceled subscription: the rest of Stripe's
/// object is ignored, so API-version changes do not break it.
#[derive(miniserde::Deserialize)]
struct Canceled {
    status: String,
}

fn tenant_metadata(tenant: TenantId) -> HashMap<String, String> {
    HashMap::from([("tenant_id".to_owned(), tenant.to_string())])
}

impl StripeApi {
    /// A client with `secret_key`, talking to `api_base` (default: Stripe itself).
    ///
    /// The client uses rustls with `ring`. When the process has no default
    /// rustls crypto provider yet, `ring` is installed as the default, since
    /// rustls cannot choose one by itself when several providers are compiled in.
    pub fn new(secret_key: &Secret, api_base: Option<&str>) -> Result<Self, BillingError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // The async client has no timeout of its own; a hung Stripe call must not hang a request.
        let mut builder = stripe::ClientBuilder::new(secret_key.expose())
            .timeout(std::time::Duration::from_secs(10));
        if let Some(base) = api_base {
            // Requests go to `{base}v1/...`.
            let base = if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        Ok(Self {
            client: builder.build().map_err(stripe_error)?,
        })
    }

    /// Creates the Stripe customer of `tenant` (tagged with its id); returns `cus_...`.
    pub async fn create_customer(
        &self,
        tenant: &Tenant,
        email: Option<&str>,
    ) -> Result<String, BillingError> {
        let mut request = CreateCustomer::new()
            .name(tenant.name.clone())
            .metadata(tenant_metadata(tenant.id));
        if let Some(email) = email {
            request = request.email(email);
        }
        Ok(request
            .send(&self.client)
            .await
            .map_err(stripe_error)?
            .id
            .to_string())
    }

    /// Creates a subscription Checkout Session for `price`; returns its URL.
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        price: &str,
        tenant: TenantId,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<String, BillingError> {
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price = Some(price.to_owned());
        line.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(tenant_metadata(tenant));
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(tenant.to_string())
            .line_items(vec![line])
            .subscription_data(subscription)
            .metadata(tenant_metadata(tenant))
            .success_url(success_url)
            .cancel_url(cancel_url)
            .send(&self.client)
            .await
            .map_err(stripe_error)?;
        session
            .url
            .ok_or_else(|| BillingError::Stripe("Checkout Session has no URL".into()))
    }

    /// Creates a billing portal session; returns its URL.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, BillingError> {
        let session = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(stripe_error)?;
        Ok(session.url)
    }

    /// Cancels `subscription` at once (Stripe's `DELETE /v1/subscriptions/{id}`);
    /// returns its status afterwards. A subscription Stripe no longer knows
    /// (404) counts as `canceled`.
    pub async fn cancel_subscription(&self, subscription: &str) -> Result<String, BillingError> {
        let request = CancelSubscription::new(subscription)
            .build()
            .customize::<Canceled>();
        match request.send(&self.client).await {
            Ok(canceled) => Ok(canceled.status),
            Err(stripe::StripeError::Stripe(_, 404)) => Ok("canceled".to_owned()),
            Err(e) => Err(stripe_error(e)),
        }
    }
}
