-- Issue 18 (trust).

-- Dashboard sessions are their own kind of token: server-side, revocable, never a bearer.
-- SQLite cannot change a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE api_tokens_new (
    id              BLOB PRIMARY KEY,
    -- hex SHA-256 of the bearer token; the token itself is never stored
    token_hash      TEXT NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- set for organization API keys: the token only works inside this organization
    organization_id BLOB REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('SESSION', 'API_KEY', 'DASHBOARD')),
    name            text,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
INSERT INTO api_tokens_new (id, token_hash, user_id, organization_id, kind, name, created_at, expires_at, revoked_at)
    SELECT id, token_hash, user_id, organization_id, kind, name, created_at, expires_at, revoked_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
CREATE INDEX api_tokens_org_idx ON api_tokens (organization_id) WHERE organization_id IS NOT NULL;

-- A connect flow is bound to the browser that started it: the SHA-256 of a cookie set at start.
ALTER TABLE oauth_states ADD COLUMN browser_hash TEXT;

-- When the platform last granted this connection's credentials (a connect flow or new
-- credentials): a deauthorize issued before it is about an older grant and changes nothing.
ALTER TABLE platform_connections ADD COLUMN granted_at TEXT;
UPDATE platform_connections SET granted_at = updated_at WHERE status <> 'DISCONNECTED';

-- Invitations: adding someone to an organization by email never reveals whether the email has
-- an account; the invited user accepts or declines. Pending ones hold a seat.
CREATE TABLE invitations (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('ADMIN', 'MEMBER')),
    invited_by       BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    CONSTRAINT invitations_org_email_key UNIQUE (organization_id, email_normalized)
);
CREATE INDEX invitations_email_idx ON invitations (email_normalized);
