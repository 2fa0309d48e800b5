//! Opaque pagination cursors: the position is ours to change, so clients get a token, not an id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::Invalid;

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
            .ok_or_else(|| Invalid::new("cursor", "is not a cursor this API returned"))
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
}
