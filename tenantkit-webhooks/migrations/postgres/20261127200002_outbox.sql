-- The transactional outbox: a message per published event, and a queue row
-- per message and subscribed endpoint, written in the publisher's own
-- transaction. Operational records (written unaudited through
-- TenantTx::write_operational), tenant-owned and isolated like every other.

CREATE TABLE webhook_messages (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    id         uuid        NOT NULL,
    event_type text        NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 64),
    -- Exactly the body that is sent: {"type", "timestamp", "data"}.
    payload    text        NOT NULL CHECK (octet_length(payload) <= 1048576),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantkit_isolate('webhook_messages');
COMMENT ON TABLE webhook_messages IS 'tenantkit:operational';

CREATE TABLE webhook_queue (
    tenant_id       uuid        NOT NULL,
    message_id      uuid        NOT NULL,
    webhook_id      uuid        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    leased_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, message_id, webhook_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES webhook_messages (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_queue_due ON webhook_queue (next_attempt_at) WHERE state = 'pending';
SELECT tenantkit_isolate('webhook_queue');
COMMENT ON TABLE webhook_queue IS 'tenantkit:operational';
