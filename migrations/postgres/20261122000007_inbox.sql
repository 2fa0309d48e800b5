-- The team inbox (issue 6): listing indexes, counts kept by triggers, search, and the columns
-- the event log needs for stable pagination.

-- Message and conversation events name their conversation and message, so a listing can tell
-- which conversations changed after it started (see src/store/inbox_sql.rs).
ALTER TABLE events ADD COLUMN conversation_id uuid;
ALTER TABLE events ADD COLUMN message_id uuid;

-- The inbox's default view (open, newest activity first) and its filters.
CREATE INDEX conversations_org_status_activity_idx
    ON conversations (organization_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_unread_activity_idx
    ON conversations (organization_id, last_message_at DESC, id DESC) WHERE unread_count > 0;
CREATE INDEX conversations_assignee_activity_idx
    ON conversations (assignee_id, last_message_at DESC, id DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX conversation_labels_label_conversation_idx ON conversation_labels (label_id, conversation_id);
DROP INDEX conversation_labels_label_idx;

-- Inbox counts without counting conversations: every change of a conversation's status,
-- assignee or unread state appends a delta row (no row is updated, so concurrent writers never
-- wait on each other); the janitor folds them into one row per (organization, assignee).
CREATE TABLE conversation_counts (
    organization_id uuid NOT NULL,
    assignee_id     uuid,
    open_count      bigint NOT NULL,
    unread_count    bigint NOT NULL
);
CREATE INDEX conversation_counts_org_idx ON conversation_counts (organization_id);

CREATE FUNCTION conversation_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'OPEN' THEN
        INSERT INTO conversation_counts VALUES
            (OLD.organization_id, OLD.assignee_id, -1, CASE WHEN OLD.unread_count > 0 THEN -1 ELSE 0 END);
    END IF;
    IF NEW.status = 'OPEN' THEN
        INSERT INTO conversation_counts VALUES
            (NEW.organization_id, NEW.assignee_id, 1, CASE WHEN NEW.unread_count > 0 THEN 1 ELSE 0 END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_counts_insert AFTER INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversation_counts_delta();
CREATE TRIGGER conversations_counts_update AFTER UPDATE OF status, assignee_id, unread_count ON conversations
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id
          OR (OLD.unread_count > 0) <> (NEW.unread_count > 0))
    EXECUTE FUNCTION conversation_counts_delta();
INSERT INTO conversation_counts
    SELECT organization_id, assignee_id, count(*), count(*) FILTER (WHERE unread_count > 0)
    FROM conversations WHERE status = 'OPEN' GROUP BY organization_id, assignee_id;

-- Search (`q`): words of message text and of the contact's name, prefix-matched.
CREATE INDEX messages_text_search_idx ON messages USING gin (
    to_tsvector('simple', COALESCE(content->>'body', content->>'text', content->>'caption', content->>'title', ''))
);
CREATE INDEX conversations_contact_search_idx ON conversations USING gin (
    to_tsvector('simple', COALESCE(contact_name, '') || ' ' || COALESCE(contact_username, ''))
);

-- Notes are listed per conversation, newest first.
DROP INDEX notes_conversation_idx;
CREATE INDEX notes_conversation_idx ON notes (conversation_id, created_at DESC, id DESC);
-- API keys are listed per organization.
CREATE INDEX api_tokens_org_idx ON api_tokens (organization_id) WHERE organization_id IS NOT NULL;
