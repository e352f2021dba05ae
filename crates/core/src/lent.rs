//! The lent tier: blocks a layer above the allocator keeps for reuse without calling it.
//!
//! The Node binding recycles freed views' blocks in JavaScript: `free` pushes the block on
//! a per-class stack, the next `view` of the same size pops it, and neither calls in here.
//! Such a block stays allocated in the core (live, owned by the thread cache), but to the
//! user it is free and cached. The layer records what it did in its cache's [`LentTier`],
//! words it writes with plain stores (a JavaScript `Float64Array` over them), and the
//! stats add them in: reading stats changes nothing and needs no flush.
//!
//! Words: whole numbers stored as `f64` bit patterns, written by the cache's thread only,
//! read by any thread (a relaxed load; a word is never torn).
//! - [`LentTier::ALLOCATIONS`] / [`LentTier::ALLOCATED_BYTES`] (counters): hand-outs the
//!   layer served from lent blocks, and their requested bytes.
//! - [`LentTier::FREES`] / [`LentTier::FREED_BYTES`] (counters): frees the layer took in as
//!   lent blocks, minus those of the lent blocks it later freed through the allocator
//!   (which counts such a free itself), so no free counts twice.
//! - [`LentTier::LENT_REQUESTED`] (gauge): requested bytes, as the core recorded them, of
//!   the blocks lent now.
//! - [`LentTier::LENT_BLOCKS`]` + c` (gauge): blocks of class `c` lent now.
//!
//! Invariants, with the layer quiescent (between two of its operations on that thread):
//! - user allocations = core allocations + `ALLOCATIONS`; user frees = core frees + `FREES`
//!   (so `live_allocations` and `live_bytes` are what the user holds)
//! - `Σ_c LENT_BLOCKS[c]` = core-live blocks owned by the cache that no user holds, and
//!   `LENT_REQUESTED` = the sum of their recorded requested sizes
//! - when the cache is retired, its words fold into the allocator's counters as if every
//!   lent block had been freed through the allocator, and are zeroed.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::allocator::Allocator;
use crate::size_class::NUM_CLASSES;
use crate::thread_cache::{CacheShared, Counters, ThreadCache};

/// The words of one cache's lent tier (see the module documentation).
pub struct LentTier {
    words: [AtomicU64; LENT_WORDS],
}

/// Words in a [`LentTier`]: five counters and gauges, then one gauge per class.
pub const LENT_WORDS: usize = LentTier::LENT_BLOCKS + NUM_CLASSES;

impl LentTier {
    /// Hand-outs served from lent blocks (counter).
    pub const ALLOCATIONS: usize = 0;
    /// Frees taken in as lent blocks, net of lent blocks later freed through the allocator (counter).
    pub const FREES: usize = 1;
    /// Requested bytes of [`LentTier::ALLOCATIONS`] (counter).
    pub const ALLOCATED_BYTES: usize = 2;
    /// Requested bytes of [`LentTier::FREES`] (counter).
    pub const FREED_BYTES: usize = 3;
    /// Recorded requested bytes of the blocks lent now (gauge).
    pub const LENT_REQUESTED: usize = 4;
    /// First of the per-class lent block gauges: word `LENT_BLOCKS + c` is class `c`'s.
    pub const LENT_BLOCKS: usize = 5;

    pub(crate) fn new() -> Self {
        Self { words: std::array::from_fn(|_| AtomicU64::new(0f64.to_bits())) }
    }

    /// Word `i` as a whole number (a negative, fractional or non-finite value reads as its
    /// truncation, saturated to `0..=u64::MAX`).
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.words.get(i).map_or(0, |w| f64::from_bits(w.load(Ordering::Relaxed)) as u64)
    }

    /// Lent blocks of class `c`.
    pub(crate) fn lent(&self, c: usize) -> u64 {
        self.get(Self::LENT_BLOCKS + c)
    }

    /// Adds the operation counters into `totals` (allocations, frees, remote frees,
    /// allocated bytes, freed bytes), as the stats read them.
    pub(crate) fn add_to(&self, totals: &mut [u64; 5]) {
        totals[0] = totals[0].wrapping_add(self.get(Self::ALLOCATIONS));
        totals[1] = totals[1].wrapping_add(self.get(Self::FREES));
        totals[3] = totals[3].wrapping_add(self.get(Self::ALLOCATED_BYTES));
        totals[4] = totals[4].wrapping_add(self.get(Self::FREED_BYTES));
    }

    /// Folds the words into `into` as if every lent block had been freed through the
    /// allocator (which will count those frees when it frees them), then zeroes them.
    pub(crate) fn retire_into(&self, into: &Counters) {
        let lent: u64 = (0..NUM_CLASSES).map(|c| self.lent(c)).sum();
        let add = |counter: &AtomicU64, by: u64| counter.fetch_add(by, Ordering::Relaxed);
        add(&into.allocations, self.get(Self::ALLOCATIONS));
        add(&into.frees, self.get(Self::FREES).wrapping_sub(lent));
        add(&into.allocated_bytes, self.get(Self::ALLOCATED_BYTES));
        add(&into.freed_bytes, self.get(Self::FREED_BYTES).wrapping_sub(self.get(Self::LENT_REQUESTED)));
        for word in &self.words {
            word.store(0f64.to_bits(), Ordering::Relaxed);
        }
    }
}

