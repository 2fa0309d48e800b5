-- Outbound sends (issue 5): why a send failed (our class: window_closed, auth, ...), when the
-- next attempt is due, and when the last one ran. The platform's own code stays in error_code.
ALTER TABLE messages ADD COLUMN failure_reason text;
ALTER TABLE messages ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE messages ADD COLUMN last_attempt_at timestamptz;

-- The sends API and the dashboard list outbound messages by status, newest first (ids are
-- UUIDv7, so id order is creation order).
CREATE INDEX messages_sends_idx ON messages (organization_id, status, id DESC)
    WHERE direction = 'OUTBOUND';

-- The 24-hour outcome chart reads attempts by time.
CREATE INDEX send_attempts_org_started_idx ON send_attempts (organization_id, started_at);
