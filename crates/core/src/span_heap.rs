//! Free spans of the arena: whole pages that no slab or large allocation uses.
//!
//! Slabs of every class and large allocations are carved from here first (best fit,
//! split), then from the arena's uncarved top. A freed span is merged with free
//! neighbours, so memory freed by one class serves any other class or the large path.
//!
//! Invariants (under the pages lock that owns the heap):
//! - spans in `by_start` are disjoint, non-adjacent (adjacent ones are merged), page multiples
//! - `by_size` holds exactly `(len, start)` for every entry of `by_start`
//! - `free_bytes = Σ len`, `dirty_bytes = Σ dirty <= free_bytes`; `dirty` counts bytes that
//!   may still be committed (an over-estimate after merges and splits, never an under-estimate)
//! - `recent` holds up to `RECENT` freshly freed spans (dirty, counted in both totals) kept
//!   out of the maps: a request of exactly their size takes one back without any map
//!   operation (the large path's alloc/free churn); they are merged into the maps before
//!   any search that could use a merged span, and before purging
//! - every span is committed memory (readable and writable)

use std::collections::{BTreeMap, BTreeSet};

use crate::config::round_up;
use crate::region::CHUNK_SIZE;

/// Candidates a chunk-bounded take looks at before giving up (the miss path stays bounded).
const IN_CHUNK_CANDIDATES: usize = 8;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FreeSpan {
    len: usize,
    dirty: usize,
    freed_at: u64,
}

/// A span taken out of the heap to be returned to the OS; hand it back with
/// [`SpanHeap::give_back_purged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PurgeSpan {
    pub(crate) start: usize,
    pub(crate) len: usize,
    freed_at: u64,
}

/// Freshly freed spans kept out of the maps.
const RECENT: usize = 4;

#[derive(Default)]
pub(crate) struct SpanHeap {
    by_start: BTreeMap<usize, FreeSpan>,
    by_size: BTreeSet<(usize, usize)>,
    recent: [(usize, FreeSpan); RECENT],
    recent_len: usize,
    free_bytes: usize,
    dirty_bytes: usize,
}

impl SpanHeap {
    pub(crate) const fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    pub(crate) const fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    #[cfg(test)]
    pub(crate) fn largest(&mut self) -> usize {
        self.flush_recent();
        self.by_size.last().map_or(0, |&(len, _)| len)
    }

    fn insert(&mut self, start: usize, span: FreeSpan) {
        self.by_start.insert(start, span);
        self.by_size.insert((span.len, start));
        self.free_bytes += span.len;
        self.dirty_bytes += span.dirty;
    }

    fn remove(&mut self, start: usize) -> Option<FreeSpan> {
        let span = self.by_start.remove(&start)?;
        self.by_size.remove(&(span.len, start));
        self.free_bytes -= span.len;
        self.dirty_bytes -= span.dirty;
        Some(span)
    }

    /// Takes the smallest free span of at least `len` bytes, splitting off the rest. With
    /// `in_chunk` (`len <= CHUNK_SIZE`) the taken range does not cross a chunk boundary;
    /// only the `IN_CHUNK_CANDIDATES` smallest fitting spans are tried.
    pub(crate) fn take(&mut self, len: usize, in_chunk: bool) -> Option<usize> {
        if let Some(i) = self.recent[..self.recent_len]
            .iter()
            .position(|&(start, s)| s.len == len && (!in_chunk || placement(start, s.len, len) == Some(start)))
        {
            let (start, span) = self.recent[i];
            self.recent_len -= 1;
            self.recent[i] = self.recent[self.recent_len];
            self.free_bytes -= span.len;
            self.dirty_bytes -= span.dirty;
            return Some(start);
        }
        self.flush_recent();
        let (start, at) = if in_chunk {
            self.by_size
                .range((len, 0)..)
                .take(IN_CHUNK_CANDIDATES)
                .find_map(|&(span_len, start)| placement(start, span_len, len).map(|at| (start, at)))?
        } else {
            let &(_, start) = self.by_size.range((len, 0)..).next()?;
            (start, start)
        };
        let span = self.remove(start)?;
        if at > start {
            let head = at - start;
            self.insert(start, FreeSpan { len: head, dirty: span.dirty.min(head), freed_at: span.freed_at });
        }
        let rest = span.len - (at - start) - len;
        if rest > 0 {
            self.insert(at + len, FreeSpan { len: rest, dirty: span.dirty.min(rest), freed_at: span.freed_at });
        }
        Some(at)
    }

    /// The free span that ends exactly at `end`: its start and length.
    pub(crate) fn span_ending_at(&mut self, end: usize) -> Option<(usize, usize)> {
        self.flush_recent();
        let (&start, span) = self.by_start.range(..end).next_back()?;
        (start + span.len == end).then_some((start, span.len))
    }

