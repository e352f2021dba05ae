//! Gathering [`AllocatorStats`] from the central pools, the bound thread caches and the
//! page-level state.

use std::sync::atomic::Ordering;

use crate::allocator::Allocator;
use crate::meta::BLOCK_METADATA_BYTES;
use crate::size_class::NUM_CLASSES;
use crate::stats::AllocatorStats;
use crate::table::table_bytes;

impl Allocator {
    /// A snapshot of the allocator's state. Best effort: subsystems are read one after
    /// the other, each under its own lock, while other threads keep working.
    #[must_use]
    pub fn stats(&self) -> AllocatorStats {
        let inner = &*self.inner;
        let mut s = AllocatorStats::default();
        for (c, central) in inner.central.iter().enumerate() {
            let stride = inner.geo[c].stride as u64;
            let (free, slabs, empty) = {
                let pool = central.pool.lock();
                (pool.free_blocks() as u64, pool.active_slabs() as u64, pool.empty_slabs() as u64)
            };
            let inbox = central.inbox.len() as u64;
            let class = &mut s.classes[c];
            class.payload = inner.geo[c].payload as u64;
            class.block = stride;
            class.metadata_per_block = inner.geo[c].metadata_per_block() as u64;
            class.slabs = slabs;
            s.metadata_bytes += slabs * table_bytes(inner.geo[c].slab_bytes, inner.geo[c].shift) as u64;
            class.central_blocks = free + inbox;
            class.central_bytes = class.central_blocks * stride;
            s.slabs += slabs;
            s.empty_slabs += empty;
            s.inbox_blocks += inbox;
            s.central_blocks += class.central_blocks;
            s.central_bytes += class.central_bytes;
        }

        // Small-block operation totals: retired caches and cacheless frees, plus every
        // bound cache.
        let mut totals = inner.caches.retired.fields().map(|f| f.load(Ordering::Relaxed));
        {
            let caches = inner.caches.bound.lock();
            s.thread_caches = caches.len() as u64;
            for cache in caches.iter() {
                for (total, field) in totals.iter_mut().zip(cache.counters.fields()) {
                    *total = total.wrapping_add(field.load(Ordering::Relaxed));
                }
                cache.lent.add_to(&mut totals);
                for c in 0..NUM_CLASSES {
                    let blocks = u64::from(cache.counts[c].load(Ordering::Relaxed)) + cache.lent.lent(c);
                    s.classes[c].cached_blocks += blocks;
                    s.classes[c].cached_bytes += blocks * inner.geo[c].stride as u64;
                }
            }
        }
        for (c, class) in s.classes.iter_mut().enumerate() {
            s.thread_cache_blocks += class.cached_blocks;
            s.thread_cache_bytes += class.cached_bytes;
            let geo = &inner.geo[c];
            class.carved_bytes = class.slabs * geo.slab_bytes as u64;
            // Caches are read after the central pools: a refill in between can count a
            // block twice, so clamp (best effort, like every figure here).
            let free = class.central_blocks + class.cached_blocks;
            class.live_blocks = (class.slabs * u64::from(geo.capacity)).saturating_sub(free);
            class.live_block_bytes = class.live_blocks * geo.stride as u64;
        }
        let [allocations, frees, remote_frees, allocated_bytes, freed_bytes] = totals;

        let pages = inner.pages.lock();
        let arena = &inner.arena;
        s.max_bytes = arena.cap().unwrap_or(0) as u64;
        s.reserved_bytes = arena.reserved() as u64;
        s.regions = arena.region_count() as u64;
        s.carved_bytes = arena.carved(&pages.top) as u64;
        s.free_span_bytes = pages.spans.free_bytes() as u64;
        s.remaining_bytes = (arena.uncarved(&pages.top) + pages.spans.free_bytes()) as u64;
        s.metadata_bytes += (arena.slab_map_bytes() + pages.large.len() * BLOCK_METADATA_BYTES) as u64;
        s.retained_bytes = pages.spans.dirty_bytes() as u64;
        s.released_bytes_total = pages.released_total;
        s.large_live_allocations = pages.large.len() as u64;
        s.large_live_bytes = pages.large.live_bytes() as u64;
        s.allocations_total = allocations.wrapping_add(pages.large_allocations);
        s.frees_total = frees.wrapping_add(pages.large_frees);
        // Counters are read one by one while other threads work: clamp transient skew.
        s.live_allocations = clamp(allocations.wrapping_sub(frees)) + s.large_live_allocations;
        s.live_bytes = clamp(allocated_bytes.wrapping_sub(freed_bytes)) + s.large_live_bytes;
        s.remote_frees_total = remote_frees;
        s.rejected_frees_total = inner.rejected.load(Ordering::Relaxed);
        let handoffs = inner.handoffs.lock();
        s.in_flight_count = handoffs.len() as u64;
        s.in_flight_bytes = handoffs.bytes() as u64;
        s
    }
}

/// A wrapped difference that went "negative" reads as 0.
const fn clamp(difference: u64) -> u64 {
    if difference > i64::MAX as u64 { 0 } else { difference }
}
