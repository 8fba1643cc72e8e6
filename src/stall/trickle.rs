//! The timer queue: which held connection gets its next byte when.
//!
//! Every connection waits the same interval, so appending `now + interval` at the tail keeps the
//! queue sorted by due time (the trick endlessh uses): push and pop are O(1), no heap, no timer
//! per connection. A connection that closes leaves its entry behind; the entry carries the
//! connection's generation and is skipped when it comes due ([`TrickleQueue::compact`] drops such
//! entries in bulk when they pile up).
//!
//! Owns ordering only; it never touches a socket.

use std::collections::VecDeque;
use std::time::Instant;

/// One scheduled write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// When the write is due.
    pub at: Instant,
    /// The connection's slot (its file descriptor).
    pub slot: u32,
    /// The slot's generation when this was scheduled; stale if the slot has been reused since.
    pub generation: u32,
}

/// Scheduled writes in due order.
#[derive(Debug, Default)]
pub struct TrickleQueue {
    queue: VecDeque<Due>,
}

impl TrickleQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a write. `due.at` must not be earlier than any entry already queued (true when
    /// every entry is `now + the same interval`); an earlier one is clamped to the tail's time so
    /// the queue stays sorted.
    pub fn push(&mut self, mut due: Due) {
        if let Some(last) = self.queue.back() {
            if due.at < last.at {
                due.at = last.at;
            }
        }
        self.queue.push_back(due);
    }

    /// Removes and returns the first entry due at or before `until`.
    pub fn pop_due(&mut self, until: Instant) -> Option<Due> {
        if self.queue.front()?.at <= until {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// When the next entry is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.front().map(|d| d.at)
    }

    /// Entries queued, stale ones included.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops the entries `live` rejects, keeping the order, and gives the spare memory back.
    pub fn compact(&mut self, mut live: impl FnMut(&Due) -> bool) {
        self.queue.retain(|d| live(d));
        self.queue.shrink_to(self.queue.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn due(at: Instant, slot: u32) -> Due {
        Due {
            at,
            slot,
            generation: 0,
        }
    }

    #[test]
    fn pops_in_due_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut q = TrickleQueue::new();
        q.push(due(t0 + Duration::from_secs(1), 7));
        q.push(due(t0 + Duration::from_secs(2), 8));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.next_at(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(5)).map(|d| d.slot),
            Some(7)
        );
        assert_eq!(q.pop_due(t0 + Duration::from_millis(1500)), None);
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(2)).map(|d| d.slot),
            Some(8)
        );
        assert!(q.is_empty());
    }

    #[test]
    fn an_earlier_push_is_clamped_to_keep_order() {
        let t0 = Instant::now();
        let mut q = TrickleQueue::new();
        q.push(due(t0 + Duration::from_secs(3), 1));
        q.push(due(t0 + Duration::from_secs(1), 2));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(2)), None);
        let both: Vec<u32> =
            std::iter::from_fn(|| q.pop_due(t0 + Duration::from_secs(3)).map(|d| d.slot)).collect();
        assert_eq!(both, vec![1, 2]);
    }

    #[test]
    fn compact_drops_stale_entries_and_keeps_order() {
        let t0 = Instant::now();
        let mut q = TrickleQueue::new();
        for slot in 0..10 {
            q.push(due(t0 + Duration::from_millis(slot as u64), slot));
        }
        q.compact(|d| d.slot % 3 == 0);
        assert_eq!(q.len(), 4);
        let left: Vec<u32> =
            std::iter::from_fn(|| q.pop_due(t0 + Duration::from_secs(1)).map(|d| d.slot)).collect();
        assert_eq!(left, vec![0, 3, 6, 9]);
    }
}
