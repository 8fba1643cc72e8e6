//! Follows one log file like `tail -F`, without ever missing or repeating a line.
//!
//! Owns the reading of a live log: rename+create rotation (the old file is read to its end
//! through the descriptor kept open, then the new one from its start), copytruncate rotation
//! (the file shrinks or its first bytes change: the rest of the old contents is read from the
//! copy when it can be found, then the file from 0), a file that does not exist yet (waited for),
//! partial last lines (handed out only once their `\n` arrives) and resuming from a saved
//! [`FilePosition`], finishing a file rotated while the daemon was down first.
//!
//! Reading happens on a thread of its own that wakes on inotify events (through `notify`) or,
//! when inotify is unavailable or fails, on a timer, and sends batches of lines down a bounded
//! channel, so a slow consumer stops the reading instead of growing memory. Each line comes with
//! the position just after it: the consumer saves that once it has processed the line.
//!
//! This module yields raw lines only: it never parses them.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::lines::LineReader;
use super::position::{FilePosition, Fingerprint, Position, FINGERPRINT_BYTES};
use super::Line;

/// A batch stops growing once its lines hold this many bytes, so the channel's memory stays
/// bounded (at most `channel_batches` times this, plus one line each) even with long lines.
pub const BATCH_BYTES: usize = 1 << 20;

/// How far file times may lag the system clock (the kernel stamps files from a coarse clock).
const CLOCK_MARGIN: Duration = Duration::from_millis(100);

/// How a [`FileSource`] reads.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// How often the file is looked at without an inotify event: the only clock when inotify is
    /// unavailable, and a safety net beside it (e.g. for a log renamed into another directory).
    pub poll_interval: Duration,
    /// After a rename rotation, how long the old file must stay quiet before the follower moves
    /// to a new file that is still empty. As soon as the new file has data the writer has moved
    /// on, and the old file is read to its end and left at once.
    pub rotate_grace: Duration,
    /// The most lines in one batch (a batch also stops growing at [`BATCH_BYTES`]).
    pub batch_lines: usize,
    /// How many batches may wait in the channel before reading pauses.
    pub channel_batches: usize,
    /// Never use inotify, only the timer (for file systems where inotify sees nothing, such as
    /// some network mounts).
    pub poll_only: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            poll_interval: Duration::from_millis(500),
            rotate_grace: Duration::from_secs(5),
            batch_lines: 1024,
            channel_batches: 16,
            poll_only: false,
        }
    }
}

/// A followed log file, read on its own thread; lines arrive in order through
/// [`FileSource::next_line`] or [`FileSource::next_batch`].
pub struct FileSource {
    rx: mpsc::Receiver<Vec<Line>>,
    batch: std::vec::IntoIter<Line>,
}

