//! The bytes a held client is fed: the operator's message cut into short SMTP continuation lines
//! (`220-...` or `451-...`, CRLF-terminated) that repeat forever and never include a final line.
//!
//! Owns the line shape only; it never touches a socket. Every connection shares one [`Lines`] and
//! keeps just an offset into it, so the text costs nothing per connection.
//!
//! Why short lines: Postfix 2.9-3.6 with `smtp_per_record_deadline = yes` restarts its 300 s
//! deadline per response line, so each line must be complete within 300 s. At one byte per
//! `interval`, a line of `n` bytes takes `n x interval`; [`line_budget`] keeps that under
//! [`LINE_TIME_BUDGET`]. Default Postfix (per-read timer) and Exim (one deadline for the whole
//! reply) do not care about the line length, only that no final line ever comes.

use std::time::Duration;

/// How long one line may take to trickle out: 10 % under Postfix's 300 s per-record deadline.
pub const LINE_TIME_BUDGET: Duration = Duration::from_secs(270);

/// `NNN-` in front and CRLF behind: the bytes every line spends on framing.
const FRAMING: usize = 6;

/// Longest line we ever send, framing included (well inside RFC 5321's 512).
const MAX_LINE: usize = 76;

/// Shortest line: framing plus two characters of text.
const MIN_LINE: usize = FRAMING + 2;

/// The endless reply shared by all connections: one cycle of lines, repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    cycle: Vec<u8>,
}

impl Lines {
    /// Cuts `message` into `code-` lines of at most `line_len` bytes each (framing included).
    /// `code` is a three-digit SMTP code such as `220` or `451`.
    pub fn new(code: u16, message: &str, line_len: usize) -> Lines {
        let width = line_len.clamp(MIN_LINE, MAX_LINE) - FRAMING;
        let mut cycle = Vec::new();
        for chunk in wrap(message, width) {
            cycle.extend_from_slice(format!("{code:03}-{chunk}\r\n").as_bytes());
        }
        if cycle.is_empty() {
            cycle.extend_from_slice(format!("{code:03}-\r\n").as_bytes());
        }
        Lines { cycle }
    }

    /// The byte at position `pos` of the endless stream.
    pub fn byte_at(&self, pos: u64) -> u8 {
        let len = self.cycle.len() as u64;
        // `cycle` is never empty (see `new`), and the index is below its length.
        self.cycle
            .get((pos % len) as usize)
            .copied()
            .unwrap_or(b'\n')
    }

    /// One full cycle of the lines (for logs and tests).
    pub fn cycle(&self) -> &[u8] {
        &self.cycle
    }
}

/// The longest line (framing included) that trickles out within [`LINE_TIME_BUDGET`] at one byte
/// per `interval`, bounded to a sensible range. Returns the length and whether the budget could be
/// met (it cannot when even the shortest line takes too long).
pub fn line_budget(interval: Duration) -> (usize, bool) {
    let fits = if interval.is_zero() {
        usize::MAX
    } else {
        (LINE_TIME_BUDGET.as_nanos() / interval.as_nanos()) as usize
    };
    (fits.clamp(MIN_LINE, MAX_LINE), fits >= MIN_LINE)
}

/// Greedy word wrap to `width` characters; words longer than `width` are split.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word;
        while word.len() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let (head, tail) = word.split_at(width);
            out.push(head.to_owned());
            word = tail;
        }
        if word.is_empty() {
            continue;
        }
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_interval_gives_lines_that_beat_the_per_record_deadline() {
        let interval = Duration::from_secs(10);
        let (len, ok) = line_budget(interval);
        assert!(ok);
        assert_eq!(len, 27);
        let lines = Lines::new(
            220,
            "example.org tarpits this host for sending unwanted mail",
            len,
        );
        for line in lines.cycle().split_inclusive(|&b| b == b'\n') {
            assert!(line.len() <= len, "{:?}", String::from_utf8_lossy(line));
            assert!(interval * line.len() as u32 <= LINE_TIME_BUDGET);
        }
    }

    #[test]
    fn every_line_is_a_continuation_and_never_final() {
        let lines = Lines::new(
            220,
            "example.org tarpits this host; see https://example.org/t",
            27,
        );
        let text = String::from_utf8(lines.cycle().to_vec()).unwrap();
        assert!(text.ends_with("\r\n"));
        for line in text.split_terminator("\r\n") {
            assert!(line.starts_with("220-"), "{line:?}");
            assert!(!line.contains('\n') && !line.contains('\r'));
        }
        let joined: Vec<&str> = text.split_terminator("\r\n").map(|l| &l[4..]).collect();
        assert_eq!(
            joined.join(" "),
            "example.org tarpits this host; see https://example.org/t"
        );
    }

    #[test]
    fn long_words_are_split_and_the_stream_repeats() {
        let lines = Lines::new(451, "abcdefghijklmnop", 10);
        assert_eq!(
            lines.cycle(),
            b"451-abcd\r\n451-efgh\r\n451-ijkl\r\n451-mnop\r\n"
        );
        let n = lines.cycle().len() as u64;
        assert_eq!(lines.byte_at(0), b'4');
        assert_eq!(lines.byte_at(n), b'4');
        assert_eq!(lines.byte_at(n + 4), b'a');
    }

    #[test]
    fn slow_intervals_are_flagged() {
        assert_eq!(line_budget(Duration::from_secs(60)), (MIN_LINE, false));
        assert_eq!(line_budget(Duration::from_millis(100)), (MAX_LINE, true));
    }
}
