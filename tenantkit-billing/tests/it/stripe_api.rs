//! Outbound Stripe calls against a local fake Stripe (wiremock) answering with
//! Stripe's JSON shapes.

use serde_json::{Value, json};
use tenantkit::{Secret, TenantContext};
use tenantkit_billing::{Billing, BillingConfig, BillingError};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::common::{config, sqlite, tenant};

const SECRET_KEY: &str = "sk_test_51Fake";

fn customer_json(id: &str, t: &TenantContext) -> Value {
    json!({
        "id": id, "object": "customer", "address": null, "balance": 0, "created": 1_700_000_000,
        "currency": null, "default_source": null, "delinquent": false, "description": null,
        "discount": null, "email": "ann@acme.test", "invoice_prefix": "0759376C",
        "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
        "livemode": false, "metadata": { "tenant_id": t.id().to_string() }, "name": t.tenant().name,
        "next_invoice_sequence": 1, "phone": null, "preferred_locales": [], "shipping": null,
        "tax_exempt": "none", "test_clock": null
    })
}

fn checkout_json(customer: &str, t: &TenantContext) -> Value {
    json!({
        "id": "cs_test_a1b2", "object": "checkout.session", "after_expiration": null,
        "allow_promotion_codes": null, "amount_subtotal": 2900, "amount_total": 2900,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null, "cancel_url": "http://localhost:8080/billing/cancel",
        "client_reference_id": t.id().to_string(), "client_secret": null, "collected_information": null,
        "consent": null, "consent_collection": null, "created": 1_700_000_000, "currency": "usd",
        "currency_conversion": null, "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null },
        "customer": customer, "customer_creation": null, "customer_details": null, "customer_email": null,
        "discounts": [], "expires_at": 1_700_086_400, "invoice": null, "invoice_creation": null,
        "livemode": false, "locale": null, "metadata": { "tenant_id": t.id().to_string() }, "mode": "subscription",
        "payment_intent": null, "payment_link": null, "payment_method_collection": "always",
        "payment_method_configuration_details": null, "payment_method_options": {},
        "payment_method_types": ["card"], "payment_status": "unpaid", "phone_number_collection": { "enabled": false },
        "recovered_from": null, "saved_payment_method_options": null, "setup_intent": null,
        "shipping_address_collection": null, "shipping_cost": null, "shipping_details": null,
        "shipping_options": [], "status": "open", "submit_type": null, "subscription": null,
        "success_url": "http://localhost:8080/billing/success",
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted", "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2"
    })
}

fn portal_json(customer: &str) -> Value {
    json!({
        "id": "bps_1MrSjz", "object": "billing_portal.session", "configuration": "bpc_1MAhNA",
        "created": 1_700_000_000, "customer": customer, "flow": null, "livemode": false, "locale": null,
        "on_behalf_of": null, "return_url": "http://localhost:8080/",
        "url": "https://billing.stripe.com/p/session/test_YWNjdF8x"
    })
}

fn stripe_config(server: &MockServer) -> BillingConfig {
    let mut config = config();
    config.stripe_secret_key = Some(Secret::from(SECRET_KEY.to_owned()));
    config.stripe_api_base = Some(server.uri());
    config
}

/// The form body of a request, brackets decoded (`a[b]=c`).
fn form(req: &wiremock::Request) -> String {
    String::from_utf8(req.body.clone())
        .unwrap()
        .replace("%5B", "[")
        .replace("%5D", "]")
}

