-- Search (`q`) by conversation (issue 6): the distinct words of each conversation (its contact's
-- name and username, its messages' text), written by the service (`domain::search` splits
-- them, the same way for both databases). A common word's newest conversations are found by
-- walking the inbox in activity order with one index probe each; a rare word's, from the words
-- index. Both are index-only. This replaces the full-text indexes of migrations 7 and 8, which
-- matched words message by message and fetched every matching message (a common word: 24 ms).
CREATE TABLE conversation_terms (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Byte order: a prefix's words are one range (`domain::search::prefix_end`).
    term            text COLLATE "C" NOT NULL,
    organization_id uuid NOT NULL,
    CONSTRAINT conversation_terms_pkey PRIMARY KEY (conversation_id, term)
);
CREATE INDEX conversation_terms_org_term_idx ON conversation_terms (organization_id, term, conversation_id);

-- Conversations whose words are not indexed yet: every existing one (the workers index them in
-- the background after this migration); new conversations are indexed as they are written.
ALTER TABLE conversations ADD COLUMN search_indexed boolean NOT NULL DEFAULT false;
ALTER TABLE conversations ALTER COLUMN search_indexed SET DEFAULT true;
CREATE INDEX conversations_search_unindexed_idx ON conversations (id) WHERE NOT search_indexed;

DROP INDEX conversations_contact_search_idx;
ALTER TABLE messages DROP COLUMN search_vector;
