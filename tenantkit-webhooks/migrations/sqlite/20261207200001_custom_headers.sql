-- Custom headers per endpoint: their names (shown), and the set itself
-- sealed like a secret (values may be credentials; never exported).
ALTER TABLE webhooks ADD COLUMN header_names TEXT NOT NULL DEFAULT '[]'
    CHECK (json_type(header_names) = 'array' AND json_array_length(header_names) <= 10);
ALTER TABLE webhooks ADD COLUMN secret_headers TEXT;
INSERT INTO tenantkit_secret_columns (table_name, column_name) VALUES ('webhooks', 'secret_headers');
