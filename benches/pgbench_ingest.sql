-- The rows one WhatsApp webhook with one message writes, one transaction per webhook, as plain
-- SQL: the baseline Snorq's group-committed ingest is compared against (benches/ingest.sh).
-- Variables: org, conn (uuids of an organization and its WhatsApp connection), passed with -D;
-- run with -M prepared so they are bound parameters.
\set n random(1, 2000000000)
\set c random(1, 5000)
BEGIN;
SELECT id, organization_id FROM platform_connections
  WHERE platform = 'whatsapp' AND platform_user_id = (SELECT platform_user_id FROM platform_connections WHERE id = CAST(:conn AS uuid))
  AND status <> 'DISCONNECTED';
INSERT INTO conversations (id, organization_id, platform_connection_id, platform, external_id, contact_external_id,
  contact_name, status, last_message_at, unread_count, created_at, updated_at)
  VALUES (gen_random_uuid(), CAST(:org AS uuid), CAST(:conn AS uuid), 'whatsapp', 'pgbench-' || :c, 'pgbench-' || :c,
  'Customer', 'OPEN', now(), 0, now(), now())
  ON CONFLICT (platform_connection_id, external_id) DO NOTHING;
INSERT INTO messages (id, organization_id, conversation_id, direction, external_id, content_type, content, status,
  attempts, platform_timestamp, created_at, updated_at)
  SELECT gen_random_uuid(), CAST(:org AS uuid), id, 'INBOUND', 'wamid.pgbench.' || :n, 'text',
  '{"kind": "text", "body": "benchmark message"}', 'DELIVERED', 0, now(), now(), now()
  FROM conversations WHERE platform_connection_id = CAST(:conn AS uuid) AND external_id = 'pgbench-' || :c
  ON CONFLICT (conversation_id, external_id) DO NOTHING;
UPDATE conversations SET preview = 'benchmark message', last_message_at = now(), last_inbound_at = now(),
  unread_count = unread_count + 1, updated_at = now()
  WHERE platform_connection_id = CAST(:conn AS uuid) AND external_id = 'pgbench-' || :c;
INSERT INTO events (organization_id, kind, payload, created_at)
  VALUES (CAST(:org AS uuid), 'conversation.updated', '{}', now()), (CAST(:org AS uuid), 'message.created', '{}', now());
INSERT INTO webhook_events (id, platform, organization_id, body, received_at, status, processed_at, event_count, applied_count)
  VALUES (gen_random_uuid(), 'whatsapp', CAST(:org AS uuid), convert_to(repeat('x', 700), 'UTF8'), now(), 'PROCESSED', now(), 1, 1);
END;
