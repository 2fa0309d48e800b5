-- Search (`q`) by conversation (issue 6): the distinct words of each conversation (its contact's
-- name and username, its messages' text), written by the service (`domain::search` splits
-- them, the same way for both databases). Same design as the PostgreSQL migration of this
-- number; it replaces the FTS5 tables of migration 7 (matching message by message, a common
-- word took 1.7 s).
CREATE TABLE conversation_terms (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    term            TEXT NOT NULL,
    organization_id BLOB NOT NULL,
    PRIMARY KEY (conversation_id, term)
) WITHOUT ROWID;
CREATE INDEX conversation_terms_org_term_idx ON conversation_terms (organization_id, term, conversation_id);

-- Existing conversations are indexed by the workers in the background; new ones as written.
ALTER TABLE conversations ADD COLUMN search_indexed INTEGER NOT NULL DEFAULT 1;
UPDATE conversations SET search_indexed = 0;
CREATE INDEX conversations_search_unindexed_idx ON conversations (id) WHERE NOT search_indexed;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER conversations_fts_insert;
DROP TRIGGER conversations_fts_update;
DROP TRIGGER conversations_fts_delete;
DROP TABLE messages_fts;
DROP TABLE conversations_fts;
