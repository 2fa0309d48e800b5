-- Webhook ingest: receipts that arrive before their message, lookups by platform message id,
-- and per-webhook outcome counts.

-- Status receipts whose message is not stored yet (platforms do not order deliveries). Applied
-- and deleted when the message appears.
CREATE TABLE pending_receipts (
    id                     BLOB PRIMARY KEY,
    organization_id        BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    platform_connection_id BLOB NOT NULL REFERENCES platform_connections (id) ON DELETE CASCADE,
    external_id            text NOT NULL,
    status                 text NOT NULL CHECK (status IN ('SENT', 'DELIVERED', 'READ', 'FAILED')),
    error_code             text,
    error_message          text,
    platform_timestamp     TEXT NOT NULL,
    received_at            TEXT NOT NULL,
    CONSTRAINT pending_receipts_key UNIQUE (platform_connection_id, external_id, status),
    CONSTRAINT pending_receipts_external_id_length CHECK (length(external_id) BETWEEN 1 AND 512)
);

-- Receipts and echoes find messages by the platform's id within an organization.
CREATE INDEX messages_org_external_idx ON messages (organization_id, external_id) WHERE external_id IS NOT NULL;

ALTER TABLE webhook_events ADD COLUMN event_count integer NOT NULL DEFAULT 0;
ALTER TABLE webhook_events ADD COLUMN applied_count integer NOT NULL DEFAULT 0;
