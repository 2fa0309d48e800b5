-- Issue 20 (every reply reaches the customer once).

-- A send whose platform call has no known outcome (a timeout after the request was written, a
-- connection reset, a worker that died during the call) waits for the platform's own word (a
-- status or echo carrying our correlation value) until this time; it stays PENDING meanwhile
-- and the sends API shows it as "unconfirmed".
ALTER TABLE messages ADD COLUMN unconfirmed_until timestamptz;

-- How many times the stalled-send sweep queued a new job for this message.
ALTER TABLE messages ADD COLUMN requeues integer NOT NULL DEFAULT 0;

-- The sweep's look-ups: due pending sends, unconfirmed sends, and claims without an outcome
-- (a claim, written before the platform call, gives the message its attempt number and
-- last_attempt_at and clears next_attempt_at; every outcome sets next_attempt_at,
-- unconfirmed_until or a final status).
CREATE INDEX messages_pending_due_idx ON messages (next_attempt_at)
    WHERE status = 'PENDING' AND next_attempt_at IS NOT NULL;
CREATE INDEX messages_unconfirmed_idx ON messages (unconfirmed_until)
    WHERE unconfirmed_until IS NOT NULL;
CREATE INDEX messages_in_flight_idx ON messages (last_attempt_at)
    WHERE status = 'PENDING' AND next_attempt_at IS NULL AND unconfirmed_until IS NULL;
