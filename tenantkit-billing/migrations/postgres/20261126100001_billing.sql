-- tenantkit-billing: one subscription per tenant, and the Stripe events
-- already applied (idempotency). Both tenant-owned and isolated by RLS.

CREATE TABLE subscriptions (
    tenant_id              uuid        NOT NULL REFERENCES tenants (id),
    stripe_customer_id     text,
    stripe_subscription_id text,
    plan                   text        NOT NULL,
    status                 text        NOT NULL,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean     NOT NULL DEFAULT false,
    past_due_since         timestamptz,
    -- The newest Stripe event applied (its `created` and kind rank), so an
    -- older event delivered late never overwrites newer state.
    last_event_at          timestamptz,
    last_event_rank        bigint      NOT NULL DEFAULT 0,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id)
);
SELECT tenantkit_isolate('subscriptions');

CREATE TABLE stripe_events (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    event_created timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
SELECT tenantkit_isolate('stripe_events');
