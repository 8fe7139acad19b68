-- tenantkit-billing: one subscription per tenant, and the Stripe events already applied.

CREATE TABLE subscriptions (
    tenant_id              BLOB    NOT NULL REFERENCES tenants (id),
    stripe_customer_id     TEXT,
    stripe_subscription_id TEXT,
    plan                   TEXT    NOT NULL,
    status                 TEXT    NOT NULL,
    current_period_end     TEXT,
    cancel_at_period_end   INTEGER NOT NULL DEFAULT 0,
    past_due_since         TEXT,
    last_event_at          TEXT,
    last_event_rank        INTEGER NOT NULL DEFAULT 0,
    updated_at             TEXT    NOT NULL,
    PRIMARY KEY (tenant_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE stripe_events (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id),
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    event_created TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
) STRICT, WITHOUT ROWID;
