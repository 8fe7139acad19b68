-- Platform table: which tenant an external id (a Stripe customer, say) belongs to.
CREATE TABLE tenant_external_ids (
    provider    TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    external_id TEXT NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    tenant_id   BLOB NOT NULL REFERENCES tenants (id),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (provider, external_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX tenant_external_ids_tenant ON tenant_external_ids (tenant_id);
