-- Audit log (SOC 2): append-only, hash-chained per tenant. Same shape as PostgreSQL.

CREATE TABLE audit_logs (
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id),
    seq           INTEGER NOT NULL CHECK (seq > 0),
    id            BLOB    NOT NULL CHECK (length(id) = 16),
    actor_type    TEXT    NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'platform_admin', 'anonymous')),
    actor_id      TEXT,
    action        TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    resource_type TEXT    NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 100),
    resource_id   TEXT,
    before        TEXT CHECK (before IS NULL OR json_valid(before)),
    after         TEXT CHECK (after IS NULL OR json_valid(after)),
    request_id    TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    occurred_at   TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX audit_logs_time ON audit_logs (tenant_id, occurred_at);
CREATE INDEX audit_logs_resource ON audit_logs (tenant_id, resource_type, resource_id);

CREATE TABLE audit_heads (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    seq         INTEGER NOT NULL DEFAULT 0,
    hash        TEXT    NOT NULL DEFAULT '',
    anchor_seq  INTEGER NOT NULL DEFAULT 0,
    anchor_hash TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id)
) STRICT, WITHOUT ROWID;

-- Present only inside a retention purge's transaction.
CREATE TABLE audit_purge_in_progress (
    tenant_id BLOB NOT NULL PRIMARY KEY
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only (UPDATE refused)');
END;

CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_in_progress p WHERE p.tenant_id = OLD.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only (DELETE refused)');
END;
