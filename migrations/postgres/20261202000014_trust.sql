-- Issue 18 (trust).

-- Dashboard sessions are their own kind of token: server-side, revocable, never a bearer.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_kind_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_kind_check
    CHECK (kind IN ('SESSION', 'API_KEY', 'DASHBOARD'));

-- A connect flow is bound to the browser that started it: the SHA-256 of a cookie set at start.
ALTER TABLE oauth_states ADD COLUMN browser_hash text;

-- When the platform last granted this connection's credentials (a connect flow or new
-- credentials): a deauthorize issued before it is about an older grant and changes nothing.
ALTER TABLE platform_connections ADD COLUMN granted_at timestamptz;
UPDATE platform_connections SET granted_at = updated_at WHERE status <> 'DISCONNECTED';

-- Invitations: adding someone to an organization by email never reveals whether the email has
-- an account; the invited user accepts or declines. Pending ones hold a seat.
CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            text NOT NULL,
    email_normalized text NOT NULL,
    role             text NOT NULL CHECK (role IN ('ADMIN', 'MEMBER')),
    invited_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    CONSTRAINT invitations_org_email_key UNIQUE (organization_id, email_normalized)
);
CREATE INDEX invitations_email_idx ON invitations (email_normalized);
