-- Delivery: leases on queue rows, the attempt log, endpoint health, the
-- per-tenant rate window, and the one cross-tenant mechanism the worker uses.

-- A claimed row's lease: who holds it (checked when the outcome is written,
-- so a worker whose lease expired cannot overwrite a newer attempt's result)
-- and the latest attempt, for listings.
ALTER TABLE webhook_queue
    ALTER COLUMN attempts TYPE bigint,
    ADD COLUMN lease_id        uuid,
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN last_status     bigint,
    ADD COLUMN last_error      text;
DROP INDEX webhook_queue_due;
-- Per tenant: due rows in time order (claims, and the due-tenant scan).
CREATE INDEX webhook_queue_pending ON webhook_queue (tenant_id, next_attempt_at) WHERE state = 'pending';
-- An endpoint's deliveries, newest first (message ids are time-ordered).
CREATE INDEX webhook_queue_by_endpoint ON webhook_queue (tenant_id, webhook_id, message_id);

-- The delivery log: one row per attempt.
CREATE TABLE webhook_deliveries (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    message_id       uuid        NOT NULL,
    webhook_id       uuid        NOT NULL,
    attempt          bigint      NOT NULL CHECK (attempt >= 1),
    attempted_at     timestamptz NOT NULL,
    duration_ms      bigint      NOT NULL CHECK (duration_ms >= 0),
    response_status  bigint,
    -- timeout, connection_refused, tls, blocked_address, dns, too_large, connection
    error_class      text,
    response_excerpt text        NOT NULL DEFAULT '' CHECK (octet_length(response_excerpt) <= 4096),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, message_id, webhook_id)
        REFERENCES webhook_queue (tenant_id, message_id, webhook_id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_by_delivery ON webhook_deliveries (tenant_id, webhook_id, message_id, attempt);
SELECT tenantkit_isolate('webhook_deliveries');
COMMENT ON TABLE webhook_deliveries IS 'tenantkit:operational';

-- Since when an endpoint has failed without a success in between.
CREATE TABLE webhook_health (
    tenant_id     uuid        NOT NULL,
    webhook_id    uuid        NOT NULL,
    failing_since timestamptz,
    PRIMARY KEY (tenant_id, webhook_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
SELECT tenantkit_isolate('webhook_health');
COMMENT ON TABLE webhook_health IS 'tenantkit:operational';

-- The delivery budget: deliveries claimed in the current minute, shared by
-- every worker process (claims lock this row).
CREATE TABLE webhook_rate_windows (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    window_start timestamptz NOT NULL,
    used         bigint      NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id)
);
SELECT tenantkit_isolate('webhook_rate_windows');
COMMENT ON TABLE webhook_rate_windows IS 'tenantkit:operational';

-- Which tenants have deliveries due at p_now: tenant ids and times, nothing
-- else (no payload, URL or secret), the longest waiting first. The worker
-- then claims each tenant's deliveries in a transaction scoped to it.
--
-- A loose index scan: one probe per tenant with pending rows, however long
-- any one tenant's backlog is. Tables are FORCEd under row-level security,
-- so even this function's owner sees no rows without a tenant; the policy
-- below lets the owner read queue rows while (and only while) this function
-- runs. Superusers bypass row-level security anyway.
CREATE FUNCTION tenantkit_webhooks_due_tenants(p_now timestamptz, p_limit bigint, p_skip text)
    RETURNS TABLE (tenant_id uuid, due_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    skip uuid[] := CASE WHEN coalesce(p_skip, '') = '' THEN '{}'::uuid[]
                        ELSE string_to_array(p_skip, ',')::uuid[] END;
BEGIN
    PERFORM set_config('tenantkit.webhooks_due_scan', 'on', true);
    RETURN QUERY
    WITH RECURSIVE tenants_pending AS (
        (SELECT q.tenant_id FROM webhook_queue q WHERE q.state = 'pending'
          ORDER BY q.tenant_id LIMIT 1)
        UNION ALL
        SELECT (SELECT q.tenant_id FROM webhook_queue q
                 WHERE q.state = 'pending' AND q.tenant_id > t.tenant_id
                 ORDER BY q.tenant_id LIMIT 1)
          FROM tenants_pending t WHERE t.tenant_id IS NOT NULL
    ), oldest AS (
        SELECT t.tenant_id,
               (SELECT q.next_attempt_at FROM webhook_queue q
                 WHERE q.state = 'pending' AND q.tenant_id = t.tenant_id
                 ORDER BY q.next_attempt_at LIMIT 1) AS due_at
          FROM tenants_pending t
         WHERE t.tenant_id IS NOT NULL AND NOT (t.tenant_id = ANY (skip))
    )
    SELECT o.tenant_id, o.due_at FROM oldest o
     WHERE o.due_at <= p_now
     ORDER BY o.due_at
     LIMIT p_limit;
    PERFORM set_config('tenantkit.webhooks_due_scan', 'off', true);
END $$;
REVOKE EXECUTE ON FUNCTION tenantkit_webhooks_due_tenants(timestamptz, bigint, text) FROM PUBLIC;

-- Read-only, for the migration role (the function's owner) alone, and only
-- while the function above has set its transaction-local flag.
CREATE POLICY webhooks_due_scan ON webhook_queue FOR SELECT TO CURRENT_USER
    USING (current_setting('tenantkit.webhooks_due_scan', true) = 'on');
