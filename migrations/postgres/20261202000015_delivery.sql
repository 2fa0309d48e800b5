-- Issue 20 (every reply reaches the customer once).

-- A send whose platform call has no known outcome (a timeout after the request was written, a
-- connection reset, a worker that died during the call) waits for the platform's own word (a
-- status or echo carrying our correlation value) until this time; it stays PENDING meanwhile
-- and the sends API shows it as "unconfirmed".
ALTER TABLE messages ADD COLUMN unconfirmed_until timestamptz;

-- How many times the stalled-send sweep queued a new job for this message.
ALTER TABLE messages ADD COLUMN requeues integer NOT NULL DEFAULT 0;

-- The sweep's look-ups: due pending sends, unconfirmed sends, and attempts still open (a claim
-- is an attempt row without finished_at, written before the platform call).
CREATE INDEX messages_pending_due_idx ON messages (next_attempt_at)
    WHERE status = 'PENDING' AND next_attempt_at IS NOT NULL;
CREATE INDEX messages_unconfirmed_idx ON messages (unconfirmed_until)
    WHERE unconfirmed_until IS NOT NULL;
CREATE INDEX send_attempts_open_idx ON send_attempts (started_at)
    WHERE finished_at IS NULL;