impl FileSource {
    /// Starts following `path`, from `start` when given (a position saved from an earlier run),
    /// else from the file's beginning. A missing file is waited for. Fails only when the reading
    /// thread cannot be started.
    pub fn spawn(
        path: impl Into<PathBuf>,
        start: Option<FilePosition>,
        options: FollowOptions,
    ) -> io::Result<FileSource> {
        let path = path.into();
        let (tx, rx) = mpsc::channel(options.channel_batches.max(1));
        let name = format!("follow {}", path.display());
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(path, start, options, tx))?;
        Ok(FileSource {
            rx,
            batch: Vec::new().into_iter(),
        })
    }

    /// The next line with the position just after it. `None` only if the reading thread is gone.
    pub async fn next_line(&mut self) -> Option<Line> {
        loop {
            if let Some(line) = self.batch.next() {
                return Some(line);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }

    /// The next lines available at once (never empty), in order. `None` only if the reading
    /// thread is gone.
    pub async fn next_batch(&mut self) -> Option<Vec<Line>> {
        let rest: Vec<Line> = self.batch.by_ref().collect();
        if !rest.is_empty() {
            return Some(rest);
        }
        self.rx.recv().await
    }
}

/// The reading thread: read what is there, send it, wait for a change, until the receiver goes.
fn run(
    path: PathBuf,
    start: Option<FilePosition>,
    options: FollowOptions,
    tx: mpsc::Sender<Vec<Line>>,
) {
    let mut wake = Wake::new(&path, options.poll_only);
    let mut follower = Follower::new(path, start, options.rotate_grace);
    loop {
        let mut batch = Vec::new();
        follower.read(&mut batch, options.batch_lines.max(1), BATCH_BYTES);
        if !batch.is_empty() {
            if tx.blocking_send(batch).is_err() {
                return;
            }
            continue;
        }
        if tx.is_closed() {
            return;
        }
        wake.wait(options.poll_interval);
    }
}

/// How often a failed inotify watch is tried again (the log's directory may appear later, or
/// watches be freed).
const WATCH_RETRY: Duration = Duration::from_secs(30);

/// Wakes the reading thread when something happens in the log's directory.
struct Wake {
    path: PathBuf,
    tx: std_mpsc::SyncSender<()>,
    rx: std_mpsc::Receiver<()>,
    /// Kept alive for as long as events are wanted; none when polling.
    watcher: Option<notify::RecommendedWatcher>,
    poll_only: bool,
    last_try: Instant,
}

impl Wake {
    fn new(path: &Path, poll_only: bool) -> Wake {
        let (tx, rx) = std_mpsc::sync_channel(1);
        let mut wake = Wake {
            path: path.to_owned(),
            tx,
            rx,
            watcher: None,
            poll_only,
            last_try: Instant::now(),
        };
        if !poll_only {
            if let Err(e) = wake.try_watch() {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot watch the log with inotify; polling it instead"
                );
            }
        }
        wake
    }

    fn try_watch(&mut self) -> notify::Result<()> {
        self.last_try = Instant::now();
        self.watcher = Some(watch(&self.path, self.tx.clone())?);
        Ok(())
    }

    /// Waits for an event or `timeout`, whichever comes first.
    fn wait(&mut self, timeout: Duration) {
        let retry =
            !self.poll_only && self.watcher.is_none() && self.last_try.elapsed() >= WATCH_RETRY;
        if retry && self.try_watch().is_ok() {
            tracing::info!(path = %self.path.display(), "watching the log with inotify now");
        }
        // A timeout is the polling; an event wakes earlier.
        let _ = self.rx.recv_timeout(timeout);
    }
}

/// Watches the log's directory (the file itself is replaced at each rotation) and signals events
/// that concern the log or its rotated names.
fn watch(path: &Path, tx: std_mpsc::SyncSender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = parent(path).to_owned();
    let base = path.file_name().map(|n| n.as_encoded_bytes().to_vec());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match (&event, &base) {
            (Ok(e), Some(base)) => {
                e.paths.is_empty()
                    || e.paths.iter().any(|p| {
                        p.file_name()
                            .is_some_and(|n| n.as_encoded_bytes().starts_with(base))
                    })
            }
            _ => true,
        };
        if relevant {
            // A full channel already holds a wake-up: nothing is lost by dropping this one.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The synchronous core: reads the log and handles rotation. [`FileSource`] runs it on a thread.
pub struct Follower {
    path: PathBuf,
    current: Option<Reading>,
    rotate_grace: Duration,
    /// When a new file was first seen at the path while the old one was still being read.
    rotated_since: Option<Instant>,
    /// The last problem logged, so a lasting one is logged once.
    problem: Option<String>,
    /// Since when the log has been missing: when it appears, rotations of it that happened in
    /// the meantime (it was created and rotated before the follower looked) are read first.
    missing_since: Option<SystemTime>,
}

/// One open file being read.
struct Reading {
    reader: LineReader<Tracked>,
    /// The offset the reader started at.
    origin: u64,
    /// A rotated-away file found at start or after a copytruncate: read it to its end, then
    /// move to the file at the path.
    leftover: bool,
    /// The new file at the path has data: read this one to its end once more, then move.
    final_pass: bool,
}

/// A file read at an explicit offset, checking before each read that it was not truncated.
struct Tracked {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read so far (the offset of the next read).
    read: u64,
    fingerprint: Fingerprint,
    /// When the file was created: rotated files are read in this order.
    born: Option<SystemTime>,
}

/// The marker inside the `io::Error` a [`Tracked`] read returns when its file was truncated.
#[derive(Debug, thiserror::Error)]
#[error("the file was truncated")]
struct Truncated;

impl Tracked {
    fn open(file: File, meta: &Metadata, offset: u64) -> io::Result<Tracked> {
        let mut t = Tracked {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            read: offset,
            fingerprint: Fingerprint::of(&[]),
            born: born(meta),
        };
        t.fingerprint = Fingerprint::of(&t.head(offset)?);
        Ok(t)
    }

    /// The file's first bytes, up to `limit` and [`FINGERPRINT_BYTES`].
    fn head(&self, limit: u64) -> io::Result<Vec<u8>> {
        head(&self.file, limit)
    }

    /// Whether the file still starts as it did and is not shorter than what was read.
    fn check(&self) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        let truncated = size < self.read
            || Fingerprint::of(&self.head(u64::from(self.fingerprint.len))?) != self.fingerprint;
        if truncated {
            return Err(io::Error::other(Truncated));
        }
        Ok(())
    }
}

impl Read for Tracked {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        let n = self.file.read_at(out, self.read)?;
        self.read += n as u64;
        if n > 0 && !self.fingerprint.is_complete() {
            self.fingerprint = Fingerprint::of(&self.head(self.read)?);
        }
        Ok(n)
    }
}

