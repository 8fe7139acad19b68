-- Idempotency keys of publishing over HTTP: the first answer to a key (an
-- Idempotency-Key header, or a message's own id), kept at least 24 hours,
-- so that a retried publish answers the same and publishes nothing new, in
-- any server process. Operational records, tenant-owned and isolated.

CREATE TABLE webhook_idempotency (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    -- `r:` and the request's Idempotency-Key, or `m:` and a message's id.
    key         text        NOT NULL CHECK (char_length(key) BETWEEN 3 AND 260),
    -- SHA-256 (hex) of what was asked, canonical JSON: the same key with
    -- another request is refused.
    fingerprint text        NOT NULL CHECK (char_length(fingerprint) = 64),
    -- The first answer (JSON), written in the transaction that claimed the key.
    answer      text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX webhook_idempotency_by_time ON webhook_idempotency (tenant_id, created_at);
SELECT tenantkit_isolate('webhook_idempotency');
COMMENT ON TABLE webhook_idempotency IS 'tenantkit:operational';

-- Which tenants have keys claimed before p_cutoff: tenant ids and times
-- only, the oldest first (a loose index scan, like
-- tenantkit_webhooks_expired_tenants, under the same transaction-local flag).
CREATE FUNCTION tenantkit_webhooks_expired_key_tenants(p_cutoff timestamptz, p_limit bigint, p_skip text)
    RETURNS TABLE (tenant_id uuid, due_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    skip uuid[] := CASE WHEN coalesce(p_skip, '') = '' THEN '{}'::uuid[]
                        ELSE string_to_array(p_skip, ',')::uuid[] END;
BEGIN
    PERFORM set_config('tenantkit.webhooks_due_scan', 'on', true);
    RETURN QUERY
    WITH RECURSIVE tenants_with_keys AS (
        (SELECT k.tenant_id FROM webhook_idempotency k ORDER BY k.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT k.tenant_id FROM webhook_idempotency k
                 WHERE k.tenant_id > t.tenant_id ORDER BY k.tenant_id LIMIT 1)
          FROM tenants_with_keys t WHERE t.tenant_id IS NOT NULL
    ), oldest AS (
        SELECT t.tenant_id,
               (SELECT k.created_at FROM webhook_idempotency k
                 WHERE k.tenant_id = t.tenant_id ORDER BY k.created_at LIMIT 1) AS due_at
          FROM tenants_with_keys t
         WHERE t.tenant_id IS NOT NULL AND NOT (t.tenant_id = ANY (skip))
    )
    SELECT o.tenant_id, o.due_at FROM oldest o
     WHERE o.due_at < p_cutoff
     ORDER BY o.due_at
     LIMIT p_limit;
    PERFORM set_config('tenantkit.webhooks_due_scan', 'off', true);
END $$;
REVOKE EXECUTE ON FUNCTION tenantkit_webhooks_expired_key_tenants(timestamptz, bigint, text) FROM PUBLIC;

CREATE POLICY webhooks_key_expiry_scan ON webhook_idempotency FOR SELECT TO CURRENT_USER
    USING (current_setting('tenantkit.webhooks_due_scan', true) = 'on');
