//! Opaque pagination cursors: the position is ours to change, so clients get a token, not an id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Invalid;

fn invalid_cursor() -> Invalid {
    Invalid::new("cursor", "is not a cursor this API returned")
}

fn decode_bytes<const N: usize>(text: &str) -> Result<[u8; N], Invalid> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(invalid_cursor)
}

fn time_from_nanos(bytes: [u8; 8]) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::from_be_bytes(bytes))
}

fn nanos(at: DateTime<Utc>) -> [u8; 8] {
    // Out of range (after 2262) saturates; such rows do not exist.
    at.timestamp_nanos_opt().unwrap_or(i64::MAX).to_be_bytes()
}

fn split<const A: usize, const B: usize>(bytes: &[u8]) -> Result<([u8; A], [u8; B]), Invalid> {
    let a = bytes.get(..A).and_then(|b| <[u8; A]>::try_from(b).ok());
    let b = bytes.get(A..A + B).and_then(|b| <[u8; B]>::try_from(b).ok());
    a.zip(b).ok_or_else(invalid_cursor)
}

/// Resumes a newest-first listing after the row at (`at`, `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl TimeCursor {
    pub fn encode(&self) -> String {
        let mut bytes = nanos(self.at).to_vec();
        bytes.extend_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Self, Invalid> {
        let bytes: [u8; 24] = decode_bytes(text)?;
        let (at, id) = split::<8, 16>(&bytes)?;
        Ok(TimeCursor {
            at: time_from_nanos(at),
            id: Uuid::from_bytes(id),
        })
    }
}

/// Resumes a conversation listing: the position of the last row, and the point in the
/// organization's event log the walk started at (so that conversations whose activity changed
/// meanwhile keep the place they had then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotCursor {
    pub as_of: i64,
    pub position: TimeCursor,
}

impl SnapshotCursor {
    pub fn encode(&self) -> String {
        let mut bytes = self.as_of.to_be_bytes().to_vec();
        bytes.extend_from_slice(&nanos(self.position.at));
        bytes.extend_from_slice(self.position.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Self, Invalid> {
        let bytes: [u8; 32] = decode_bytes(text)?;
        let (as_of, rest) = split::<8, 24>(&bytes)?;
        let (at, id) = split::<8, 16>(&rest)?;
        Ok(SnapshotCursor {
            as_of: i64::from_be_bytes(as_of),
            position: TimeCursor {
                at: time_from_nanos(at),
                id: Uuid::from_bytes(id),
            },
        })
    }
}

/// Resumes a listing after the row with this id (keyset pagination on time-ordered ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCursor(pub Uuid);

impl IdCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub fn decode(text: &str) -> Result<Self, Invalid> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| Uuid::from_slice(&bytes).ok())
            .map(IdCursor)
            .ok_or_else(invalid_cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        let cursor = IdCursor(Uuid::now_v7());
        assert_eq!(IdCursor::decode(&cursor.encode()), Ok(cursor));
        assert!(IdCursor::decode("not-a-cursor").is_err());
        assert!(IdCursor::decode("").is_err());
    }

    #[test]
    fn time_and_snapshot_cursors_round_trip() {
        let position = TimeCursor {
            at: crate::domain::now(),
            id: Uuid::now_v7(),
        };
        assert_eq!(TimeCursor::decode(&position.encode()), Ok(position));
        let snapshot = SnapshotCursor { as_of: 42, position };
        assert_eq!(SnapshotCursor::decode(&snapshot.encode()), Ok(snapshot));
        // Each kind refuses the other's tokens and garbage.
        assert!(TimeCursor::decode(&snapshot.encode()).is_err());
        assert!(SnapshotCursor::decode(&position.encode()).is_err());
        assert!(SnapshotCursor::decode("%%").is_err());
    }
}