    /// Takes `[start, start + len)` if it is free (all of it inside one free span).
    pub(crate) fn take_at(&mut self, start: usize, len: usize) -> bool {
        self.flush_recent();
        let Some((&span_start, &span)) = self.by_start.range(..=start).next_back() else {
            return false;
        };
        if span_start + span.len < start + len {
            return false;
        }
        self.remove(span_start);
        if start > span_start {
            let head = start - span_start;
            self.insert(span_start, FreeSpan { len: head, dirty: span.dirty.min(head), freed_at: span.freed_at });
        }
        let rest = span_start + span.len - (start + len);
        if rest > 0 {
            self.insert(start + len, FreeSpan { len: rest, dirty: span.dirty.min(rest), freed_at: span.freed_at });
        }
        true
    }

    /// Returns `[start, start + len)` to the heap, merging it with free neighbours.
    pub(crate) fn give(&mut self, start: usize, len: usize, now: u64) {
        let span = FreeSpan { len, dirty: len, freed_at: now };
        if self.recent_len < RECENT {
            self.recent[self.recent_len] = (start, span);
            self.recent_len += 1;
            self.free_bytes += len;
            self.dirty_bytes += len;
        } else {
            self.merge_in(start, span);
        }
    }

    /// Merges the recent spans into the maps.
    fn flush_recent(&mut self) {
        while self.recent_len > 0 {
            self.recent_len -= 1;
            let (start, span) = self.recent[self.recent_len];
            self.free_bytes -= span.len;
            self.dirty_bytes -= span.dirty;
            self.merge_in(start, span);
        }
    }

    /// Returns a span that was never written (its pages are not resident).
    pub(crate) fn give_clean(&mut self, start: usize, len: usize, now: u64) {
        self.flush_recent();
        self.merge_in(start, FreeSpan { len, dirty: 0, freed_at: now });
    }

    /// Returns a span whose pages were given back to the OS.
    pub(crate) fn give_back_purged(&mut self, span: PurgeSpan) {
        self.merge_in(span.start, FreeSpan { len: span.len, dirty: 0, freed_at: span.freed_at });
    }

    fn merge_in(&mut self, mut start: usize, mut span: FreeSpan) {
        if let Some((&prev_start, &prev)) = self.by_start.range(..start).next_back()
            && prev_start + prev.len == start
        {
            self.remove(prev_start);
            start = prev_start;
            span = FreeSpan {
                len: prev.len + span.len,
                dirty: prev.dirty + span.dirty,
                freed_at: prev.freed_at.max(span.freed_at),
            };
        }
        if let Some(next) = self.remove(start + span.len) {
            span = FreeSpan {
                len: span.len + next.len,
                dirty: span.dirty + next.dirty,
                freed_at: span.freed_at.max(next.freed_at),
            };
        }
        self.insert(start, span);
    }

    /// Takes out the spans to return to the OS: every dirty span freed before
    /// `idle_before`, then the least recently freed dirty spans until at most
    /// `retain` dirty bytes remain.
    pub(crate) fn take_purge(&mut self, retain: usize, idle_before: u64) -> Vec<PurgeSpan> {
        self.flush_recent();
        let mut dirty: Vec<(u64, usize)> =
            self.by_start.iter().filter(|(_, s)| s.dirty > 0).map(|(&start, s)| (s.freed_at, start)).collect();
        dirty.sort_unstable();
        let mut out = Vec::new();
        for (freed_at, start) in dirty {
            if freed_at >= idle_before && self.dirty_bytes <= retain {
                break;
            }
            if let Some(span) = self.remove(start) {
                out.push(PurgeSpan { start, len: span.len, freed_at: span.freed_at });
            }
        }
        out
    }
}

impl SpanHeap {
    /// Checks the invariants above.
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let (mut free, mut dirty, mut prev_end) = (0, 0, None::<usize>);
        for (&start, span) in &self.by_start {
            if span.len == 0 || span.dirty > span.len {
                return Err(format!("span {start:#x}: len {} dirty {}", span.len, span.dirty));
            }
            if prev_end.is_some_and(|end| end >= start) {
                return Err(format!("span {start:#x} overlaps or touches its predecessor"));
            }
            if !self.by_size.contains(&(span.len, start)) {
                return Err(format!("span {start:#x} missing from the size index"));
            }
            prev_end = Some(start + span.len);
            free += span.len;
            dirty += span.dirty;
        }
        for &(start, span) in &self.recent[..self.recent_len] {
            if self.by_start.range(..start + span.len).next_back().is_some_and(|(&s, o)| s + o.len > start) {
                return Err(format!("recent span {start:#x} overlaps a mapped span"));
            }
            free += span.len;
            dirty += span.dirty;
        }
        if self.by_size.len() != self.by_start.len() || (free, dirty) != (self.free_bytes, self.dirty_bytes) {
            return Err(format!(
                "span totals: counted ({free}, {dirty}), recorded ({}, {})",
                self.free_bytes, self.dirty_bytes
            ));
        }
        Ok(())
    }
}

