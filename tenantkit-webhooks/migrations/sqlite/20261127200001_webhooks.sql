-- tenantkit-webhooks: the tenant's endpoints (secrets sealed by the application).

CREATE TABLE webhooks (
    tenant_id                  BLOB NOT NULL REFERENCES tenants (id),
    id                         BLOB NOT NULL,
    url                        TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description                TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types                TEXT NOT NULL CHECK (json_type(event_types) = 'array'),
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TEXT,
    status                     TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason            TEXT,
    disabled_at                TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
