-- Issue 7: connecting through OAuth, refreshing tokens, connection health (see the
-- PostgreSQL migration of the same number).

-- Who granted the connection on the platform (Meta's app-scoped user id): a deauthorize
-- callback names that user.
ALTER TABLE platform_connections ADD COLUMN granted_by_external_id text;
-- Refreshes and checks that failed in a row without an answer about the token; at the
-- threshold the connection turns ERROR. Reset by any success.
ALTER TABLE platform_connections ADD COLUMN failure_count integer NOT NULL DEFAULT 0;
ALTER TABLE platform_connections ADD COLUMN last_checked_at TEXT;
ALTER TABLE platform_connections ADD COLUMN last_refreshed_at TEXT;
-- Backoff after a failed refresh: not retried before this.
ALTER TABLE platform_connections ADD COLUMN next_refresh_at TEXT;
-- A process refreshing this connection holds it until then (claimed by one UPDATE, so only
-- one process calls the platform with a given refresh token).
ALTER TABLE platform_connections ADD COLUMN refresh_claimed_until TEXT;

CREATE INDEX platform_connections_refresh_due_idx ON platform_connections (access_token_expires_at)
    WHERE refresh_token_enc IS NOT NULL AND status IN ('ACTIVE', 'ERROR');
CREATE INDEX platform_connections_granted_by_idx ON platform_connections (granted_by_external_id)
    WHERE granted_by_external_id IS NOT NULL;

-- One row per OAuth start: the signed state names it, and the callback consumes it once.
CREATE TABLE oauth_states (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform        text NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    redirect_uri    text NOT NULL,
    -- e.g. {"page_ids": [...]} for Facebook
    options         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT
);
CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);
