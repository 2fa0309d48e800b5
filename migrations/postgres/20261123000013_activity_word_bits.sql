-- Search (issue 6): the inbox's activity indexes carry the word bits (migration 12), so a search
-- walk reads and tests them from the index and goes to the table only for the conversations
-- that pass (where the visibility map allows: recently changed pages are still read).
DROP INDEX conversations_org_activity_idx;
CREATE INDEX conversations_org_activity_idx ON conversations (organization_id, last_message_at DESC, id DESC)
    INCLUDE (word_bits_0, word_bits_1, word_bits_2, word_bits_3, word_bits_4, word_bits_5, word_bits_6, word_bits_7, word_bits_8, word_bits_9, word_bits_10, word_bits_11, word_bits_12, word_bits_13, word_bits_14, word_bits_15);
DROP INDEX conversations_org_status_activity_idx;
CREATE INDEX conversations_org_status_activity_idx ON conversations (organization_id, status, last_message_at DESC, id DESC)
    INCLUDE (word_bits_0, word_bits_1, word_bits_2, word_bits_3, word_bits_4, word_bits_5, word_bits_6, word_bits_7, word_bits_8, word_bits_9, word_bits_10, word_bits_11, word_bits_12, word_bits_13, word_bits_14, word_bits_15);
