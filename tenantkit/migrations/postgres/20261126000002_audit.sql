-- Audit log (SOC 2): append-only, hash-chained per tenant, tenant-isolated.

CREATE TABLE audit_logs (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    seq           bigint      NOT NULL CHECK (seq > 0),
    id            uuid        NOT NULL,
    actor_type    text        NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'platform_admin', 'anonymous')),
    actor_id      text,
    action        text        NOT NULL CHECK (char_length(action) BETWEEN 1 AND 100),
    resource_type text        NOT NULL CHECK (char_length(resource_type) BETWEEN 1 AND 100),
    resource_id   text,
    before        jsonb,
    after         jsonb,
    request_id    text,
    client_ip     text,
    user_agent    text,
    occurred_at   timestamptz NOT NULL,
    prev_hash     text        NOT NULL,
    hash          text        NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
);
CREATE INDEX audit_logs_time ON audit_logs (tenant_id, occurred_at);
CREATE INDEX audit_logs_resource ON audit_logs (tenant_id, resource_type, resource_id);

-- The head of each tenant's chain. Appending locks this row, so concurrent
-- writers of one tenant take turns. The anchor is where the chain starts
-- after a retention purge.
CREATE TABLE audit_heads (
    tenant_id   uuid   NOT NULL REFERENCES tenants (id),
    seq         bigint NOT NULL DEFAULT 0,
    hash        text   NOT NULL DEFAULT '',
    anchor_seq  bigint NOT NULL DEFAULT 0,
    anchor_hash text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id)
);

-- One definition of tenant isolation for every tenant-owned table from here
-- on (later crates call it in their migrations): ENABLE and FORCE row-level
-- security and the policy on the current tenant.
CREATE FUNCTION tenantkit_isolate(tbl regclass) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s '
        'USING (tenant_id = tenantkit_current_tenant()) '
        'WITH CHECK (tenant_id = tenantkit_current_tenant())', tbl);
END $$;

SELECT tenantkit_isolate('audit_logs');
SELECT tenantkit_isolate('audit_heads');

-- Append-only, even for the owner: UPDATE, DELETE and TRUNCATE fail, except
-- DELETE inside tenantkit_audit_purge, which sets a transaction-local flag.
CREATE FUNCTION tenantkit_audit_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('tenantkit.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION tenantkit_audit_guard();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION tenantkit_audit_guard();

-- The one way to delete audit rows: the current tenant's entries older than
-- `cutoff` (at least a day old), oldest first, so the rest of the chain stays
-- contiguous; the head's anchor moves to the last purged entry. The caller
-- (tenantkit's store) records the purge itself as an audit entry.
CREATE FUNCTION tenantkit_audit_purge(tenant uuid, cutoff timestamptz)
    RETURNS TABLE (purged bigint, through_seq bigint, through_hash text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
    n         bigint;
BEGIN
    IF tenant IS NULL OR tenant IS DISTINCT FROM tenantkit_current_tenant() THEN
        RAISE EXCEPTION 'tenantkit_audit_purge: tenant must be the current tenant' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF cutoff > now() - interval '1 day' THEN
        RAISE EXCEPTION 'tenantkit_audit_purge: retention must be at least one day' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_logs a
        WHERE a.tenant_id = tenant AND a.occurred_at < cutoff ORDER BY a.seq DESC LIMIT 1;
    IF last_seq IS NULL THEN
        RETURN QUERY SELECT 0::bigint, NULL::bigint, NULL::text;
        RETURN;
    END IF;
    PERFORM set_config('tenantkit.audit_purge', 'on', true);
    DELETE FROM audit_logs a WHERE a.tenant_id = tenant AND a.seq <= last_seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('tenantkit.audit_purge', 'off', true);
    UPDATE audit_heads h SET anchor_seq = last_seq, anchor_hash = last_hash WHERE h.tenant_id = tenant;
    RETURN QUERY SELECT n, last_seq, last_hash;
END $$;
