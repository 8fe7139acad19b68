-- Endpoint secrets (sealed or not) are never exported.
INSERT INTO tenantkit_secret_columns (table_name, column_name)
    VALUES ('webhooks', 'secret'), ('webhooks', 'previous_secret');
