//! How far a source has read, in a form that survives a restart of the daemon.
//!
//! A file position names the file by its identity (device and inode) *and* by a fingerprint of
//! its first bytes, because inodes are reused after a file is deleted and device numbers may
//! change across reboots; the offset is always at the start of a line. A journald position is the
//! journal's own cursor. Positions are plain data: this module never opens a file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many leading bytes of a file its fingerprint covers at most.
pub const FINGERPRINT_BYTES: usize = 1024;

/// Where a source stands: the state store saves it (as text, see [`fmt::Display`] and
/// [`FromStr`]) after the line it follows has been processed, and the source resumes from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Position {
    /// A place in a log file.
    File(FilePosition),
    /// A place in the systemd journal.
    Journal(JournalCursor),
}

/// A byte offset in one particular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePosition {
    /// The file system's device number.
    pub dev: u64,
    /// The file's inode number.
    pub ino: u64,
    /// Bytes read: the offset just after the last line handed out.
    pub offset: u64,
    /// The file's first bytes, to tell it from a later file that got the same inode.
    pub fingerprint: Fingerprint,
}

/// A hash of a file's first `len` bytes (at most [`FINGERPRINT_BYTES`]).
///
/// The hash is 64-bit FNV-1a, written out here so that saved positions stay valid whatever
/// the standard library's hashers do in later Rust versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// How many bytes the hash covers.
    pub len: u32,
    /// FNV-1a 64 of those bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `head`, which must be the file's first bytes (at most
    /// [`FINGERPRINT_BYTES`] of them are used).
    pub fn of(head: &[u8]) -> Fingerprint {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in head {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Fingerprint {
            // At most FINGERPRINT_BYTES, so it always fits.
            len: u32::try_from(head.len()).unwrap_or(u32::MAX),
            hash,
        }
    }

    /// True when the fingerprint covers all the bytes it ever will.
    pub fn is_complete(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }
}

/// A journald cursor (`__CURSOR`), opaque text that `journalctl --after-cursor` understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalCursor(pub String);

/// A saved position that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("not a saved source position ({0}); expected JSON such as {{\"journal\":\"s=...\"}}")]
pub struct PositionError(#[from] serde_json::Error);

impl fmt::Display for Position {
    /// Compact JSON, e.g. `{"file":{"dev":2049,"ino":131,"offset":4096,"fingerprint":{...}}}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(serde_json::from_str(s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_their_text_form() {
        let file = Position::File(FilePosition {
            dev: 2049,
            ino: u64::MAX,
            offset: 123_456_789_012,
            fingerprint: Fingerprint::of(b"Dec  4 10:00:00 mx postfix/smtpd[1]: connect\n"),
        });
        let journal = Position::Journal(JournalCursor("s=abc;i=2;b=def".into()));
        for p in [file, journal] {
            let text = p.to_string();
            assert_eq!(text.parse::<Position>().unwrap(), p, "{text}");
        }
    }

    #[test]
    fn fingerprints_cover_only_the_head_and_tell_contents_apart() {
        let long = vec![b'a'; 5000];
        assert_eq!(Fingerprint::of(&long), Fingerprint::of(&long[..1024]));
        assert!(Fingerprint::of(&long).is_complete());
        assert_ne!(Fingerprint::of(b"line 1\n"), Fingerprint::of(b"line 2\n"));
        assert_eq!(Fingerprint::of(b"").len, 0);
        // FNV-1a 64 of "a", so saved fingerprints keep their meaning.
        assert_eq!(Fingerprint::of(b"a").hash, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = "offset 12".parse::<Position>().unwrap_err();
        assert!(
            err.to_string().starts_with("not a saved source position"),
            "{err}"
        );
    }
}
