//! Converts between the followers' read positions and the state store's.
//!
//! The two are kept apart on purpose: a source describes where it is in its own terms, and the
//! store keeps any backend's idea of a position (a later Redis store keeps the same records).

use crate::source::position::{FilePosition, Fingerprint, JournalCursor, Position};
use crate::state::model as stored;

/// A follower's position as the store keeps it.
pub fn to_store(p: &Position) -> Option<stored::Position> {
    Some(match p {
        Position::File(f) => {
            let mut bytes = Vec::with_capacity(12);
            bytes.extend_from_slice(&f.fingerprint.len.to_le_bytes());
            bytes.extend_from_slice(&f.fingerprint.hash.to_le_bytes());
            stored::Position::File(stored::FilePosition {
                dev: f.dev,
                ino: f.ino,
                offset: f.offset,
                fingerprint: stored::Fingerprint::new(bytes).ok()?,
            })
        }
        Position::Journal(c) => stored::Position::Journal {
            cursor: c.0.clone(),
        },
    })
}

/// A stored position as the follower takes it (`None` when it is not one of ours).
pub fn from_store(p: &stored::Position) -> Option<Position> {
    Some(match p {
        stored::Position::File(f) => {
            let b = f.fingerprint.as_bytes();
            let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
            let hash = u64::from_le_bytes(b.get(4..12)?.try_into().ok()?);
            Position::File(FilePosition {
                dev: f.dev,
                ino: f.ino,
                offset: f.offset,
                fingerprint: Fingerprint { len, hash },
            })
        }
        stored::Position::Journal { cursor } => Position::Journal(JournalCursor(cursor.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_the_store_form() {
        let file = Position::File(FilePosition {
            dev: 2049,
            ino: 77,
            offset: 12345,
            fingerprint: Fingerprint {
                len: 1024,
                hash: 0xdead_beef_cafe,
            },
        });
        assert_eq!(from_store(&to_store(&file).unwrap()).unwrap(), file);
        let journal = Position::Journal(JournalCursor("s=abc;i=1".into()));
        assert_eq!(from_store(&to_store(&journal).unwrap()).unwrap(), journal);
    }
}
