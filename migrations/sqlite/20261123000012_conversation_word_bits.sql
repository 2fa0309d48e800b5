-- Search (issue 6): each conversation's word prefixes as 1,024 bits in 16 columns; same design
-- as the PostgreSQL migration of this number. Existing conversations get every bit set (passes
-- every test) and are marked for the background indexing that computes their exact bits.
ALTER TABLE conversations ADD COLUMN word_bits_0 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_2 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_3 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_4 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_5 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_6 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_7 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_9 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_10 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_11 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_12 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_13 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_14 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN word_bits_15 INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET word_bits_0 = -1, word_bits_1 = -1, word_bits_2 = -1, word_bits_3 = -1, word_bits_4 = -1, word_bits_5 = -1, word_bits_6 = -1, word_bits_7 = -1, word_bits_8 = -1, word_bits_9 = -1, word_bits_10 = -1, word_bits_11 = -1, word_bits_12 = -1, word_bits_13 = -1, word_bits_14 = -1, word_bits_15 = -1, search_indexed = 0;
