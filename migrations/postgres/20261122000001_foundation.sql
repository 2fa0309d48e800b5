-- Snorq schema (PostgreSQL). Constraint names are part of the contract: the store maps them
-- to domain errors (see src/store/error.rs). Keep migrations/sqlite in step with this file.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL,
    -- lower-cased email; case-insensitive uniqueness without citext, same on both backends
    email_normalized text NOT NULL,
    name             text NOT NULL,
    password_hash    text,
    google_id        text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email_normalized),
    CONSTRAINT users_google_id_key UNIQUE (google_id)
);

CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    slug       text NOT NULL,
    plan       text NOT NULL DEFAULT 'FREE' CHECK (plan IN ('FREE', 'PRO', 'BUSINESS')),
    owner_id   uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE organization_members (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'MEMBER')),
    created_at      timestamptz NOT NULL,
    CONSTRAINT organization_members_pkey PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user_idx ON organization_members (user_id);

CREATE TABLE api_tokens (
    id              uuid PRIMARY KEY,
    -- hex SHA-256 of the bearer token; the token itself is never stored
    token_hash      text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- set for organization API keys: the token only works inside this organization
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('SESSION', 'API_KEY')),
    name            text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE platform_connections (
    id                       uuid PRIMARY KEY,
    organization_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    platform                 text NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    -- phone_number_id, Page id or TikTok business open_id
    platform_user_id         text NOT NULL,
    name                     text,
    status                   text NOT NULL CHECK (status IN ('ACTIVE', 'EXPIRED', 'ERROR', 'DISCONNECTED')),
    -- AES-256-GCM envelopes (src/crypto/vault.rs), bound to this row id and field
    access_token_enc         text,
    refresh_token_enc        text,
    token_fingerprint        text,
    access_token_expires_at  timestamptz,
    refresh_token_expires_at timestamptz,
    settings                 jsonb NOT NULL DEFAULT '{}',
    last_error               text,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    CONSTRAINT platform_connections_org_account_key UNIQUE (organization_id, platform, platform_user_id)
);
-- One live connection per platform account across all organizations: webhooks route by it.
CREATE UNIQUE INDEX platform_connections_live_account_key
    ON platform_connections (platform, platform_user_id) WHERE status <> 'DISCONNECTED';
CREATE INDEX platform_connections_org_idx ON platform_connections (organization_id, created_at);

CREATE TABLE conversations (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    platform_connection_id uuid NOT NULL REFERENCES platform_connections (id) ON DELETE CASCADE,
    platform               text NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    -- the platform's thread key: contact id (Meta) or conversation_id (TikTok)
    external_id            text NOT NULL,
    contact_external_id    text NOT NULL,
    contact_name           text,
    contact_username       text,
    status                 text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED', 'ARCHIVED')),
    assignee_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    preview                text,
    last_message_at        timestamptz NOT NULL,
    last_inbound_at        timestamptz,
    unread_count           integer NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT conversations_connection_external_key UNIQUE (platform_connection_id, external_id)
);
CREATE INDEX conversations_org_activity_idx ON conversations (organization_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    direction        text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    external_id      text,
    content_type     text NOT NULL,
    content          jsonb NOT NULL DEFAULT '{}',
    media_url        text,
    status           text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'DELIVERED', 'READ', 'FAILED')),
    error_code       text,
    error_message    text,
    attempts         integer NOT NULL DEFAULT 0,
    idempotency_key  text,
    sender_user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    platform_timestamp timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT messages_conversation_external_key UNIQUE (conversation_id, external_id),
    CONSTRAINT messages_org_idempotency_key UNIQUE (organization_id, idempotency_key)
);
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at DESC, id DESC);

CREATE TABLE webhook_events (
    id              uuid PRIMARY KEY,
    platform        text NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    organization_id uuid REFERENCES organizations (id) ON DELETE SET NULL,
    body            bytea NOT NULL,
    received_at     timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('RECEIVED', 'PROCESSED', 'PARTIAL', 'UNROUTABLE', 'FAILED')),
    reason          text,
    processed_at    timestamptz
);
CREATE INDEX webhook_events_attention_idx ON webhook_events (status, received_at) WHERE status <> 'PROCESSED';

CREATE TABLE send_attempts (
    id             uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    outcome        text NOT NULL,
    http_status    integer,
    error_code     text,
    error_subcode  text,
    error_message  text,
    next_attempt_at timestamptz,
    CONSTRAINT send_attempts_message_attempt_key UNIQUE (message_id, attempt)
);

CREATE TABLE labels (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL,
    color           text,
    created_at      timestamptz NOT NULL,
    CONSTRAINT labels_org_name_key UNIQUE (organization_id, name)
);

CREATE TABLE conversation_labels (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    label_id        uuid NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    CONSTRAINT conversation_labels_pkey PRIMARY KEY (conversation_id, label_id)
);
CREATE INDEX conversation_labels_label_idx ON conversation_labels (label_id);

CREATE TABLE notes (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    author_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX notes_conversation_idx ON notes (conversation_id, created_at);

-- Ordered per-organization event log for live updates (SSE resume by id).
CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX events_org_idx ON events (organization_id, id);
