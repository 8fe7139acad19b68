-- A tenant's own identity provider (single sign-on); see the PostgreSQL
-- migration. The issuer is also linked in `tenant_external_ids` under
-- provider `sso_issuer`, so it is the single sign-on of at most one tenant.
CREATE TABLE tenant_sso (
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer         TEXT NOT NULL CHECK (length(issuer) BETWEEN 1 AND 255),
    audience       TEXT NOT NULL CHECK (length(audience) BETWEEN 1 AND 255),
    client_id      TEXT CHECK (length(client_id) BETWEEN 1 AND 255),
    jwks_uri       TEXT CHECK (length(jwks_uri) BETWEEN 1 AND 2000),
    email_claim    TEXT NOT NULL CHECK (length(email_claim) BETWEEN 1 AND 100),
    role_claim     TEXT CHECK (length(role_claim) BETWEEN 1 AND 100),
    email_domain   TEXT CHECK (length(email_domain) BETWEEN 1 AND 253),
    provision_role TEXT CHECK (provision_role IN ('owner', 'admin', 'member')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id)
) STRICT, WITHOUT ROWID;
