-- Platform table: which tenant an external id (a Stripe customer, say)
-- belongs to. Read before any tenant is known (inbound webhooks), so it is not
-- tenant-owned; under Citus it is a reference table, like `tenants`.
CREATE TABLE tenant_external_ids (
    provider    text        NOT NULL CHECK (char_length(provider) BETWEEN 1 AND 50),
    external_id text        NOT NULL CHECK (char_length(external_id) BETWEEN 1 AND 255),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, external_id)
);
CREATE INDEX tenant_external_ids_tenant ON tenant_external_ids (tenant_id);
COMMENT ON TABLE tenant_external_ids IS 'tenantkit:platform';
