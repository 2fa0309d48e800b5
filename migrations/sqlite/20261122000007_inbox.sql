-- The team inbox (issue 6): listing indexes, counts kept by triggers, search, and the columns
-- the event log needs for stable pagination. Kept in step with migrations/postgres.

ALTER TABLE events ADD COLUMN conversation_id BLOB;
ALTER TABLE events ADD COLUMN message_id BLOB;

CREATE INDEX conversations_org_status_activity_idx
    ON conversations (organization_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_unread_activity_idx
    ON conversations (organization_id, last_message_at DESC, id DESC) WHERE unread_count > 0;
CREATE INDEX conversations_assignee_activity_idx
    ON conversations (assignee_id, last_message_at DESC, id DESC) WHERE assignee_id IS NOT NULL;
CREATE INDEX conversation_labels_label_conversation_idx ON conversation_labels (label_id, conversation_id);
DROP INDEX conversation_labels_label_idx;

-- Inbox counts as appended deltas, folded by the janitor (see the PostgreSQL migration).
CREATE TABLE conversation_counts (
    organization_id BLOB NOT NULL,
    assignee_id     BLOB,
    open_count      INTEGER NOT NULL,
    unread_count    INTEGER NOT NULL
);
CREATE INDEX conversation_counts_org_idx ON conversation_counts (organization_id);

CREATE TRIGGER conversations_counts_insert AFTER INSERT ON conversations WHEN NEW.status = 'OPEN'
BEGIN
    INSERT INTO conversation_counts VALUES (NEW.organization_id, NEW.assignee_id, 1, NEW.unread_count > 0);
END;
CREATE TRIGGER conversations_counts_update AFTER UPDATE OF status, assignee_id, unread_count ON conversations
    WHEN OLD.status IS NOT NEW.status
      OR OLD.assignee_id IS NOT NEW.assignee_id
      OR (OLD.unread_count > 0) <> (NEW.unread_count > 0)
BEGIN
    INSERT INTO conversation_counts
        SELECT OLD.organization_id, OLD.assignee_id, -1, -(OLD.unread_count > 0) WHERE OLD.status = 'OPEN';
    INSERT INTO conversation_counts
        SELECT NEW.organization_id, NEW.assignee_id, 1, NEW.unread_count > 0 WHERE NEW.status = 'OPEN';
END;
INSERT INTO conversation_counts
    SELECT organization_id, assignee_id, count(*), sum(unread_count > 0)
    FROM conversations WHERE status = 'OPEN' GROUP BY organization_id, assignee_id;

-- Search (`q`) with FTS5. The index holds no copy of the text (contentless); its rowid is the
-- row's rowid, kept in step by triggers. (VACUUM may renumber rowids of tables without an
-- INTEGER PRIMARY KEY: after a VACUUM, run `INSERT INTO messages_fts(messages_fts) VALUES('delete-all')`
-- and refill, as below.)
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='', contentless_delete=1);
CREATE VIRTUAL TABLE conversations_fts USING fts5(contact, content='', contentless_delete=1);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts (rowid, body)
        SELECT NEW.rowid, t FROM (SELECT COALESCE(json_extract(NEW.content, '$.body'), json_extract(NEW.content, '$.text'),
                                                   json_extract(NEW.content, '$.caption'), json_extract(NEW.content, '$.title')) AS t)
        WHERE t IS NOT NULL AND t <> '';
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = OLD.rowid;
END;
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations
BEGIN
    INSERT INTO conversations_fts (rowid, contact)
        VALUES (NEW.rowid, COALESCE(NEW.contact_name, '') || ' ' || COALESCE(NEW.contact_username, ''));
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF contact_name, contact_username ON conversations
    WHEN OLD.contact_name IS NOT NEW.contact_name OR OLD.contact_username IS NOT NEW.contact_username
BEGIN
    DELETE FROM conversations_fts WHERE rowid = OLD.rowid;
    INSERT INTO conversations_fts (rowid, contact)
        VALUES (NEW.rowid, COALESCE(NEW.contact_name, '') || ' ' || COALESCE(NEW.contact_username, ''));
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations
BEGIN
    DELETE FROM conversations_fts WHERE rowid = OLD.rowid;
END;
INSERT INTO messages_fts (rowid, body)
    SELECT rowid, t FROM (SELECT rowid, COALESCE(json_extract(content, '$.body'), json_extract(content, '$.text'),
                                                 json_extract(content, '$.caption'), json_extract(content, '$.title')) AS t
                          FROM messages)
    WHERE t IS NOT NULL AND t <> '';
INSERT INTO conversations_fts (rowid, contact)
    SELECT rowid, COALESCE(contact_name, '') || ' ' || COALESCE(contact_username, '') FROM conversations;

DROP INDEX notes_conversation_idx;
CREATE INDEX notes_conversation_idx ON notes (conversation_id, created_at DESC, id DESC);
CREATE INDEX api_tokens_org_idx ON api_tokens (organization_id) WHERE organization_id IS NOT NULL;