#[tokio::test]
async fn checkout_creates_the_customer_then_a_subscription_session() {
    let server = MockServer::start().await;
    let db = sqlite().await;
    let t = tenant(&db).await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header(
            "authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer_json("cus_New1", &t)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(checkout_json("cus_New1", &t)))
        .expect(2)
        .mount(&server)
        .await;
    let billing = Billing::new(db.clone(), stripe_config(&server)).unwrap();
    let url = billing
        .checkout(&t, "pro", Some("ann@acme.test"))
        .await
        .unwrap();
    assert_eq!(url, "https://checkout.stripe.com/c/pay/cs_test_a1b2");

    let requests = server.received_requests().await.unwrap();
    let customer = form(&requests[0]);
    assert!(
        customer.contains(&format!("metadata[tenant_id]={}", t.id())),
        "{customer}"
    );
    assert!(customer.contains("email=ann@acme.test"), "{customer}");
    let session = form(&requests[1]);
    for expected in [
        "mode=subscription".to_owned(),
        "customer=cus_New1".to_owned(),
        format!("client_reference_id={}", t.id()),
        "line_items[0][price]=price_pro".to_owned(),
        "line_items[0][quantity]=1".to_owned(),
        format!("subscription_data[metadata][tenant_id]={}", t.id()),
    ] {
        assert!(
            session.contains(&expected),
            "{expected} missing from {session}"
        );
    }
    assert_eq!(
        db.resolve_external_id("stripe_customer", "cus_New1")
            .await
            .unwrap()
            .unwrap()
            .id(),
        t.id()
    );

    // A second checkout reuses the customer (the mock allows one creation only).
    billing.checkout(&t, "enterprise", None).await.unwrap();
    let last = form(server.received_requests().await.unwrap().last().unwrap());
    assert!(
        last.contains("customer=cus_New1")
            && last.contains("line_items[0][price]=price_enterprise"),
        "{last}"
    );
}

#[tokio::test]
async fn portal_session_for_the_tenants_customer() {
    let server = MockServer::start().await;
    let db = sqlite().await;
    let t = tenant(&db).await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(portal_json("cus_Portal")))
        .expect(1)
        .mount(&server)
        .await;
    let billing = Billing::new(db.clone(), stripe_config(&server)).unwrap();
    assert!(
        matches!(billing.portal(&t).await, Err(BillingError::NoCustomer)),
        "no checkout yet"
    );
    db.platform()
        .link_external_id("stripe_customer", "cus_Portal", t.id())
        .await
        .unwrap();
    assert_eq!(
        billing.portal(&t).await.unwrap(),
        "https://billing.stripe.com/p/session/test_YWNjdF8x"
    );
    let body = form(&server.received_requests().await.unwrap()[0]);
    assert!(
        body.contains("customer=cus_Portal") && body.contains("return_url="),
        "{body}"
    );
}

#[tokio::test]
async fn stripe_errors_become_bad_gateway_without_details() {
    let server = MockServer::start().await;
    let db = sqlite().await;
    let t = tenant(&db).await;
    db.platform()
        .link_external_id("stripe_customer", "cus_Err", t.id())
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": "No such price: 'price_pro'",
                "param": "line_items[0][price]",
                "type": "invalid_request_error"
            }
        })))
        .mount(&server)
        .await;
    let billing = Billing::new(db, stripe_config(&server)).unwrap();
    let err = billing.checkout(&t, "pro", None).await.unwrap_err();
    assert!(matches!(err, BillingError::Stripe(_)), "{err:?}");
    let problem = tenantkit::problem::Problem::from(&err);
    assert_eq!(problem.status, 502);
    assert!(
        !problem.detail.unwrap().contains("price_pro"),
        "Stripe's message stays in the logs"
    );
}

#[tokio::test]
async fn checkout_needs_a_configured_key_and_a_priced_plan() {
    let db = sqlite().await;
    let t = tenant(&db).await;
    let unconfigured = Billing::new(db.clone(), config()).unwrap();
    let err = unconfigured.checkout(&t, "pro", None).await.unwrap_err();
    assert!(matches!(err, BillingError::NotConfigured(_)));
    assert_eq!(tenantkit::problem::Problem::from(&err).status, 503);

    let server = MockServer::start().await;
    let billing = Billing::new(db, stripe_config(&server)).unwrap();
    assert!(matches!(
        billing.checkout(&t, "platinum", None).await,
        Err(BillingError::UnknownPlan(_))
    ));
    assert!(
        matches!(
            billing.checkout(&t, "free", None).await,
            Err(BillingError::UnknownPlan(_))
        ),
        "free has no price"
    );
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing was sent to Stripe"
    );
}

