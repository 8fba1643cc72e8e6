//! Splits a byte stream into lines, reading big buffers and handing out borrowed slices.
//!
//! No allocation per line: lines are slices of one buffer that is refilled in place. A line
//! longer than the buffer's cap is not held whole: its first [`LINE_CAP`] bytes are handed out
//! and the rest is skipped, so a damaged file (one endless line) costs bounded memory.
//!
//! [`LineReader::next_line`] reads a finished input (the end is final);
//! [`LineReader::next_complete_line`] reads one that is still growing (a partial last line waits
//! for its `\n`), and [`LineReader::consumed`] says how far into the input the lines handed out reach.

use std::io::{self, Read};

/// How much is read at a time.
const CHUNK: usize = 1 << 20;
/// The most of one line that is kept; the parser refuses lines this long anyway.
pub const LINE_CAP: usize = 1 << 20;

/// Reads `\n`-terminated lines from a reader.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    start: usize,
    /// End of the valid part of `buf`.
    end: usize,
    eof: bool,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// Bytes of `inner` that lie before `buf[0]`.
    base: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader over `inner`.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            base: 0,
        }
    }

    /// The reader this reads from.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// How many bytes of the input lie before the next line: the end of the last line handed out
    /// (with its `\n`), or of the skipped rest of an over-long line.
    pub fn consumed(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The next line without its `\n` (a final line without one is returned too), or `None` at
    /// the end. An over-long line comes back cut at [`LINE_CAP`] bytes.
    pub fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        self.next(true)
    }

    /// The next `\n`-terminated line without its `\n`, or `None` when the input holds no complete
    /// line yet. The end of the input is not final here: a partial last line stays buffered and
    /// a later call reads on, so this follows a file that is still being written.
    pub fn next_complete_line(&mut self) -> io::Result<Option<&[u8]>> {
        self.next(false)
    }

    /// Hands out the buffered partial last line, if any, as a final line: for an input that has
    /// stopped growing for good (a rotated-away log) after [`Self::next_complete_line`] said `None`.
    pub fn take_partial(&mut self) -> Option<&[u8]> {
        let line_start = self.start;
        self.start = self.end;
        if std::mem::take(&mut self.skipping) || line_start == self.end {
            return None;
        }
        Some(&self.buf[line_start..self.end])
    }

    fn next(&mut self, end_is_final: bool) -> io::Result<Option<&[u8]>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line_start = self.start;
                self.start += pos + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                return Ok(Some(&self.buf[line_start..line_start + pos]));
            }
            if self.eof {
                if !end_is_final {
                    self.eof = false;
                    return Ok(None);
                }
                if self.start == self.end || self.skipping {
                    self.skipping = false;
                    self.start = self.end;
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                return Ok(Some(&self.buf[line_start..self.end]));
            }
            let pending = self.end - self.start;
            if pending >= LINE_CAP && !self.skipping {
                // Hand out the head of the over-long line, then skip to its end.
                let line_start = self.start;
                self.start = self.end;
                self.skipping = true;
                return Ok(Some(&self.buf[line_start..line_start + LINE_CAP]));
            }
            if self.skipping {
                self.start = self.end;
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        // Move the partial line to the front, grow if it fills the buffer, then read.
        self.base += self.start as u64;
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() + CHUNK, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_a_last_line_without_newline() {
        assert_eq!(
            lines(b"a\nbb\n\nccc"),
            vec![b"a".to_vec(), b"bb".to_vec(), vec![], b"ccc".to_vec()]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn lines_across_chunk_borders_arrive_whole() {
        let mut input = Vec::new();
        for i in 0..300_000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let got = lines(&input);
        assert_eq!(got.len(), 300_000);
        assert_eq!(got[123_456], b"line 123456");
    }

    /// Hands out a growing input piece by piece, like a log being written.
    struct Growing {
        pieces: Vec<&'static [u8]>,
    }

    impl Read for Growing {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pieces.is_empty() {
                return Ok(0);
            }
            let piece = self.pieces.remove(0);
            out[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn a_partial_line_waits_for_its_newline_when_following() {
        let mut r = LineReader::new(Growing {
            pieces: vec![b"one\ntw", b"", b"o\nthr"],
        });
        assert_eq!(r.next_complete_line().unwrap(), Some(&b"one"[..]));
        assert_eq!(r.consumed(), 4);
        // The empty read is "nothing more yet": the partial `tw` is not handed out.
        assert_eq!(r.next_complete_line().unwrap(), None);
        assert_eq!(r.consumed(), 4);
        assert_eq!(r.next_complete_line().unwrap(), Some(&b"two"[..]));
        assert_eq!(r.consumed(), 8);
        assert_eq!(r.next_complete_line().unwrap(), None);
        assert_eq!(r.take_partial(), Some(&b"thr"[..]));
        assert_eq!(r.consumed(), 11);
        assert_eq!(r.take_partial(), None);
    }

    #[test]
    fn consumed_counts_skipped_overlong_lines() {
        let mut input = vec![b'x'; LINE_CAP + CHUNK + 5];
        input.extend_from_slice(b"\nnext\n");
        let total = input.len() as u64;
        let mut r = LineReader::new(&input[..]);
        assert_eq!(
            r.next_complete_line().unwrap().map(<[u8]>::len),
            Some(LINE_CAP)
        );
        assert_eq!(r.next_complete_line().unwrap(), Some(&b"next"[..]));
        assert_eq!(r.consumed(), total);
    }

    #[test]
    fn an_endless_line_is_cut_and_the_next_line_survives() {
        let mut input = vec![b'x'; LINE_CAP * 3 + 17];
        input.extend_from_slice(b"\nnext\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), LINE_CAP);
        assert_eq!(got[1], b"next");
    }
}
