//! Column lists shared by the statements of several areas. A prefix argument names the table
//! ("u." in joins, "" in RETURNING, which SQLite wants bare).

macro_rules! user_columns {
    ($p:literal) => {
        concat!($p, "id, ", $p, "email, ", $p, "name, ", $p, "created_at")
    };
}

macro_rules! org_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "name, ",
            $p,
            "slug, ",
            $p,
            "plan, ",
            $p,
            "owner_id, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}

macro_rules! member_columns {
    () => {
        "m.user_id, u.email, u.name, m.role, m.created_at"
    };
}

macro_rules! invitation_columns {
    () => {
        "i.id, i.organization_id, o.name AS organization_name, i.email, i.role, i.invited_by, \
         i.created_at, i.expires_at"
    };
}

macro_rules! connection_columns {
    () => {
        "id, organization_id, platform, platform_user_id, name, status, access_token_enc, \
         refresh_token_enc, token_fingerprint, access_token_expires_at, refresh_token_expires_at, \
         settings, last_error, granted_by_external_id, failure_count, last_checked_at, last_refreshed_at, \
         created_at, updated_at, granted_at"
    };
}

// Outbound sends: the message with its conversation's connection and platform.
macro_rules! send_columns {
    () => {
        "m.id, m.organization_id, m.conversation_id, c.platform_connection_id AS connection_id, \
         c.platform, m.content_type, m.content, m.media_url, m.status, m.external_id, m.error_code, \
         m.error_message, m.failure_reason, m.attempts, m.next_attempt_at, m.last_attempt_at, \
         m.unconfirmed_until, m.sender_user_id, m.idempotency_key, m.created_at, m.updated_at"
    };
}

/// A send whose attempt is claimed and has no outcome yet (`messages m`): pending, with neither
/// a next attempt (a retry, a new job) nor a window (unconfirmed). Every outcome sets one of the
/// three; the claim clears `next_attempt_at`.
macro_rules! in_flight {
    () => {
        "m.direction = 'OUTBOUND' AND m.status = 'PENDING' AND m.next_attempt_at IS NULL \
         AND m.unconfirmed_until IS NULL AND m.last_attempt_at IS NOT NULL"
    };
}

// The team inbox: a conversation with its connection, contact and counts.

macro_rules! conversation_columns {
    () => {
        "c.id, c.organization_id, c.platform_connection_id, c.platform, c.external_id, \
         c.contact_external_id, c.contact_name, c.contact_username, c.status, c.assignee_id, c.preview, \
         c.last_message_at, c.last_inbound_at, c.unread_count, c.created_at, c.updated_at, \
         pc.settings AS connection_settings, pc.status AS connection_status"
    };
}

macro_rules! message_columns {
    () => {
        "m.id, m.conversation_id, m.direction, m.external_id, m.content_type, m.content, m.media_url, \
         m.status, m.unconfirmed_until, m.error_code, m.error_message, m.failure_reason, m.attempts, \
         m.sender_user_id, u.name AS sender_name, m.created_at, m.updated_at"
    };
}

macro_rules! note_columns {
    () => {
        "n.id, n.organization_id, n.conversation_id, n.author_id, u.name AS author_name, n.body, n.created_at"
    };
}

// Connection health and OAuth states, shared by both backends (included after `shared_sql.rs`,
// whose `connection_columns!`, `connection_changed` and `insert_live_events` it uses).

macro_rules! refresh_claim_columns {
    () => {
        "id, organization_id, platform, platform_user_id, status, refresh_token_enc, \
         refresh_token_expires_at, failure_count, last_error, refresh_claimed_until AS claimed_until"
    };
}
