//! One type for every live source, so the daemon can start each configured source the same way
//! and read lines from it without caring whether they come from a file or the journal.
//!
//! Owns only the choice of source from its configuration and saved position; the reading
//! belongs to [`super::follow`] and [`super::journald`].

use super::config::SourceConfig;
use super::follow::{FileSource, FollowOptions};
use super::journald::{JournaldError, JournaldSource};
use super::position::Position;
use super::Line;

/// A started source.
pub struct LiveSource {
    /// The source's name, [`SourceConfig::key`].
    key: String,
    reader: Reader,
}

enum Reader {
    File(FileSource),
    Journald(Box<JournaldSource>),
}

/// A source that could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The reading thread of a file source could not be started.
    #[error("cannot start following {source_name}: {error}")]
    Thread {
        /// The source, as [`SourceConfig::key`] names it.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The reading thread of a file source is gone.
    #[error("the reader of {0} stopped")]
    Stopped(String),
    /// The journal could not be read.
    #[error(transparent)]
    Journald(#[from] JournaldError),
}

impl LiveSource {
    /// Starts the source `config` describes, resuming from `saved` when it is a position of the
    /// same kind (a saved position of the other kind, left by an earlier configuration, is
    /// ignored with a warning). Must be called within a tokio runtime.
    pub fn start(config: &SourceConfig, saved: Option<Position>) -> Result<LiveSource, LiveError> {
        let reader = match config {
            SourceConfig::File { path, .. } => {
                let start = match saved {
                    Some(Position::File(p)) => Some(p),
                    Some(other) => {
                        ignore(config, &other);
                        None
                    }
                    None => None,
                };
                let file =
                    FileSource::spawn(path, start, FollowOptions::default()).map_err(|error| {
                        LiveError::Thread {
                            source_name: config.key(),
                            error,
                        }
                    })?;
                Reader::File(file)
            }
            SourceConfig::Journald { journald, .. } => {
                let after = match saved {
                    Some(Position::Journal(c)) => Some(c),
                    Some(other) => {
                        ignore(config, &other);
                        None
                    }
                    None => None,
                };
                Reader::Journald(Box::new(JournaldSource::spawn(journald, after)?))
            }
        };
        Ok(LiveSource {
            key: config.key(),
            reader,
        })
    }

    /// The source's name, under which its position is saved ([`SourceConfig::key`]).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next line with the position just after it. A file source only fails when its
    /// reading thread is gone; a journald source fails when `journalctl` stops, and the next
    /// call starts it again.
    pub async fn next_line(&mut self) -> Result<Line, LiveError> {
        match &mut self.reader {
            Reader::File(f) => f
                .next_line()
                .await
                .ok_or_else(|| LiveError::Stopped(self.key.clone())),
            Reader::Journald(j) => Ok(j.next_line().await?),
        }
    }
}

fn ignore(config: &SourceConfig, saved: &Position) {
    tracing::warn!(
        source = %config,
        position = %saved,
        "the saved position is not one of this kind of source; starting afresh"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::MtaChoice;
    use crate::source::position::JournalCursor;

    #[tokio::test]
    async fn a_file_source_starts_from_its_config_and_ignores_a_foreign_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        std::fs::write(&path, "first\nsecond\n").unwrap();
        let config = SourceConfig::File {
            path: path.clone(),
            mta: MtaChoice::Auto,
        };
        let saved = Position::Journal(JournalCursor("s=1".into()));
        let mut source = LiveSource::start(&config, Some(saved)).unwrap();
        assert_eq!(source.key(), format!("file:{}", path.display()));
        assert_eq!(source.next_line().await.unwrap().bytes, b"first");
        let second = source.next_line().await.unwrap();
        assert_eq!(second.bytes, b"second");

        // Restarted at the saved position, it waits for the next line.
        drop(source);
        let mut source = LiveSource::start(&config, Some(second.position)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"third\n"))
            .unwrap();
        assert_eq!(source.next_line().await.unwrap().bytes, b"third");
    }
}
