-- A tenant's own identity provider (single sign-on): which issuer's tokens
-- act in the tenant, how they name its users, and whether unknown users are
-- provisioned on first sign-in. Tenant-owned; the issuer is also linked in
-- `tenant_external_ids` under provider `sso_issuer`, whose primary key makes
-- an issuer the single sign-on of at most one tenant.
CREATE TABLE tenant_sso (
    tenant_id      uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer         text        NOT NULL CHECK (char_length(issuer) BETWEEN 1 AND 255),
    audience       text        NOT NULL CHECK (char_length(audience) BETWEEN 1 AND 255),
    client_id      text        CHECK (char_length(client_id) BETWEEN 1 AND 255),
    jwks_uri       text        CHECK (char_length(jwks_uri) BETWEEN 1 AND 2000),
    email_claim    text        NOT NULL CHECK (char_length(email_claim) BETWEEN 1 AND 100),
    role_claim     text        CHECK (char_length(role_claim) BETWEEN 1 AND 100),
    email_domain   text        CHECK (char_length(email_domain) BETWEEN 1 AND 253),
    provision_role text        CHECK (provision_role IN ('owner', 'admin', 'member')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id)
);

ALTER TABLE tenant_sso ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_sso FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_sso
    USING (tenant_id = tenantkit_current_tenant())
    WITH CHECK (tenant_id = tenantkit_current_tenant());

-- Releases the current tenant's link of its single sign-on issuer (when it
-- changes or removes it): only a `sso_issuer` link, only the current
-- tenant's. Returns whether a link was released.
CREATE FUNCTION tenantkit_release_sso_issuer(p_issuer text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    released integer;
BEGIN
    IF tenantkit_current_tenant() IS NULL THEN
        RAISE EXCEPTION 'tenantkit_release_sso_issuer: no current tenant'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM tenant_external_ids
     WHERE provider = 'sso_issuer' AND external_id = p_issuer
       AND tenant_id = tenantkit_current_tenant();
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released > 0;
END $$;

REVOKE EXECUTE ON FUNCTION tenantkit_release_sso_issuer(text) FROM PUBLIC;
