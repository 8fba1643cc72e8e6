//! `replay --events` on every core: lines are independent of each other, so chunks of a file
//! are parsed by worker threads and their output is written back in file order.
//!
//! The reading thread gathers whole lines (through [`LineReader`], which caps an endless line)
//! into chunks of a few MiB; the workers parse a chunk and render its events as JSON lines; the
//! reading thread writes finished chunks in order. At most a few chunks are in flight, so memory
//! stays bounded whatever the file's size.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::replay::{write_event, FileError, Summary};
use crate::parse::{Outcome, Parser};
use crate::source::lines::LineReader;

/// Bytes of lines per chunk.
const CHUNK: usize = 4 << 20;

struct Chunk {
    index: u64,
    first_line: u64,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Done {
    index: u64,
    output: Vec<u8>,
    lines: u64,
    events: u64,
    skipped: BTreeMap<&'static str, u64>,
    error: Option<io::Error>,
}

fn parse_chunk(parser: &Parser, label: &str, chunk: Chunk) -> Done {
    let mut done = Done {
        index: chunk.index,
        ..Done::default()
    };
    let mut start = 0;
    // Every line was stored followed by one newline (lines never hold one themselves).
    for (number, end) in (chunk.first_line..).zip(memchr::memchr_iter(b'\n', &chunk.bytes)) {
        let line = &chunk.bytes[start..end];
        start = end + 1;
        done.lines += 1;
        match parser.parse(line) {
            Outcome::Event(event) => {
                done.events += 1;
                if let Err(e) = write_event(&mut done.output, label, number, &event) {
                    done.error = Some(e);
                    break;
                }
            }
            Outcome::Malformed(why) => *done.skipped.entry(why.as_str()).or_default() += 1,
            _ => {}
        }
    }
    done
}

/// Replays one file's events in parallel; output and counts are exactly those of the
/// sequential replay.
pub(crate) fn replay_events_parallel(
    parser: &Parser,
    label: &str,
    reader: Box<dyn Read + Send>,
    out: &mut dyn Write,
    summary: &mut Summary,
) -> Result<(), FileError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let (work_tx, work_rx) = mpsc::sync_channel::<Chunk>(workers);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let next = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(chunk) = next else { return };
                if done_tx.send(parse_chunk(parser, label, chunk)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut writer = InOrder::default();
        let fed = feed(reader, &work_tx, &done_rx, &mut writer, out, summary);
        drop(work_tx);
        // Whatever happened while feeding, collect and write what the workers finish.
        let mut result = fed;
        for done in done_rx.iter() {
            if let Err(e) = writer.accept(done, out, summary) {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    })
}

/// Reads lines into chunks and hands them out; writes finished chunks on the way.
fn feed(
    reader: Box<dyn Read + Send>,
    work_tx: &mpsc::SyncSender<Chunk>,
    done_rx: &mpsc::Receiver<Done>,
    writer: &mut InOrder,
    out: &mut dyn Write,
    summary: &mut Summary,
) -> Result<(), FileError> {
    let mut lines = LineReader::new(reader);
    let mut index = 0u64;
    let mut number = 0u64;
    let mut first_line = 1u64;
    let mut bytes = Vec::with_capacity(CHUNK + 4096);
    loop {
        let line = lines.next_line().map_err(|e| FileError::Read(e, number))?;
        let end = line.is_none();
        if let Some(line) = line {
            number += 1;
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        if (end && !bytes.is_empty()) || bytes.len() >= CHUNK {
            let chunk = Chunk {
                index,
                first_line,
                bytes: std::mem::replace(&mut bytes, Vec::with_capacity(CHUNK + 4096)),
            };
            index += 1;
            first_line = number + 1;
            if work_tx.send(chunk).is_err() {
                return Ok(());
            }
            while let Ok(done) = done_rx.try_recv() {
                writer.accept(done, out, summary)?;
            }
        }
        if end {
            return Ok(());
        }
    }
}

/// Writes finished chunks in file order.
#[derive(Default)]
struct InOrder {
    next: u64,
    waiting: BTreeMap<u64, Done>,
    failed: bool,
    pending_errors: VecDeque<io::Error>,
}

impl InOrder {
    fn accept(
        &mut self,
        done: Done,
        out: &mut dyn Write,
        summary: &mut Summary,
    ) -> Result<(), FileError> {
        self.waiting.insert(done.index, done);
        while let Some(done) = self.waiting.remove(&self.next) {
            self.next += 1;
            if self.failed {
                continue;
            }
            summary.lines += done.lines;
            summary.events += done.events;
            for (why, n) in done.skipped {
                *summary.skipped.entry(why).or_default() += n;
            }
            if let Some(e) = done.error {
                self.pending_errors.push_back(e);
            }
            if let Err(e) = out.write_all(&done.output) {
                self.failed = true;
                return Err(FileError::Write(e));
            }
        }
        match self.pending_errors.pop_front() {
            Some(e) => {
                self.failed = true;
                Err(FileError::Write(e))
            }
            None => Ok(()),
        }
    }
}
