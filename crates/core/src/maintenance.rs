//! The slow paths behind the thread caches: moving blocks between a cache and the central
//! pool, reclaiming fully free slabs, and the periodic maintenance (driven by the
//! slow-path traffic of every thread) that returns idle memory to the OS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::allocator::{CentralClass, Inner};
use crate::arena::CarveError;
use crate::central::{Chain, ClassPool, FreedSlab};
use crate::sync::MutexGuard;

/// Slow-path operations between two maintenance passes.
const MAINTAIN_EVERY: u64 = 256;
/// Slow-path operations between two clock reads (divides `MAINTAIN_EVERY`).
const CLOCK_EVERY: u64 = 16;

/// The allocator's sense of time: a microsecond clock read coarsely (reading it costs
/// ~30 ns here, as much as a whole large alloc+free pair), and the slow-path operation
/// count that paces maintenance.
pub(crate) struct Clock {
    start: Instant,
    /// Slow-path operations so far.
    epoch: AtomicU64,
    /// The clock as last read (every `CLOCK_EVERY` slow-path operations).
    coarse_now: AtomicU64,
    /// Time of the previous maintenance pass.
    last_maintenance: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            epoch: AtomicU64::new(0),
            coarse_now: AtomicU64::new(0),
            last_maintenance: AtomicU64::new(0),
        }
    }

    /// Microseconds since the allocator was built.
    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The time as last read.
    pub(crate) fn coarse(&self) -> u64 {
        self.coarse_now.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// A seed never returned before by this allocator.
    pub(crate) fn next_seed(&self) -> u64 {
        self.seeds.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a slow-path operation and returns the coarse time in microseconds: the
    /// clock is read every `CLOCK_EVERY` operations, and maintenance runs every
    /// `MAINTAIN_EVERY`.
    pub(crate) fn tick(&self) -> u64 {
        let operations = self.clock.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        if !operations.is_multiple_of(CLOCK_EVERY) {
            return self.clock.coarse();
        }
        let now = self.clock.now_us();
        self.clock.coarse_now.store(now, Ordering::Relaxed);
        if operations.is_multiple_of(MAINTAIN_EVERY) {
            self.maintain(now);
        }
        now
    }

    /// Runs `f` on class `c`'s pool under its lock, after absorbing its inbox, and keeps
    /// `reclaimable` (empty slabs over all classes) in step.
    fn with_pool<R>(&self, c: usize, now: u64, f: impl FnOnce(&mut ClassPool) -> R) -> R {
        let central = &self.central[c];
        self.with_locked_pool(central, central.pool.lock(), now, f)
    }

    /// As [`Inner::with_pool`], with the pool's lock already taken.
    fn with_locked_pool<R>(
        &self,
        central: &CentralClass,
        mut pool: MutexGuard<'_, ClassPool>,
        now: u64,
        f: impl FnOnce(&mut ClassPool) -> R,
    ) -> R {
        let before = pool.empty_slabs();
        let rejected = pool.drain_inbox(&self.arena, &central.inbox, now);
        let result = f(&mut pool);
        let after = pool.empty_slabs();
        drop(pool);
        if rejected > 0 {
            self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
        }
        if after > before {
            self.reclaimable.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.reclaimable.fetch_sub(before - after, Ordering::Relaxed);
        }
        result
    }

    /// Takes up to `max` free blocks of class `c` from the central pool, adding a slab if
    /// the class has none free, and reclaiming empty slabs of every class (once) if the
    /// arena is at its cap. An empty chain means out of memory at the cap; `Err(errno)`
    /// the OS refused more memory.
    pub(crate) fn take_blocks(&self, c: usize, max: u32, now: u64) -> Result<Chain, i32> {
        let geo = self.geo[c];
        for attempt in 0..2 {
            let taken = self.with_pool(c, now, |pool| {
                let chain = pool.take(&self.arena, max, now);
                if chain.len > 0 {
                    return Ok(chain);
                }
                let start = self.take_span(geo.slab_bytes, geo.in_chunk)?;
                pool.add_slab(&self.arena, start, self.next_seed());
                Ok(pool.take(&self.arena, max, now))
            });
            match taken {
                Ok(chain) => return Ok(chain),
                Err(CarveError::Refused(errno)) => return Err(errno),
                Err(CarveError::Full) if attempt == 0 && self.reclaim_slabs(now) => {}
                Err(CarveError::Full) => break,
            }
        }
        Ok(Chain::EMPTY)
    }

    /// Returns a chain of free blocks of class `c` (owned by the caller) to the central
    /// pool; slabs that became fully free beyond one spare go back to the span heap.
    pub(crate) fn return_blocks(&self, c: usize, chain: Chain, now: u64) {
        let mut freed = Vec::new();
        self.with_pool(c, now, |pool| {
            let rejected = pool.put_chain(&self.arena, chain, now);
            self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
            pool.release_empty(1, 0, &mut freed);
        });
        self.give_spans(&freed, now);
    }

    /// Gives every fully free slab of every class back to the span heap. Returns whether
    /// there was anything to look at: the scan runs only when some class has an empty slab
    /// or a non-empty inbox, so a miss at the cap stays cheap.
    pub(crate) fn reclaim_slabs(&self, now: u64) -> bool {
        let busy = |c: &CentralClass| c.inbox.len() > 0;
        if self.reclaimable.load(Ordering::Relaxed) == 0 && !self.central.iter().any(busy) {
            return false;
        }
        let mut freed: Vec<FreedSlab> = Vec::new();
        for c in 0..self.central.len() {
            self.with_pool(c, now, |pool| pool.release_empty(0, u64::MAX, &mut freed));
        }
        let any = !freed.is_empty();
        self.give_spans(&freed, now);
        any
    }

    /// Periodic maintenance, driven by slow-path traffic of any class: classes idle for
    /// `idle_release_ms` give back their spare empty slab, and free spans idle that long
    /// (or beyond the retained amount) are released to the OS.
    fn maintain(&self, now: u64) {
        let idle_before = now.saturating_sub(self.config.idle_release_ms.saturating_mul(1000));
        // A class used since the previous pass is not idle, however short the idle time.
        let active_since = idle_before.min(self.clock.last_maintenance.swap(now, Ordering::Relaxed));
        let mut freed = Vec::new();
        for central in &*self.central {
            // Never wait here: a busy class is not idle.
            let Some(pool) = central.pool.try_lock() else {
                continue;
            };
            // Remote frees count too (the inbox is absorbed first): an idle class may have
            // had all its blocks come back through the inbox.
            self.with_locked_pool(central, pool, now, |pool| {
                // An active class keeps one spare empty slab (whatever its age); an idle
                // class gives every empty slab back.
                let keep = usize::from(pool.last_used() >= active_since);
                pool.release_empty(keep, 0, &mut freed);
            });
        }
        self.give_spans(&freed, now);
        self.purge(self.config.retain_bytes, idle_before);
    }
}
