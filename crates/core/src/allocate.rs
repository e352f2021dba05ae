//! What an allocation does.
//!
//! Small request (1 B ..= 16 MiB), fast path: take the first block of this thread cache's list
//! for the class (a block address; the list is linked through the blocks' out-of-band
//! metadata, found from the address with a shift and an add), then record the hand-out in
//! that metadata (generation + 1, requested size, owner cache, tag `LIVE`). No lock, no
//! atomic read-modify-write. The fast path is inlined into callers and kept short: a
//! block of a later region, an unbound cache, an empty list or a large request is one call
//! away (`allocate_slow`).
//!
//! Slow path (the list is empty, `refill`): take a batch from the class's central pool
//! (which first absorbs its inbox of remote frees, then hands out listed blocks of its
//! most recently used slabs, then never-used blocks); if the pool has none, a new slab
//! from the span heap or the arena top (the arena grows a region if needed); if that fails
//! (the cap), this cache's own free blocks of other classes go back and fully free slabs
//! of every class are reclaimed, once; then `OutOfMemory`.
//!
//! Large request (above 16 MiB): a span of its own, see `pages.rs`.

use std::ptr::NonNull;

use crate::allocator::{Allocation, Allocator};
use crate::error::AllocError;
use crate::meta::{BlockMeta, STATE_STEP};
use crate::size_class::index_for_request;
use crate::thread_cache::{ThreadCache, bump};

/// Records the hand-out of the free block at `addr` (not 0) just taken from `cache` for a
/// request of `size` bytes.
#[inline(always)]
fn hand_out(cache: &ThreadCache, addr: usize, meta: &BlockMeta, size: usize) -> Allocation {
    let generation = meta.generation().wrapping_add(1);
    meta.set_generation(generation);
    meta.set_live_word(size as u32, cache.id);
    // A cached block's tag is `FREE` of its class at its offset: one step up is `LIVE`.
    meta.set_tag(meta.tag() + STATE_STEP);
    let counters = &cache.shared.counters;
    bump(&counters.allocations, 1);
    bump(&counters.allocated_bytes, size as u64);
    // Cache lists never hold address 0 (a pop of an empty list returns `None`).
    Allocation { ptr: NonNull::new(addr as *mut u8).unwrap_or(NonNull::dangling()), generation }
}

impl Allocator {
    /// Allocates `size` bytes through `cache`.
    ///
    /// # Errors
    /// [`AllocError::InvalidSize`] for 0; [`AllocError::OutOfMemory`] at the cap;
    /// [`AllocError::SystemOutOfMemory`] when the OS refuses more memory.
    #[inline]
    pub fn allocate_with_cache(&self, cache: &mut ThreadCache, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.allocate_tracked(cache, size).map(|a| a.ptr)
    }

    /// Allocates `size` bytes through `cache` and returns the hand-out's generation too.
    ///
    /// # Errors
    /// As [`Allocator::allocate_with_cache`].
    #[inline]
    pub fn allocate_tracked(&self, cache: &mut ThreadCache, size: usize) -> Result<Allocation, AllocError> {
        // The fast path: a small request, a bound cache, a cached block in the first region.
        // Everything else is one call away, so the inlined code stays short.
        let inner = &*self.inner;
        if let Some(c) = index_for_request(size)
            && cache.bound_id == inner.id
            && let Some((addr, meta)) = cache.pop_first(c, &inner.tables[c])
        {
            return Ok(hand_out(cache, addr, meta, size));
        }
        self.allocate_slow(cache, size)
    }

    /// Everything the fast path does not cover: large requests, binding, blocks of later
    /// regions, refills.
    #[cold]
    #[inline(never)]
    fn allocate_slow(&self, cache: &mut ThreadCache, size: usize) -> Result<Allocation, AllocError> {
        match index_for_request(size) {
            Some(c) => self.allocate_small_slow(cache, c, size),
            None => self.allocate_large(cache, size),
        }
    }

    /// [`Allocator::allocate_slow`] for a request of class `c` (kept apart so the large
    /// path, a hot path of its own, pays for none of it).
    #[inline(never)]
    fn allocate_small_slow(&self, cache: &mut ThreadCache, c: usize, size: usize) -> Result<Allocation, AllocError> {
        if cache.bound_id != self.inner.id {
            self.bind(cache);
        }
        let (addr, meta) = match cache.pop(c, &self.inner.arena, &self.inner.tables[c]) {
            Some(block) => block,
            None => self.refill(cache, c, size)?,
        };
        Ok(hand_out(cache, addr, meta, size))
    }

    /// Fills `cache`'s empty list of class `c` from the central pool and takes one block.
    #[cold]
    #[inline(never)]
    fn refill(&self, cache: &mut ThreadCache, c: usize, size: usize) -> Result<(usize, &BlockMeta), AllocError> {
        let inner = &*self.inner;
        let now = inner.tick();
        let want = inner.geo[c].refill;
        let mut taken = inner.take_blocks(c, want, now);
        if taken.is_ok_and(|chain| chain.len == 0) && self.give_back_cached(cache) {
            // This thread's own cache held free blocks of other classes: they are back in
            // the central pool (and their empty slabs in the span heap) now.
            taken = inner.take_blocks(c, want, now);
        }
        cache.set_list(c, taken.map_err(|errno| AllocError::SystemOutOfMemory { requested: size, errno })?);
        cache.pop(c, &inner.arena, &inner.tables[c]).ok_or_else(|| inner.out_of_memory(size))
    }

    #[cold]
    #[inline(never)]
    fn allocate_large(&self, cache: &mut ThreadCache, size: usize) -> Result<Allocation, AllocError> {
        match self.inner.allocate_large(cache.id, size) {
            Err(AllocError::OutOfMemory { .. }) if cache.bound_id == self.inner.id && self.give_back_cached(cache) => {
                self.inner.allocate_large(cache.id, size)
            }
            result => result,
        }
    }

    /// On out-of-memory: drains `cache` (bound to this allocator) and reclaims the slabs
    /// that became empty. Returns whether the cache held anything.
    pub(crate) fn give_back_cached(&self, cache: &mut ThreadCache) -> bool {
        if cache.bound_id != self.inner.id || cache.is_empty() {
            return false;
        }
        self.drain_all(cache);
        self.inner.reclaim_slabs(self.inner.tick());
        true
    }
}
