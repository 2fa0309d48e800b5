-- The latest delivery / read watermarks of a conversation (Messenger, TikTok), so an outbound
-- message that arrives after its watermark (a late echo) is still marked.
ALTER TABLE conversations ADD COLUMN delivered_watermark timestamptz;
ALTER TABLE conversations ADD COLUMN read_watermark timestamptz;
