//! The evidence ring: the recent log lines behind the engine's decisions, in bounded memory.
//!
//! One ring of lines for all offenders, capped in bytes; each stored line points back to the
//! previous line of the same offender, so an offender holds only the number of its last line
//! (O(1) memory per offender) and its evidence is found by walking back. Lines pushed out of the
//! ring are simply no longer evidence. Never reads the clock, never touches the disk.

use std::collections::VecDeque;

/// What each stored line costs besides its text (link, offset, length), counted in the cap.
const ENTRY_OVERHEAD: usize = 24;

/// Sequence number of a stored line; 0 means "none".
pub type Seq = u64;

/// The ring of recent lines: their text in one byte ring (no allocation per line), and per
/// line its link to the offender's previous line, where its text starts, and its length.
#[derive(Debug, Clone)]
pub struct EvidenceRing {
    entries: VecDeque<(Seq, u64, u32)>,
    text: VecDeque<u8>,
    /// Sequence number of `entries[0]`.
    first: Seq,
    /// Absolute offset (over the ring's life) of `text[0]`.
    text_first: u64,
    bytes: usize,
    cap_bytes: usize,
}

impl EvidenceRing {
    /// A ring that holds at most about `cap_bytes` (line text and per-line overhead).
    pub fn new(cap_bytes: usize) -> Self {
        EvidenceRing {
            entries: VecDeque::new(),
            text: VecDeque::new(),
            first: 1,
            text_first: 0,
            bytes: 0,
            cap_bytes,
        }
    }

    /// Stores `line`, linked to the same offender's previous line `prev`; returns its number.
    pub fn push(&mut self, prev: Seq, line: &str) -> Seq {
        let seq = self.first + self.entries.len() as u64;
        let len = u32::try_from(line.len()).unwrap_or(u32::MAX);
        let offset = self.text_first + self.text.len() as u64;
        self.text.extend(&line.as_bytes()[..len as usize]);
        self.entries.push_back((prev, offset, len));
        self.bytes += len as usize + ENTRY_OVERHEAD;
        while self.bytes > self.cap_bytes && self.entries.len() > 1 {
            if let Some((_, _, old)) = self.entries.pop_front() {
                self.text.drain(..old as usize);
                self.text_first += u64::from(old);
                self.bytes -= old as usize + ENTRY_OVERHEAD;
                self.first += 1;
            }
        }
        seq
    }

    /// Up to `max` lines ending with line `last`, oldest first.
    pub fn chain(&self, last: Seq, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut seq = last;
        while out.len() < max && seq >= self.first && seq != 0 {
            let Some(&(prev, offset, len)) = self.entries.get((seq - self.first) as usize) else {
                break;
            };
            let start = (offset - self.text_first) as usize;
            let bytes: Vec<u8> = self
                .text
                .range(start..start + len as usize)
                .copied()
                .collect();
            out.push(String::from_utf8_lossy(&bytes).into_owned());
            seq = prev;
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_follow_one_offender_and_stop_at_the_cap() {
        let mut r = EvidenceRing::new(1 << 20);
        let a1 = r.push(0, "a1");
        let b1 = r.push(0, "b1");
        let a2 = r.push(a1, "a2");
        let a3 = r.push(a2, "a3");
        assert_eq!(r.chain(a3, 5), vec!["a1", "a2", "a3"]);
        assert_eq!(r.chain(a3, 2), vec!["a2", "a3"]);
        assert_eq!(r.chain(b1, 5), vec!["b1"]);
    }

    #[test]
    fn lines_pushed_out_of_the_ring_are_no_longer_evidence() {
        let mut r = EvidenceRing::new(2 * (2 + ENTRY_OVERHEAD));
        let a1 = r.push(0, "aa");
        let a2 = r.push(a1, "aa");
        let a3 = r.push(a2, "aa");
        assert_eq!(r.chain(a3, 5), vec!["aa", "aa"]);
    }
}
