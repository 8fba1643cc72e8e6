//! Warm-up after a restart: the policy engine's counters live in memory, so a restart would
//! forget every offender still below the threshold (and every correspondent our MTA delivered
//! to). Before following resumes at a file's saved position, the lines before that position are
//! read again into a fresh engine with its decisions thrown away: those decisions were made (and
//! committed) by the previous run. Offender history is restored from the store afterwards, so
//! the store's offence counts win over anything the warm-up concluded.

use std::path::Path;

use crate::parse::{Outcome, Parser};
use crate::policy::engine::Engine;
use crate::source::lines::LineReader;
use crate::source::position::FilePosition;

/// Feeds `path` up to `until.offset` to `engine`, if the file is still the one the position
/// names. Returns the number of lines read.
pub fn warm_up(engine: &mut Engine, parser: &Parser, path: &Path, until: &FilePosition) -> u64 {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    match file.metadata() {
        Ok(m) if m.ino() == until.ino && m.dev() == until.dev && m.len() >= until.offset => {}
        _ => return 0,
    }
    let mut lines = LineReader::new(file.take(until.offset));
    let mut n = 0;
    while let Ok(Some(line)) = lines.next_line() {
        n += 1;
        match parser.parse(line) {
            Outcome::Event(e) => {
                let _ = engine.observe_event(&e);
            }
            Outcome::Delivered(d) => engine.observe_delivery(&d),
            Outcome::Sender { queue_id, sender } => engine.observe_sender(&queue_id, &sender),
            Outcome::NotAnEvent | Outcome::Malformed(_) => {}
        }
    }
    n
}
