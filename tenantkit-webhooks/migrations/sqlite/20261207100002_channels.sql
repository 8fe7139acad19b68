-- Routing within a tenant: an endpoint's channels (none: every message of
-- its types). Wildcard event types (`user.*`) need no column.
ALTER TABLE webhooks ADD COLUMN channels TEXT NOT NULL DEFAULT '[]'
    CHECK (json_type(channels) = 'array' AND json_array_length(channels) <= 10);
