-- Settings only the owner can change: `migrate` writes them from
-- configuration, and SECURITY DEFINER functions read them, so the runtime
-- role is held to what configuration keeps (e.g. the analytics retention
-- floor) whatever arguments it passes. The runtime role has no access.
CREATE TABLE tenantkit_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE tenantkit_settings IS 'tenantkit:platform';
