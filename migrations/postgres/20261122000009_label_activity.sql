-- The label filter walked every open conversation in activity order and checked its labels
-- (2.3 ms for a label on 3% of 100,000 conversations). A conversation's labels now carry its
-- activity (kept by a trigger), so the filter walks the label's own index in activity order.
ALTER TABLE conversation_labels ADD COLUMN last_message_at timestamptz;
UPDATE conversation_labels cl SET last_message_at = c.last_message_at
    FROM conversations c WHERE c.id = cl.conversation_id;
ALTER TABLE conversation_labels ALTER COLUMN last_message_at SET NOT NULL;
CREATE INDEX conversation_labels_activity_idx
    ON conversation_labels (label_id, last_message_at DESC, conversation_id DESC);
DROP INDEX conversation_labels_label_conversation_idx;

CREATE FUNCTION conversation_labels_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversation_labels SET last_message_at = NEW.last_message_at WHERE conversation_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_label_activity AFTER UPDATE OF last_message_at ON conversations
    FOR EACH ROW WHEN (OLD.last_message_at IS DISTINCT FROM NEW.last_message_at)
    EXECUTE FUNCTION conversation_labels_follow_activity();
