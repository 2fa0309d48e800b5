-- Inbound messages need no entry in the outbound look-up index (see the PostgreSQL migration).
-- SQLite cannot drop the table's idempotency UNIQUE constraint; it stays as it is.
DROP INDEX messages_org_external_idx;
CREATE INDEX messages_org_external_idx ON messages (organization_id, external_id)
    WHERE direction = 'OUTBOUND' AND external_id IS NOT NULL;