#[test]
fn keys_and_secrets_are_redacted_in_debug() {
    let mut config = config();
    config.stripe_secret_key = Some(Secret::from(SECRET_KEY.to_owned()));
    let shown = format!("{config:?}");
    assert!(
        !shown.contains(SECRET_KEY) && !shown.contains("whsec_"),
        "{shown}"
    );
    assert!(shown.contains("[redacted]"));
}

#[tokio::test]
async fn deletion_cancels_the_running_subscription_once() {
    use tenantkit_billing::testing::{event, now, subscription};
    let server = MockServer::start().await;
    let db = sqlite().await;
    let billing = Billing::new(db.clone(), stripe_config(&server)).unwrap();
    let t = tenant(&db).await;
    // No subscription: nothing to cancel, Stripe not called.
    assert_eq!(billing.cancel_for_deletion(&t).await.unwrap(), None);

    let at = now();
    let (body, signature) = crate::common::signed(&event(
        "evt_sub1",
        "customer.subscription.updated",
        at,
        subscription(&t, "active", "price_pro", at + 86_400),
    ));
    billing
        .receive_webhook(&body, Some(&signature))
        .await
        .unwrap();
    assert_eq!(billing.plan_for(&t).await.unwrap().id, "pro");
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_1Pabc"))
        .and(header(
            "authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription(
            &t,
            "canceled",
            "price_pro",
            at + 86_400,
        )))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        billing.cancel_for_deletion(&t).await.unwrap().as_deref(),
        Some("sub_1Pabc")
    );
    let view = billing.subscription(&t).await.unwrap();
    assert_eq!(view.subscription.unwrap().status, "canceled");
    assert_eq!(view.effective_plan.id, "free");
    // Recorded: a second run does not call Stripe again (expect(1)).
    assert_eq!(billing.cancel_for_deletion(&t).await.unwrap(), None);
}

#[tokio::test]
async fn cancellation_treats_a_missing_subscription_as_canceled_and_reports_failures() {
    use tenantkit_billing::testing::{event, now, subscription};
    let server = MockServer::start().await;
    let db = sqlite().await;
    let t = tenant(&db).await;
    let at = now();
    let (body, signature) = crate::common::signed(&event(
        "evt_sub2",
        "customer.subscription.updated",
        at,
        subscription(&t, "active", "price_pro", at + 86_400),
    ));
    // Without a Stripe key the running subscription cannot be canceled.
    let keyless = Billing::new(db.clone(), config()).unwrap();
    keyless
        .receive_webhook(&body, Some(&signature))
        .await
        .unwrap();
    assert!(matches!(
        keyless.cancel_for_deletion(&t).await,
        Err(BillingError::NotConfigured(_))
    ));

    let billing = Billing::new(db.clone(), stripe_config(&server)).unwrap();
    let failing = Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_1Pabc"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": { "type": "api_error", "message": "Something went wrong" }
        })))
        .mount_as_scoped(&server)
        .await;
    assert!(matches!(
        billing.cancel_for_deletion(&t).await,
        Err(BillingError::Stripe(_))
    ));
    assert_eq!(
        billing
            .subscription(&t)
            .await
            .unwrap()
            .subscription
            .unwrap()
            .status,
        "active",
        "not recorded as canceled"
    );
    drop(failing);
    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_1Pabc"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": { "type": "invalid_request_error", "code": "resource_missing",
                       "message": "No such subscription: 'sub_1Pabc'", "param": "id" }
        })))
        .mount(&server)
        .await;
    assert_eq!(
        billing.cancel_for_deletion(&t).await.unwrap().as_deref(),
        Some("sub_1Pabc")
    );
    assert_eq!(
        billing
            .subscription(&t)
            .await
            .unwrap()
            .subscription
            .unwrap()
            .status,
        "canceled"
    );
}
