//! The slow paths behind the thread caches: moving blocks between a cache and the central
//! pool, reclaiming fully free slabs, and the periodic maintenance (driven by the
//! slow-path traffic of every thread) that returns idle memory to the OS.

use std::sync::atomic::Ordering;

use crate::allocator::Inner;
use crate::central::{Chain, FreedSlab};
use crate::error::AllocError;

/// Slow-path operations between two maintenance passes.
const MAINTAIN_EVERY: u64 = 256;
/// Slow-path operations between two clock reads (divides `MAINTAIN_EVERY`).
const CLOCK_EVERY: u64 = 16;

impl Inner {
    /// A seed never returned before by this allocator.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seeds.fetch_add(1, Ordering::Relaxed)
    }

    /// Microseconds since the allocator was built (timestamps of free spans and slabs).
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Counts a slow-path operation and returns the coarse time in microseconds: the
    /// clock is read every `CLOCK_EVERY` operations, and maintenance runs every
    /// `MAINTAIN_EVERY`.
    pub(crate) fn tick(&self) -> u64 {
        let operations = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        if !operations.is_multiple_of(CLOCK_EVERY) {
            return self.coarse_now.load(Ordering::Relaxed);
        }
        let now = self.now_us();
        self.coarse_now.store(now, Ordering::Relaxed);
        if operations.is_multiple_of(MAINTAIN_EVERY) {
            self.maintain(now);
        }
        now
    }

    /// Takes up to `max` blocks of class `c` from the central pool, adding a slab if
    /// the class has none free, and reclaiming idle memory of every class if the arena
    /// is full. An empty chain means out of memory.
    pub(crate) fn take_blocks(&self, c: usize, max: u32, now: u64) -> Chain {
        let central = &self.central[c];
        for attempt in 0..2 {
            {
                let mut pool = central.pool.lock();
                let rejected = pool.drain_inbox(&central.inbox, now);
                self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
                let chain = pool.take(max, now);
                if chain.count > 0 {
                    return chain;
                }
                if let Some(start) = self.take_span(self.geo[c].slab_bytes) {
                    pool.add_slab(start, self.next_seed());
                    return pool.take(max, now);
                }
            }
            if attempt == 0 {
                self.reclaim_slabs(now);
            }
        }
        Chain::EMPTY
    }

    /// Returns a chain of blocks of class `c` to the central pool; slabs that became
    /// fully free beyond one spare go back to the span heap.
    ///
    /// # Safety
    /// The chain's blocks must be free and owned by the caller.
    pub(crate) unsafe fn return_blocks(&self, c: usize, chain: Chain, now: u64) {
        let central = &self.central[c];
        let mut freed = Vec::new();
        {
            let mut pool = central.pool.lock();
            let mut rejected = pool.drain_inbox(&central.inbox, now);
            // SAFETY: forwarded contract.
            rejected += unsafe { pool.put_chain(chain, now) };
            self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
            pool.release_empty(1, 0, &mut freed);
        }
        self.give_spans(&freed, now);
    }

    /// Gives every fully free slab of every class back to the span heap.
    pub(crate) fn reclaim_slabs(&self, now: u64) {
        let mut freed: Vec<FreedSlab> = Vec::new();
        for central in &*self.central {
            let mut pool = central.pool.lock();
            let rejected = pool.drain_inbox(&central.inbox, now);
            self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
            pool.release_empty(0, u64::MAX, &mut freed);
        }
        self.give_spans(&freed, now);
    }

    /// Periodic maintenance, driven by slow-path traffic of any class: classes idle for
    /// `idle_release_ms` give back their spare empty slab, and free spans idle that long
    /// (or beyond the retained amount) are released to the OS.
    fn maintain(&self, now: u64) {
        let idle_before = now.saturating_sub(self.config.idle_release_ms.saturating_mul(1000));
        // A class used since the previous pass is not idle, however short the idle time.
        let active_since = idle_before.min(self.last_maintenance.swap(now, Ordering::Relaxed));
        let mut freed = Vec::new();
        for central in &*self.central {
            // Never wait here: a busy class is not idle.
            let Some(mut pool) = central.pool.try_lock() else {
                continue;
            };
            // Remote frees count too: an idle class may have had all its blocks come back
            // through the inbox.
            let rejected = pool.drain_inbox(&central.inbox, now);
            self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
            // An active class keeps one spare empty slab (whatever its age); an idle class
            // gives every empty slab back.
            let keep = usize::from(pool.last_used() >= active_since);
            pool.release_empty(keep, 0, &mut freed);
        }
        self.give_spans(&freed, now);
        self.purge(self.config.retain_bytes, idle_before);
    }

    pub(crate) fn out_of_memory(&self, requested: usize) -> AllocError {
        let uncarved = self.arena.len() - self.arena.carved();
        let free = self.pages.lock().spans.free_bytes();
        AllocError::OutOfMemory { requested, remaining: uncarved + free }
    }
}
