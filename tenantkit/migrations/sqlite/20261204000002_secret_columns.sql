-- Secret columns, never exported. SQLite has no column comments (PostgreSQL
-- marks them `COMMENT ON COLUMN ... IS 'tenantkit:secret'`): a crate adds
-- a row here in the migration that adds the column.
CREATE TABLE tenantkit_secret_columns (
    table_name  TEXT NOT NULL,
    column_name TEXT NOT NULL,
    PRIMARY KEY (table_name, column_name)
) WITHOUT ROWID;
INSERT INTO tenantkit_secret_columns (table_name, column_name) VALUES ('api_keys', 'hash');
