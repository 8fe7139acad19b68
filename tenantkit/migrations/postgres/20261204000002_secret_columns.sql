-- Secret columns are marked in the catalog (never exported): a crate marks
-- its own beside the DDL that adds them, so none is exported by omission.
COMMENT ON COLUMN api_keys.hash IS 'tenantkit:secret';