/// When the file was created (modified, where the file system does not record creation).
fn born(meta: &Metadata) -> Option<SystemTime> {
    meta.created().or_else(|_| meta.modified()).ok()
}

fn is_truncated(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Truncated>())
}

/// The first bytes of `file`, up to `limit` and [`FINGERPRINT_BYTES`].
fn head(file: &File, limit: u64) -> io::Result<Vec<u8>> {
    let want = usize::try_from(limit).map_or(FINGERPRINT_BYTES, |l| l.min(FINGERPRINT_BYTES));
    let mut buf = vec![0; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Whether `file` is the one a saved position was taken in: at least `offset` long and starting
/// with the same bytes.
fn matches(file: &File, meta: &Metadata, pos: &FilePosition) -> bool {
    meta.len() >= pos.offset
        && head(file, u64::from(pos.fingerprint.len))
            .is_ok_and(|h| Fingerprint::of(&h) == pos.fingerprint)
}

impl Reading {
    fn new(tracked: Tracked, leftover: bool) -> Reading {
        let origin = tracked.read;
        Reading {
            reader: LineReader::new(tracked),
            origin,
            leftover,
            final_pass: false,
        }
    }

    fn position(&self) -> FilePosition {
        let t = self.reader.get_ref();
        FilePosition {
            dev: t.dev,
            ino: t.ino,
            offset: self.origin + self.reader.consumed(),
            fingerprint: t.fingerprint,
        }
    }
}

impl Follower {
    /// A follower of `path`, resuming from `start` when given. See [`FileSource::spawn`].
    pub fn new(path: PathBuf, start: Option<FilePosition>, rotate_grace: Duration) -> Follower {
        let mut f = Follower {
            path,
            current: None,
            rotate_grace,
            rotated_since: None,
            problem: None,
            missing_since: None,
        };
        match start {
            Some(pos) => f.resume(&pos),
            None => f.open_path(),
        }
        f
    }

    /// Appends to `out` the complete lines available now, each with the position just after
    /// it, stopping at `max_lines` lines or once they hold `max_bytes`. Returns with fewer (maybe
    /// none) when there is nothing more to read yet.
    pub fn read(&mut self, out: &mut Vec<Line>, max_lines: usize, max_bytes: usize) {
        let mut bytes: usize = out.iter().map(|l| l.bytes.len()).sum();
        while out.len() < max_lines && bytes < max_bytes {
            let Some(cur) = self.current.as_mut() else {
                self.open_path();
                if self.current.is_none() {
                    return;
                }
                continue;
            };
            match cur.reader.next_complete_line() {
                Ok(Some(line)) => {
                    bytes += line.len();
                    let line = line.to_vec();
                    let position = Position::File(cur.position());
                    out.push(Line {
                        bytes: line,
                        position,
                    });
                    self.rotated_since = None;
                }
                Ok(None) => {
                    if !self.at_end(out) {
                        return;
                    }
                }
                Err(e) if is_truncated(&e) => self.truncated(),
                Err(e) => {
                    self.report(format!("cannot read: {e}"));
                    return;
                }
            }
        }
    }

    /// At the end of what the current file holds: moves on when it was rotated away. Returns
    /// whether reading should go on now.
    fn at_end(&mut self, out: &mut Vec<Line>) -> bool {
        let Some(cur) = self.current.as_mut() else {
            return false;
        };
        if !cur.leftover && !cur.final_pass {
            let t = cur.reader.get_ref();
            let new_file = match fs::metadata(&self.path) {
                Ok(meta) if (meta.dev(), meta.ino()) != (t.dev, t.ino) => Some(meta.len()),
                _ => None,
            };
            let move_on = match new_file {
                Some(len) => len > 0 || self.rotation_is_quiet(),
                None => false,
            };
            if !move_on {
                return false;
            }
            // The writer has moved to the new file: read the old one to its end once more.
            if let Some(cur) = self.current.as_mut() {
                cur.final_pass = true;
            }
            return true;
        }
        let Some(cur) = self.current.as_mut() else {
            return false;
        };
        // Finished: a rotated file's unterminated last line will never be completed.
        if let Some(line) = cur.reader.take_partial() {
            let bytes = line.to_vec();
            let position = Position::File(cur.position());
            out.push(Line { bytes, position });
        }
        let finished = cur.reader.get_ref().born;
        self.current = None;
        self.rotated_since = None;
        self.advance(finished);
        true
    }

    /// Moves on from a finished rotated file born at `finished`: to the next rotated file when
    /// the log was rotated more than once since (the follower fell behind, or was stopped), else
    /// to the file at the path.
    fn advance(&mut self, finished: Option<SystemTime>) {
        if let Some((name, tracked)) = finished.and_then(|born| next_rotated(&self.path, born)) {
            tracing::info!(path = %self.path.display(), next = %name.display(), "finished a rotated log; reading the next rotated one");
            self.current = Some(Reading::new(tracked, true));
            return;
        }
        tracing::info!(path = %self.path.display(), "finished the rotated log; reading the new one");
        self.open_path();
    }

    fn rotation_is_quiet(&mut self) -> bool {
        let since = *self.rotated_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.rotate_grace
    }

    /// The current file was truncated (copytruncate): reads what was left unread from the copy
    /// when it can be found, then the file from its start.
    fn truncated(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let pos = cur.position();
        tracing::info!(path = %self.path.display(), offset = pos.offset, "the log was truncated (copytruncate rotation)");
        if cur.leftover {
            // A rotated file truncated under us: nothing more to finish there.
            self.advance(cur.reader.get_ref().born);
            return;
        }
        match find_rotated(&self.path, &pos) {
            Some((name, tracked)) => {
                tracing::info!(path = %self.path.display(), copy = %name.display(), "finishing the log from its rotated copy");
                self.current = Some(Reading::new(tracked, true));
            }
            None => {
                self.report(format!(
                    "truncated at offset {} and no rotated copy found: lines written just before the truncation may be lost",
                    pos.offset
                ));
                self.open_path();
            }
        }
    }

    /// Opens the file at the path from its start, if it exists.
    fn open_path(&mut self) {
        // Taken before looking, so a file created just after the look is born after it; less a
        // margin, because file times come from the kernel's coarse clock, a tick behind.
        let looked = SystemTime::now() - CLOCK_MARGIN;
        if let Some(since) = self.missing_since {
            if let Some((name, tracked)) = next_rotated(&self.path, since) {
                tracing::info!(path = %self.path.display(), rotated = %name.display(), "the log appeared and was rotated before it was read: reading the rotated file first");
                self.missing_since = None;
                self.current = Some(Reading::new(tracked, true));
                return;
            }
        }
        match open(&self.path) {
            Ok((file, meta)) => match Tracked::open(file, &meta, 0) {
                Ok(t) => {
                    self.current = Some(Reading::new(t, false));
                    self.problem = None;
                    self.missing_since = None;
                }
                Err(e) => self.report(format!("cannot read: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.missing_since.get_or_insert(looked);
                self.report("does not exist (yet); waiting for it".into());
            }
            Err(e) => self.report(format!("cannot open: {e}")),
        }
    }

    /// Picks up from a saved position: the same file when it is still at the path, else the
    /// rotated old file from the saved offset (the new file follows from its start).
    fn resume(&mut self, pos: &FilePosition) {
        let at_path = open(&self.path).ok();
        if let Some((file, meta)) = &at_path {
            if (meta.dev(), meta.ino()) == (pos.dev, pos.ino) && matches(file, meta, pos) {
                self.resume_in(at_path, pos.offset, false);
                return;
            }
        }
        if let Some((name, tracked)) = find_rotated(&self.path, pos) {
            tracing::info!(path = %self.path.display(), rotated = %name.display(), "rotated while stopped: finishing the old log first");
            self.current = Some(Reading::new(tracked, true));
            return;
        }
        if let Some((file, meta)) = &at_path {
            // Same contents under a new identity (restored, or device numbers changed).
            if matches(file, meta, pos) {
                self.resume_in(at_path, pos.offset, false);
                return;
            }
        }
        self.report(format!(
            "the saved position (inode {}, offset {}) matches no file any more: reading the log from its start",
            pos.ino, pos.offset
        ));
        self.resume_in(at_path, 0, false);
    }

    fn resume_in(&mut self, opened: Option<(File, Metadata)>, offset: u64, leftover: bool) {
        let Some((file, meta)) = opened else {
            return;
        };
        match Tracked::open(file, &meta, offset) {
            Ok(t) => self.current = Some(Reading::new(t, leftover)),
            Err(e) => self.report(format!("cannot read: {e}")),
        }
    }

    /// Logs a problem once, until a different one happens.
    fn report(&mut self, problem: String) {
        if self.problem.as_ref() != Some(&problem) {
            tracing::warn!(path = %self.path.display(), "{problem}");
            self.problem = Some(problem);
        }
    }
}

fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta))
}

/// Finds the old contents of the log at `path` that `pos` was taken in, under another name in
/// the same directory: by its identity (renamed, e.g. `mail.log.1`), else by its fingerprint
/// among the log's rotated names (`mail.log.1`, `mail.log-20261204`: a copytruncate copy).
/// Compressed files are not considered. Returns the file opened at the saved offset.
fn find_rotated(path: &Path, pos: &FilePosition) -> Option<(PathBuf, Tracked)> {
    let base = path.file_name()?.as_encoded_bytes().to_vec();
    let mut by_name: Vec<(SystemTime, PathBuf, File, Metadata)> = Vec::new();
    for entry in fs::read_dir(parent(path)).ok()?.flatten() {
        let candidate = entry.path();
        if candidate == path {
            continue;
        }
        // Only the old file itself and the log's rotated names are opened, not the whole
        // directory.
        let Ok(meta) = fs::metadata(&candidate) else {
            continue;
        };
        let same = (meta.dev(), meta.ino()) == (pos.dev, pos.ino);
        if !same && !is_rotated_name(&base, &entry.file_name()) {
            continue;
        }
        let Ok((file, meta)) = open(&candidate) else {
            continue;
        };
        if !matches(&file, &meta, pos) {
            continue;
        }
        if same {
            let tracked = Tracked::open(file, &meta, pos.offset).ok()?;
            return Some((candidate, tracked));
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        by_name.push((modified, candidate, file, meta));
    }
    // The most recently written copy is the latest rotation.
    let (_, name, file, meta) = by_name.into_iter().max_by_key(|(m, ..)| *m)?;
    let tracked = Tracked::open(file, &meta, pos.offset).ok()?;
    Some((name, tracked))
}

/// Whether `name` is one of the names logrotate gives the log `base` when rotating it
/// (`mail.log.1`, `mail.log-20261204`), compressed ones excepted.
fn is_rotated_name(base: &[u8], name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.len() > base.len() + 1
        && name.starts_with(base)
        && matches!(name[base.len()], b'.' | b'-')
        && name[base.len() + 1].is_ascii_digit()
        && ![&b".gz"[..], b".xz", b".bz2", b".zst", b".lz4", b".Z"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The rotated file of the log at `path` born next after `after`, opened at its start.
fn next_rotated(path: &Path, after: SystemTime) -> Option<(PathBuf, Tracked)> {
    let base = path.file_name()?.as_encoded_bytes().to_vec();
    let (_, name, file, meta) = fs::read_dir(parent(path))
        .ok()?
        .flatten()
        .filter(|entry| is_rotated_name(&base, &entry.file_name()))
        .filter_map(|entry| {
            let name = entry.path();
            let (file, meta) = open(&name).ok()?;
            let born = born(&meta).filter(|b| *b > after)?;
            Some((born, name, file, meta))
        })
        .min_by_key(|(born, ..)| *born)?;
    let tracked = Tracked::open(file, &meta, 0).ok()?;
    Some((name, tracked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    fn read_all(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.read(&mut out, usize::MAX, usize::MAX);
        texts(&out)
    }

    fn append(path: &Path, text: &str) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn rotated_names_are_logrotates() {
        let base = b"mail.log";
        for yes in [
            "mail.log.1",
            "mail.log.0",
            "mail.log-20261204",
            "mail.log.12",
        ] {
            assert!(is_rotated_name(base, yes.as_ref()), "{yes}");
        }
        for no in [
            "mail.log",
            "mail.log.",
            "mail.log.2.gz",
            "mail.log-20261204.xz",
            "mail.log.old",
            "mail.err",
            "mail.logger.1",
        ] {
            assert!(!is_rotated_name(base, no.as_ref()), "{no}");
        }
    }

    #[test]
    fn a_truncation_without_copy_reads_the_new_contents_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        append(&path, "one\ntwo\n");
        let mut f = Follower::new(path.clone(), None, Duration::ZERO);
        assert_eq!(read_all(&mut f), ["one", "two"]);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "three is longer than before\n");
        assert_eq!(read_all(&mut f), ["three is longer than before"]);
    }

    #[test]
    fn the_unterminated_end_of_a_rotated_file_is_handed_out_on_leaving_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        append(&path, "one\ntw");
        let mut f = Follower::new(path.clone(), None, Duration::from_secs(3600));
        assert_eq!(read_all(&mut f), ["one"]);
        fs::rename(&path, dir.path().join("mail.log.1")).unwrap();
        append(&path, "");
        // The new file is empty and the grace is long: the old one may still be written.
        assert!(read_all(&mut f).is_empty());
        append(&path, "three\n");
        let mut out = Vec::new();
        f.read(&mut out, usize::MAX, usize::MAX);
        assert_eq!(texts(&out), ["tw", "three"]);
        let Position::File(end) = &out[1].position else {
            panic!("{:?}", out[1].position);
        };
        assert_eq!(end.offset, 6);
    }

    #[test]
    fn a_log_created_and_rotated_before_the_first_look_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        let mut f = Follower::new(path.clone(), None, Duration::ZERO);
        assert!(read_all(&mut f).is_empty());
        append(&path, "one\n");
        fs::rename(&path, dir.path().join("mail.log.1")).unwrap();
        append(&path, "two\n");
        assert_eq!(read_all(&mut f), ["one", "two"]);
    }

    #[test]
    fn batches_stop_at_their_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        append(&path, &"0123456789\n".repeat(10));
        let mut f = Follower::new(path, None, Duration::ZERO);
        let mut out = Vec::new();
        f.read(&mut out, usize::MAX, 25);
        assert_eq!(out.len(), 3);
        f.read(&mut out, 5, usize::MAX);
        assert_eq!(out.len(), 5);
    }
}
