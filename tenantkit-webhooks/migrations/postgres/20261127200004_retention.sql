-- Retention: messages older than the configured retention go, with their
-- deliveries and attempt log (foreign keys cascade), unless a delivery of
-- theirs is still pending.

CREATE INDEX webhook_messages_by_time ON webhook_messages (tenant_id, created_at);

-- Which tenants have messages published before p_cutoff: tenant ids and
-- times only, the oldest first (a loose index scan, like
-- tenantkit_webhooks_due_tenants, under the same transaction-local flag).
CREATE FUNCTION tenantkit_webhooks_expired_tenants(p_cutoff timestamptz, p_limit bigint, p_skip text)
    RETURNS TABLE (tenant_id uuid, due_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    skip uuid[] := CASE WHEN coalesce(p_skip, '') = '' THEN '{}'::uuid[]
                        ELSE string_to_array(p_skip, ',')::uuid[] END;
BEGIN
    PERFORM set_config('tenantkit.webhooks_due_scan', 'on', true);
    RETURN QUERY
    WITH RECURSIVE tenants_with_messages AS (
        (SELECT m.tenant_id FROM webhook_messages m ORDER BY m.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT m.tenant_id FROM webhook_messages m
                 WHERE m.tenant_id > t.tenant_id ORDER BY m.tenant_id LIMIT 1)
          FROM tenants_with_messages t WHERE t.tenant_id IS NOT NULL
    ), oldest AS (
        SELECT t.tenant_id,
               (SELECT m.created_at FROM webhook_messages m
                 WHERE m.tenant_id = t.tenant_id ORDER BY m.created_at LIMIT 1) AS due_at
          FROM tenants_with_messages t
         WHERE t.tenant_id IS NOT NULL AND NOT (t.tenant_id = ANY (skip))
    )
    SELECT o.tenant_id, o.due_at FROM oldest o
     WHERE o.due_at < p_cutoff
     ORDER BY o.due_at
     LIMIT p_limit;
    PERFORM set_config('tenantkit.webhooks_due_scan', 'off', true);
END $$;
REVOKE EXECUTE ON FUNCTION tenantkit_webhooks_expired_tenants(timestamptz, bigint, text) FROM PUBLIC;

CREATE POLICY webhooks_expiry_scan ON webhook_messages FOR SELECT TO CURRENT_USER
    USING (current_setting('tenantkit.webhooks_due_scan', true) = 'on');
