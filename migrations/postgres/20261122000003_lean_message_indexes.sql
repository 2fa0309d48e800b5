-- Inbound messages need neither index: receipts and echoes look up OUTBOUND messages by platform
-- id, and idempotency keys belong to outbound sends. Partial indexes skip the inbound majority.
DROP INDEX messages_org_external_idx;
CREATE INDEX messages_org_external_idx ON messages (organization_id, external_id)
    WHERE direction = 'OUTBOUND' AND external_id IS NOT NULL;

ALTER TABLE messages DROP CONSTRAINT messages_org_idempotency_key;
CREATE UNIQUE INDEX messages_org_idempotency_key ON messages (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
