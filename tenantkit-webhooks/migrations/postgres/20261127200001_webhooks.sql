-- tenantkit-webhooks: the tenant's endpoints. Tenant-owned and isolated by
-- RLS like every other tenant table. Secrets are sealed (XChaCha20-Poly1305,
-- bound to the row) by the application; the database never sees them in clear.

CREATE TABLE webhooks (
    tenant_id                  uuid        NOT NULL REFERENCES tenants (id),
    id                         uuid        NOT NULL,
    url                        text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2000),
    description                text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    -- A JSON array of event types; ["*"] for every type.
    event_types                jsonb       NOT NULL CHECK (jsonb_typeof(event_types) = 'array'),
    secret                     text        NOT NULL,
    -- The secret being rotated out: it signs alongside the new one until it expires.
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    status                     text        NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason            text,
    disabled_at                timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantkit_isolate('webhooks');
