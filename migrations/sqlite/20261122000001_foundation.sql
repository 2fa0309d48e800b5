-- Snorq schema (SQLite; uuids are 16-byte BLOBs, timestamps RFC 3339 TEXT in UTC). Constraint names are part of the contract: the store maps them
-- to domain errors (see src/store/error.rs). Keep migrations/postgres in step with this file.

CREATE TABLE users (
    id               BLOB PRIMARY KEY,
    email            TEXT NOT NULL,
    -- lower-cased email; case-insensitive uniqueness without citext, same on both backends
    email_normalized TEXT NOT NULL,
    name             TEXT NOT NULL,
    password_hash    text,
    google_id        text,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email_normalized),
    CONSTRAINT users_google_id_key UNIQUE (google_id)
);

CREATE TABLE organizations (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL,
    plan       TEXT NOT NULL DEFAULT 'FREE' CHECK (plan IN ('FREE', 'PRO', 'BUSINESS')),
    owner_id   BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE organization_members (
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'MEMBER')),
    created_at      TEXT NOT NULL,
    CONSTRAINT organization_members_pkey PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user_idx ON organization_members (user_id);

CREATE TABLE api_tokens (
    id              BLOB PRIMARY KEY,
    -- hex SHA-256 of the bearer token; the token itself is never stored
    token_hash      TEXT NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- set for organization API keys: the token only works inside this organization
    organization_id BLOB REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('SESSION', 'API_KEY')),
    name            text,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE platform_connections (
    id                       BLOB PRIMARY KEY,
    organization_id          BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    platform                 TEXT NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    -- phone_number_id, Page id or TikTok business open_id
    platform_user_id         TEXT NOT NULL,
    name                     text,
    status                   TEXT NOT NULL CHECK (status IN ('ACTIVE', 'EXPIRED', 'ERROR', 'DISCONNECTED')),
    -- AES-256-GCM envelopes (src/crypto/vault.rs), bound to this row id and field
    access_token_enc         text,
    refresh_token_enc        text,
    token_fingerprint        text,
    access_token_expires_at  TEXT,
    refresh_token_expires_at TEXT,
    settings                 TEXT NOT NULL DEFAULT '{}',
    last_error               text,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    CONSTRAINT platform_connections_org_account_key UNIQUE (organization_id, platform, platform_user_id)
);
-- One live connection per platform account across all organizations: webhooks route by it.
CREATE UNIQUE INDEX platform_connections_live_account_key
    ON platform_connections (platform, platform_user_id) WHERE status <> 'DISCONNECTED';
CREATE INDEX platform_connections_org_idx ON platform_connections (organization_id, created_at);

CREATE TABLE conversations (
    id                     BLOB PRIMARY KEY,
    organization_id        BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    platform_connection_id BLOB NOT NULL REFERENCES platform_connections (id) ON DELETE CASCADE,
    platform               TEXT NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    -- the platform's thread key: contact id (Meta) or conversation_id (TikTok)
    external_id            TEXT NOT NULL,
    contact_external_id    TEXT NOT NULL,
    contact_name           text,
    contact_username       text,
    status                 TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED', 'ARCHIVED')),
    assignee_id            BLOB REFERENCES users (id) ON DELETE SET NULL,
    preview                text,
    last_message_at        TEXT NOT NULL,
    last_inbound_at        TEXT,
    unread_count           integer NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    CONSTRAINT conversations_connection_external_key UNIQUE (platform_connection_id, external_id)
);
CREATE INDEX conversations_org_activity_idx ON conversations (organization_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    external_id      text,
    content_type     TEXT NOT NULL,
    content          TEXT NOT NULL DEFAULT '{}',
    media_url        text,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'SENT', 'DELIVERED', 'READ', 'FAILED')),
    error_code       text,
    error_message    text,
    attempts         integer NOT NULL DEFAULT 0,
    idempotency_key  text,
    sender_user_id   BLOB REFERENCES users (id) ON DELETE SET NULL,
    platform_timestamp TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT messages_conversation_external_key UNIQUE (conversation_id, external_id),
    CONSTRAINT messages_org_idempotency_key UNIQUE (organization_id, idempotency_key)
);
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at DESC, id DESC);

CREATE TABLE webhook_events (
    id              BLOB PRIMARY KEY,
    platform        TEXT NOT NULL CHECK (platform IN ('whatsapp', 'facebook', 'tiktok')),
    organization_id BLOB REFERENCES organizations (id) ON DELETE SET NULL,
    body            BLOB NOT NULL,
    received_at     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('RECEIVED', 'PROCESSED', 'PARTIAL', 'UNROUTABLE', 'FAILED')),
    reason          text,
    processed_at    TEXT
);
CREATE INDEX webhook_events_attention_idx ON webhook_events (status, received_at) WHERE status <> 'PROCESSED';

CREATE TABLE send_attempts (
    id             BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    message_id     BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    outcome        TEXT NOT NULL,
    http_status    integer,
    error_code     text,
    error_subcode  text,
    error_message  text,
    next_attempt_at TEXT,
    CONSTRAINT send_attempts_message_attempt_key UNIQUE (message_id, attempt)
);

CREATE TABLE labels (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    color           text,
    created_at      TEXT NOT NULL,
    CONSTRAINT labels_org_name_key UNIQUE (organization_id, name)
);

CREATE TABLE conversation_labels (
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    label_id        BLOB NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    CONSTRAINT conversation_labels_pkey PRIMARY KEY (conversation_id, label_id)
);
CREATE INDEX conversation_labels_label_idx ON conversation_labels (label_id);

CREATE TABLE notes (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    author_id       BLOB REFERENCES users (id) ON DELETE SET NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX notes_conversation_idx ON notes (conversation_id, created_at);

-- Ordered per-organization event log for live updates (SSE resume by id).
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id BLOB NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX events_org_idx ON events (organization_id, id);
