//! The registry of live large allocations (requests above the largest class).
//!
//! A large allocation is one span of whole pages, `[start, start + span_len)`; the user
//! pointer is `start` (page-aligned, so aligned to any supported alignment) and its
//! metadata entry (tag `LARGE_CLASS`, generation, owner) is the one of `start`'s granule.
//! Invariants: one record per live large allocation, keyed by its start;
//! `live_bytes = Σ requested`, `live_span_bytes = Σ span_len`;
//! `span_len = round_up(requested, granule)` except after an in-place shrink that kept
//! fewer pages than it could. A free is accepted only for a key present here, so freeing
//! a large block twice, or a pointer that only looks like one, never reaches the span heap.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for page-aligned addresses: one multiply (keys are unique, well spread
/// addresses; the DoS-resistant default hasher buys nothing here).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.0 = ((value as u64) >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(26);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LargeRecord {
    pub(crate) span_len: usize,
    pub(crate) requested: usize,
}

#[derive(Default)]
pub(crate) struct LargeRegistry {
    live: HashMap<usize, LargeRecord, BuildHasherDefault<AddressHasher>>,
    live_bytes: usize,
    live_span_bytes: usize,
}

impl LargeRegistry {
    pub(crate) fn insert(&mut self, start: usize, record: LargeRecord) {
        self.live_bytes += record.requested;
        self.live_span_bytes += record.span_len;
        if let Some(old) = self.live.insert(start, record) {
            // Unreachable: a span is handed out once. Keep the totals exact regardless.
            self.live_bytes -= old.requested;
            self.live_span_bytes -= old.span_len;
        }
    }

    pub(crate) fn get(&self, start: usize) -> Option<LargeRecord> {
        self.live.get(&start).copied()
    }

    pub(crate) fn remove(&mut self, start: usize) -> Option<LargeRecord> {
        let record = self.live.remove(&start)?;
        self.live_bytes -= record.requested;
        self.live_span_bytes -= record.span_len;
        Some(record)
    }

    /// Starts of every live large allocation.
    pub(crate) fn starts(&self) -> impl Iterator<Item = usize> + '_ {
        self.live.keys().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    pub(crate) const fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    #[cfg(test)]
    pub(crate) const fn live_span_bytes(&self) -> usize {
        self.live_span_bytes
    }

    /// Every live record.
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn records(&self) -> impl Iterator<Item = (usize, LargeRecord)> + '_ {
        self.live.iter().map(|(&start, &record)| (start, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_independent_and_removed_once() {
        let mut reg = LargeRegistry::default();
        let a = LargeRecord { span_len: 8192, requested: 5000 };
        let b = LargeRecord { span_len: 4096, requested: 100 };
        reg.insert(0, a);
        reg.insert(8192, b);
        assert_eq!((reg.len(), reg.live_bytes(), reg.live_span_bytes()), (2, 5100, 12288));
        assert_eq!(reg.remove(0), Some(a));
        assert_eq!(reg.remove(0), None);
        assert_eq!(reg.get(8192), Some(b));
        assert_eq!((reg.len(), reg.live_bytes()), (1, 100));
    }
}