/// Where a range of `len` bytes that does not cross a chunk boundary starts inside the
/// free span `[start, start + span_len)`, if it fits.
fn placement(start: usize, span_len: usize, len: usize) -> Option<usize> {
    let at = if start % CHUNK_SIZE + len > CHUNK_SIZE { round_up(start, CHUNK_SIZE) } else { start };
    (at + len <= start + span_len).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = 4096;

    #[test]
    fn best_fit_splits_and_keeps_the_rest() {
        let mut heap = SpanHeap::default();
        heap.give(0, 4 * P, 1);
        heap.give(10 * P, 2 * P, 1);
        assert_eq!(heap.take(2 * P, false), Some(10 * P));
        assert_eq!(heap.take(P, false), Some(0));
        assert_eq!(heap.free_bytes(), 3 * P);
        assert_eq!(heap.take(4 * P, false), None);
        assert_eq!(heap.take(3 * P, false), Some(P));
        assert_eq!(heap.free_bytes(), 0);
    }

    #[test]
    fn an_exact_size_request_takes_a_recent_span_back() {
        let mut heap = SpanHeap::default();
        heap.give(8 * P, 5 * P, 1);
        assert_eq!((heap.free_bytes(), heap.dirty_bytes()), (5 * P, 5 * P));
        assert_eq!(heap.take(5 * P, false), Some(8 * P));
        assert_eq!((heap.free_bytes(), heap.dirty_bytes()), (0, 0));
        // More frees than recent slots: the rest are merged into the maps.
        for i in 0..6 {
            heap.give(i * 2 * P, P, 1);
        }
        assert_eq!(heap.free_bytes(), 6 * P);
        assert_eq!(heap.take(P, false).map(|s| s % (2 * P)), Some(0));
        assert_eq!(heap.free_bytes(), 5 * P);
    }

    #[test]
    fn in_chunk_takes_never_cross_a_chunk_boundary() {
        let mut heap = SpanHeap::default();
        // A span straddling the first chunk boundary: 2 pages before it, 6 after.
        let start = CHUNK_SIZE - 2 * P;
        heap.give(start, 8 * P, 1);
        assert_eq!(heap.take(4 * P, true), Some(CHUNK_SIZE));
        heap.check_invariants().unwrap();
        assert_eq!(heap.free_bytes(), 4 * P);
        // The two pages before the boundary still serve a request that fits them.
        assert_eq!(heap.take(2 * P, true), Some(start));
        assert_eq!(heap.take(2 * P, true), Some(CHUNK_SIZE + 4 * P));
        assert_eq!(heap.free_bytes(), 0);
    }

    #[test]
    fn take_at_claims_a_range_inside_a_free_span() {
        let mut heap = SpanHeap::default();
        heap.give(10 * P, 6 * P, 1);
        assert!(!heap.take_at(9 * P, 2 * P));
        assert!(!heap.take_at(15 * P, 2 * P));
        assert!(heap.take_at(12 * P, 2 * P));
        heap.check_invariants().unwrap();
        assert_eq!(heap.free_bytes(), 4 * P);
        assert_eq!(heap.take(2 * P, false), Some(10 * P));
        assert_eq!(heap.take(2 * P, false), Some(14 * P));
    }

    #[test]
    fn neighbours_merge_both_ways() {
        let mut heap = SpanHeap::default();
        heap.give(0, P, 1);
        heap.give(2 * P, P, 1);
        heap.give(P, P, 2);
        assert_eq!(heap.largest(), 3 * P);
        assert_eq!(heap.take(3 * P, false), Some(0));
    }

    #[test]
    fn purge_takes_idle_spans_then_oldest_above_the_retained_amount() {
        let mut heap = SpanHeap::default();
        heap.give(0, P, 1);
        heap.give(4 * P, 2 * P, 5);
        heap.give(8 * P, 3 * P, 9);
        assert_eq!(heap.dirty_bytes(), 6 * P);
        // Nothing idle before epoch 1; keep at most 3 pages dirty: the two oldest go.
        let purge = heap.take_purge(3 * P, 1);
        assert_eq!(purge.iter().map(|s| s.start).collect::<Vec<_>>(), vec![0, 4 * P]);
        assert_eq!(heap.dirty_bytes(), 3 * P);
        for span in purge {
            heap.give_back_purged(span);
        }
        assert_eq!(heap.dirty_bytes(), 3 * P);
        assert_eq!(heap.free_bytes(), 6 * P);
        // Everything freed before epoch 10 is idle; only the still-dirty span is taken.
        let idle = heap.take_purge(usize::MAX, 10);
        assert_eq!(idle.iter().map(|s| s.start).collect::<Vec<_>>(), vec![8 * P]);
        assert_eq!(heap.dirty_bytes(), 0);
    }
}
