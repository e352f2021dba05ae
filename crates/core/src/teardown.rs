//! Reclaiming what a thread left behind: when the thread owning a cache goes away (a
//! Node worker's env teardown), every block it still holds is freed.

use std::ptr::NonNull;

use crate::allocator::Allocator;
use crate::free::Expect;
use crate::meta::{self, LARGE_CLASS, LIVE};
use crate::table::MAX_SHIFT;
use crate::thread_cache::ThreadCache;

impl Allocator {
    /// Frees every block still allocated that `cache` handed out (small and large), as
    /// when the thread owning the cache goes away with live allocations. Returns the
    /// number of blocks and the requested bytes freed. The hand-offs `cache` sent that are
    /// still in flight are not freed (a receiver may still claim them) but become orphaned
    /// (see [`Allocator::orphaned_hand_offs`]).
    ///
    /// # Safety
    /// No thread may use any of those blocks any more (each counts as freed here).
    pub unsafe fn free_all_owned_by(&self, cache: &ThreadCache) -> (usize, usize) {
        self.orphan_hand_offs_of(cache.id);
        let inner = &*self.inner;
        let mut blocks = Vec::new();
        for central in &*inner.central {
            central.pool.lock().live_owned_by(&inner.arena, cache.id, &mut blocks);
        }
        let mut large = Vec::new();
        {
            let pages = inner.pages.lock();
            for start in pages.large.starts() {
                let owned = inner
                    .arena
                    .meta_of(start, MAX_SHIFT)
                    .is_some_and(|m| m.tag() == meta::tag(LIVE, LARGE_CLASS, 0) && m.owner() == cache.id);
                if owned {
                    large.push((start, pages.large.get(start).map_or(0, |r| r.requested)));
                }
            }
        }
        let small =
            blocks.into_iter().map(|addr| (addr, inner.block_at(addr).map_or(0, |(_, m)| m.requested() as usize)));
        let (mut freed, mut bytes) = (0, 0);
        for (addr, requested) in small.chain(large) {
            if let Some(ptr) = NonNull::new(addr as *mut u8)
                // SAFETY: the block was live and owned by `cache` a moment ago; the caller
                // guarantees nobody uses it any more. The free re-checks it is still live.
                && unsafe { self.free_uncached(ptr, Expect::Nothing, false) }.is_ok()
            {
                freed += 1;
                bytes += requested;
            }
        }
        (freed, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AllocatorConfig, FreeError};

    #[test]
    fn free_all_owned_by_frees_only_that_caches_live_blocks() {
        let allocator =
            Allocator::new(AllocatorConfig { max_bytes: Some(64 << 20), ..AllocatorConfig::default() }).unwrap();
        let (mut mine, mut other) = (ThreadCache::new(), ThreadCache::new());
        let mut kept = Vec::new();
        for size in [1, 64, 5000, 70_000, 3 << 20, 20 << 20] {
            kept.push(allocator.allocate_with_cache(&mut mine, size).unwrap());
            allocator.allocate_with_cache(&mut other, size).unwrap();
        }
        // One of mine already freed: not freed again.
        // SAFETY: `kept[0]` is live and unused.
        unsafe { allocator.deallocate_with_cache(&mut mine, kept[0]).unwrap() };
        let before = allocator.stats();
        // SAFETY: nothing uses `mine`'s blocks any more.
        let (blocks, bytes) = unsafe { allocator.free_all_owned_by(&mine) };
        assert_eq!(blocks, 5);
        assert_eq!(bytes, 64 + 5000 + 70_000 + (3 << 20) + (20 << 20));
        let after = allocator.stats();
        assert_eq!(after.live_allocations, before.live_allocations - 5);
        // SAFETY: `kept[1]` was freed above; a rejected free touches nothing.
        let again = unsafe { allocator.deallocate_with_cache(&mut mine, kept[1]) };
        assert_eq!(again, Err(FreeError::DoubleFree { addr: kept[1].as_ptr() as usize }));
    }
}
