-- Retention: finding old messages per tenant.
CREATE INDEX webhook_messages_by_time ON webhook_messages (tenant_id, created_at);
