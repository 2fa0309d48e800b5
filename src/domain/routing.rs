//! Which organization a webhook event belongs to: the one whose connection holds the event's
//! platform account, as long as that connection is not disconnected. An account is connected
//! live in at most one organization (a unique index says so too); a disconnected connection
//! keeps its rows but routes nothing, so a customer of an organization that left is not
//! delivered to it, and a later connection of the same account elsewhere takes over.

use super::ConnectionStatus;

/// Of the connections of one platform account (any organization, any status), the one events
/// route to; `None`: the event is unroutable (kept, replayable once the account is connected).
pub fn live_connection<C>(connections: impl IntoIterator<Item = (ConnectionStatus, C)>) -> Option<C> {
    connections
        .into_iter()
        .find(|(status, _)| *status != ConnectionStatus::Disconnected)
        .map(|(_, connection)| connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionStatus::*;

    #[test]
    fn events_route_to_the_connection_that_is_not_disconnected() {
        assert_eq!(
            live_connection([(Disconnected, "old"), (Active, "new")]),
            Some("new")
        );
        // Expired and failing connections still route: their messages are stored, and the
        // connection is fixed by reconnecting.
        assert_eq!(live_connection([(Expired, "a")]), Some("a"));
        assert_eq!(live_connection([(Error, "a")]), Some("a"));
        assert_eq!(live_connection([(Disconnected, "gone")]), None);
        assert_eq!(live_connection::<&str>([]), None);
    }
}
