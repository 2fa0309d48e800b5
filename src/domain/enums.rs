use serde::{Deserialize, Serialize};

/// Generates the DB (upper-case) <-> enum mapping for a simple enum.
macro_rules! db_enum {
    ($name:ident { $($variant:ident => $db:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_db(self) -> &'static str {
                match self { $($name::$variant => $db),+ }
            }
            pub fn from_db(value: &str) -> Option<Self> {
                match value { $($db => Some($name::$variant),)+ _ => None }
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::from_db(&value)
                    .ok_or_else(|| format!("unexpected {} {value:?} in database", stringify!($name)))
            }
        }
    };
}

/// A member's role in an organization. Ordered by power: `Member < Admin < Owner`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}
db_enum!(Role { Member => "MEMBER", Admin => "ADMIN", Owner => "OWNER" });

/// An organization's plan; it sets the seat limit (and, later, retention and API keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Business,
}
db_enum!(Plan { Free => "FREE", Pro => "PRO", Business => "BUSINESS" });

impl Plan {
    /// How many people (owner included) the plan allows in one organization.
    pub fn seat_limit(self) -> i64 {
        match self {
            Plan::Free => 1,
            Plan::Pro => 3,
            Plan::Business => 4,
        }
    }
}

/// The health of a platform connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    Active,
    Expired,
    Error,
    Disconnected,
}
db_enum!(ConnectionStatus {
    Active => "ACTIVE",
    Expired => "EXPIRED",
    Error => "ERROR",
    Disconnected => "DISCONNECTED",
});

/// Where a message is. Outbound: pending -> sent -> delivered -> read, or failed (terminal).
/// Inbound messages are stored as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}
db_enum!(MessageStatus {
    Pending => "PENDING",
    Sent => "SENT",
    Delivered => "DELIVERED",
    Read => "READ",
    Failed => "FAILED",
});

impl MessageStatus {
    /// Every status, in rank order.
    pub const ALL: [MessageStatus; 5] = [
        MessageStatus::Pending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    /// Receipts only move a message forward: a status applies when its rank is higher.
    /// `failed` ranks highest, so nothing moves a failed message.
    pub fn rank(self) -> i64 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageDirection {
    Inbound,
    Outbound,
}
db_enum!(MessageDirection { Inbound => "INBOUND", Outbound => "OUTBOUND" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Open,
    Closed,
    Archived,
}
db_enum!(ConversationStatus { Open => "OPEN", Closed => "CLOSED", Archived => "ARCHIVED" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_round_trip() {
        for r in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::from_db(r.as_db()), Some(r));
        }
        for p in [Plan::Free, Plan::Pro, Plan::Business] {
            assert_eq!(Plan::from_db(p.as_db()), Some(p));
        }
        assert_eq!(Role::from_db("owner"), None);
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        for m in [
            MessageStatus::Pending,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read,
            MessageStatus::Failed,
        ] {
            assert_eq!(MessageStatus::from_db(m.as_db()), Some(m));
        }
    }

    #[test]
    fn statuses_rank_in_delivery_order_with_failed_terminal() {
        use MessageStatus::*;
        let ranks: Vec<_> = [Pending, Sent, Delivered, Read, Failed]
            .map(MessageStatus::rank)
            .into();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    }

    #[test]
    fn seat_limits_follow_the_plan_table() {
        assert_eq!(Plan::Free.seat_limit(), 1);
        assert_eq!(Plan::Pro.seat_limit(), 3);
        assert_eq!(Plan::Business.seat_limit(), 4);
    }
}
