-- A conversation's labels carry its activity (see the PostgreSQL migration of the same number).
ALTER TABLE conversation_labels ADD COLUMN last_message_at TEXT;
UPDATE conversation_labels SET last_message_at =
    (SELECT c.last_message_at FROM conversations c WHERE c.id = conversation_labels.conversation_id);
CREATE INDEX conversation_labels_activity_idx
    ON conversation_labels (label_id, last_message_at DESC, conversation_id DESC);
DROP INDEX conversation_labels_label_conversation_idx;

CREATE TRIGGER conversations_label_activity AFTER UPDATE OF last_message_at ON conversations
    WHEN OLD.last_message_at IS NOT NEW.last_message_at
BEGIN
    UPDATE conversation_labels SET last_message_at = NEW.last_message_at WHERE conversation_id = NEW.id;
END;