/// A handle that keeps one cache's lent-tier words alive, so a layer above can write
/// them directly (the Node binding exposes them to JavaScript as an external buffer).
#[derive(Clone)]
pub struct LentWords(Arc<CacheShared>);

impl LentWords {
    /// Bytes of the words: [`LENT_WORDS`] × 8.
    pub const BYTES: usize = LENT_WORDS * 8;

    /// The first word: [`LentWords::BYTES`] bytes, 8-aligned, valid while this handle (or
    /// a clone) lives. Write only whole, aligned `f64` values, from the cache's thread.
    #[must_use]
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::from(&self.0.lent.words).cast()
    }
}

impl Allocator {
    /// A handle on `cache`'s lent tier (see [`LentTier`]), binding the cache to this
    /// allocator first so the stats see it: a layer above that keeps freed blocks for reuse
    /// writes there, so the stats count those blocks as cached and its hand-outs and frees
    /// as operations. If the cache is later bound to another allocator, the words fold into
    /// this one's counters and start again from zero.
    #[must_use]
    pub fn lent_words(&self, cache: &mut ThreadCache) -> LentWords {
        if cache.bound_id != self.inner.id {
            self.bind(cache);
        }
        LentWords(Arc::clone(&cache.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AllocatorConfig;

    fn write(words: &LentWords, i: usize, value: f64) {
        // SAFETY: `i < LENT_WORDS`, the words are 8-aligned and alive while `words` is;
        // single-threaded test, as the contract of `as_ptr` asks.
        unsafe { words.as_ptr().cast::<f64>().add(i).write(value) };
    }

    #[test]
    fn stats_count_lent_blocks_as_cached_and_their_operations_as_done() {
        let allocator = Allocator::new(AllocatorConfig::default()).expect("arena");
        let mut cache = ThreadCache::new();
        let a = allocator.allocate_with_cache(&mut cache, 64).expect("block");
        let words = allocator.lent_words(&mut cache);
        // The user freed `a` (lent now), then took it back and freed it again.
        write(&words, LentTier::FREES, 2.0);
        write(&words, LentTier::FREED_BYTES, 128.0);
        write(&words, LentTier::ALLOCATIONS, 1.0);
        write(&words, LentTier::ALLOCATED_BYTES, 64.0);
        write(&words, LentTier::LENT_REQUESTED, 64.0);
        write(&words, LentTier::LENT_BLOCKS, 1.0);
        let s = allocator.stats();
        assert_eq!((s.allocations_total, s.frees_total, s.live_allocations, s.live_bytes), (2, 2, 0, 0));
        assert_eq!(s.classes[0].cached_blocks, 1 + u64::from(cache.len(0)));
        assert_eq!(cache.stats().class_blocks[0], 1 + u64::from(cache.len(0)));

        // The layer gives the block back: the core counts that free, the tier drops it.
        // SAFETY: `a` is live, from this allocator and cache.
        unsafe { allocator.deallocate_with_cache(&mut cache, a) }.expect("free");
        write(&words, LentTier::FREES, 1.0);
        write(&words, LentTier::FREED_BYTES, 64.0);
        write(&words, LentTier::LENT_REQUESTED, 0.0);
        write(&words, LentTier::LENT_BLOCKS, 0.0);
        let s = allocator.stats();
        assert_eq!((s.allocations_total, s.frees_total, s.live_allocations, s.live_bytes), (2, 2, 0, 0));
    }

    #[test]
    fn a_retired_cache_folds_its_lent_blocks_as_freed_once() {
        let allocator = Allocator::new(AllocatorConfig::default()).expect("arena");
        let mut cache = ThreadCache::new();
        let _block = allocator.allocate_with_cache(&mut cache, 100).expect("block");
        let words = allocator.lent_words(&mut cache);
        write(&words, LentTier::FREES, 1.0);
        write(&words, LentTier::FREED_BYTES, 100.0);
        write(&words, LentTier::LENT_REQUESTED, 100.0);
        write(&words, LentTier::LENT_BLOCKS + 1, 1.0);
        // As the binding's teardown does: free every block the cache handed out, then drop it.
        // SAFETY: the block is live and nothing uses it any more.
        unsafe { allocator.free_all_owned_by(&cache) };
        drop(cache);
        let s = allocator.stats();
        assert_eq!((s.allocations_total, s.frees_total, s.live_allocations, s.live_bytes), (1, 1, 0, 0));
        assert_eq!(s.thread_cache_blocks, 0);
        // The handle outlives the cache; its words were zeroed when it retired.
        assert!((0..LENT_WORDS).all(|i| {
            // SAFETY: in bounds, alive through `words`.
            unsafe { words.as_ptr().cast::<f64>().add(i).read() == 0.0 }
        }));
    }
}
