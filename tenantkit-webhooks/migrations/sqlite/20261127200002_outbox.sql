-- The transactional outbox: messages, and a queue row per message and endpoint.

CREATE TABLE webhook_messages (
    tenant_id  BLOB NOT NULL REFERENCES tenants (id),
    id         BLOB NOT NULL,
    event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
    payload    TEXT NOT NULL CHECK (length(CAST(payload AS BLOB)) <= 1048576),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_queue (
    tenant_id       BLOB    NOT NULL,
    message_id      BLOB    NOT NULL,
    webhook_id      BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    leased_until    TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, message_id, webhook_id),
    FOREIGN KEY (tenant_id, message_id) REFERENCES webhook_messages (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_queue_due ON webhook_queue (next_attempt_at) WHERE state = 'pending';
