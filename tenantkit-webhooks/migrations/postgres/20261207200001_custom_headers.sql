-- Custom headers per endpoint: their names (shown), and the set itself
-- sealed like a secret (values may be credentials; never exported).
ALTER TABLE webhooks ADD COLUMN header_names jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(header_names) = 'array' AND jsonb_array_length(header_names) <= 10);
ALTER TABLE webhooks ADD COLUMN secret_headers text;
COMMENT ON COLUMN webhooks.secret_headers IS 'tenantkit:secret';
