-- A tenant's sign-in settings may name no provider of its own (see the
-- PostgreSQL migration). SQLite cannot drop NOT NULL: the table is rebuilt.
CREATE TABLE tenant_sso_new (
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer         TEXT CHECK (length(issuer) BETWEEN 1 AND 255),
    audience       TEXT CHECK (length(audience) BETWEEN 1 AND 255),
    client_id      TEXT CHECK (length(client_id) BETWEEN 1 AND 255),
    jwks_uri       TEXT CHECK (length(jwks_uri) BETWEEN 1 AND 2000),
    email_claim    TEXT NOT NULL CHECK (length(email_claim) BETWEEN 1 AND 100),
    role_claim     TEXT CHECK (length(role_claim) BETWEEN 1 AND 100),
    email_domain   TEXT CHECK (length(email_domain) BETWEEN 1 AND 253),
    provision_role TEXT CHECK (provision_role IN ('owner', 'admin', 'member')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((issuer IS NULL) = (audience IS NULL)),
    PRIMARY KEY (tenant_id)
) STRICT, WITHOUT ROWID;
INSERT INTO tenant_sso_new SELECT * FROM tenant_sso;
DROP TABLE tenant_sso;
ALTER TABLE tenant_sso_new RENAME TO tenant_sso;
