-- Endpoint secrets (sealed or not) are never exported.
COMMENT ON COLUMN webhooks.secret IS 'tenantkit:secret';
COMMENT ON COLUMN webhooks.previous_secret IS 'tenantkit:secret';
