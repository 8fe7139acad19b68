-- Idempotency keys of publishing over HTTP: the first answer to a key (an
-- Idempotency-Key header, or a message's own id), kept at least 24 hours.

CREATE TABLE webhook_idempotency (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id),
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 3 AND 260),
    fingerprint TEXT NOT NULL CHECK (length(fingerprint) = 64),
    answer      TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_idempotency_by_time ON webhook_idempotency (tenant_id, created_at);
