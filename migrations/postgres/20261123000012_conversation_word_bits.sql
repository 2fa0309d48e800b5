-- Search (issue 6): each conversation's word prefixes as 1,024 bits in 16 columns
-- (`domain::search::WordBits`, a Bloom filter). Walking the inbox for a common word tests them
-- on the conversation's row and probes `conversation_terms` only for the conversations that
-- pass, instead of for every one. Written with the words (ingest, replies, rebuilds).
--
-- Existing conversations get every bit set, which passes every test (the probe decides, as
-- before), and are marked for the background indexing that computes their exact bits. New
-- conversations start with none.
ALTER TABLE conversations
    ADD COLUMN word_bits_0 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_1 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_2 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_3 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_4 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_5 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_6 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_7 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_8 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_9 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_10 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_11 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_12 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_13 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_14 bigint NOT NULL DEFAULT -1,
    ADD COLUMN word_bits_15 bigint NOT NULL DEFAULT -1;
ALTER TABLE conversations
    ALTER COLUMN word_bits_0 SET DEFAULT 0,
    ALTER COLUMN word_bits_1 SET DEFAULT 0,
    ALTER COLUMN word_bits_2 SET DEFAULT 0,
    ALTER COLUMN word_bits_3 SET DEFAULT 0,
    ALTER COLUMN word_bits_4 SET DEFAULT 0,
    ALTER COLUMN word_bits_5 SET DEFAULT 0,
    ALTER COLUMN word_bits_6 SET DEFAULT 0,
    ALTER COLUMN word_bits_7 SET DEFAULT 0,
    ALTER COLUMN word_bits_8 SET DEFAULT 0,
    ALTER COLUMN word_bits_9 SET DEFAULT 0,
    ALTER COLUMN word_bits_10 SET DEFAULT 0,
    ALTER COLUMN word_bits_11 SET DEFAULT 0,
    ALTER COLUMN word_bits_12 SET DEFAULT 0,
    ALTER COLUMN word_bits_13 SET DEFAULT 0,
    ALTER COLUMN word_bits_14 SET DEFAULT 0,
    ALTER COLUMN word_bits_15 SET DEFAULT 0;
UPDATE conversations SET search_indexed = false WHERE search_indexed;
