-- A tenant's sign-in settings may name no provider of its own: its
-- provisioning and e-mail domain then apply to tokens of the configured
-- issuers naming the tenant. Issuer and audience come together.
ALTER TABLE tenant_sso ALTER COLUMN issuer DROP NOT NULL;
ALTER TABLE tenant_sso ALTER COLUMN audience DROP NOT NULL;
ALTER TABLE tenant_sso ADD CONSTRAINT tenant_sso_issuer_with_audience
    CHECK ((issuer IS NULL) = (audience IS NULL));
