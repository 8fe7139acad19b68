-- Delivery: leases, the attempt log, endpoint health and the rate window.

ALTER TABLE webhook_queue ADD COLUMN lease_id BLOB;
ALTER TABLE webhook_queue ADD COLUMN last_attempt_at TEXT;
ALTER TABLE webhook_queue ADD COLUMN last_status INTEGER;
ALTER TABLE webhook_queue ADD COLUMN last_error TEXT;
DROP INDEX webhook_queue_due;
CREATE INDEX webhook_queue_pending ON webhook_queue (tenant_id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_queue_by_endpoint ON webhook_queue (tenant_id, webhook_id, message_id);

CREATE TABLE webhook_deliveries (
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    message_id       BLOB    NOT NULL,
    webhook_id       BLOB    NOT NULL,
    attempt          INTEGER NOT NULL CHECK (attempt >= 1),
    attempted_at     TEXT    NOT NULL,
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    response_status  INTEGER,
    error_class      TEXT,
    response_excerpt TEXT    NOT NULL DEFAULT '' CHECK (length(CAST(response_excerpt AS BLOB)) <= 4096),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, message_id, webhook_id)
        REFERENCES webhook_queue (tenant_id, message_id, webhook_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_deliveries_by_delivery ON webhook_deliveries (tenant_id, webhook_id, message_id, attempt);

CREATE TABLE webhook_health (
    tenant_id     BLOB NOT NULL,
    webhook_id    BLOB NOT NULL,
    failing_since TEXT,
    PRIMARY KEY (tenant_id, webhook_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_rate_windows (
    tenant_id    BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    window_start TEXT    NOT NULL,
    used         INTEGER NOT NULL CHECK (used >= 0)
) STRICT, WITHOUT ROWID;
