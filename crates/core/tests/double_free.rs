//! Double frees are detected in every build (orthotope: debug only), wherever the first
//! free left the block; never-issued blocks are rejected; a stale generation after the
//! address was handed out again is rejected too (ABA), and the new owner keeps its block.

#![cfg(test)]

mod common;

use std::collections::HashSet;
use std::ptr::NonNull;

use common::MIB;
use tensor_arena_core::{Allocator, FreeError, ThreadCache};

fn is_double_free(result: Result<(), FreeError>, ptr: NonNull<u8>) -> bool {
    result == Err(FreeError::DoubleFree { addr: ptr.as_ptr() as usize })
}

/// Allocates `n` blocks of `size` and asserts they are pairwise distinct and distinct
/// from `others`; frees them again.
fn assert_distinct_handouts(a: &Allocator, cache: &mut ThreadCache, size: usize, n: usize, others: &[NonNull<u8>]) {
    let mut seen: HashSet<usize> = others.iter().map(|p| p.as_ptr() as usize).collect();
    let ptrs: Vec<_> = (0..n).map(|_| common::alloc(a, cache, size)).collect();
    for p in &ptrs {
        assert!(seen.insert(p.as_ptr() as usize), "block {p:p} handed out twice");
    }
    for p in ptrs {
        // SAFETY: each pointer is live and freed once.
        unsafe { common::free(a, cache, p) };
    }
}

#[test]
fn second_free_of_a_block_in_the_hot_list_is_a_double_free() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 32);
    let before = a.stats().rejected_frees_total;
    // SAFETY: the first free is valid; the second is the double free under test.
    unsafe {
        common::free(&a, &mut cache, p);
        assert!(is_double_free(a.deallocate_with_cache(&mut cache, p), p));
        assert!(is_double_free(a.deallocate_with_cache(&mut cache, p), p));
    }
    assert_eq!(a.stats().rejected_frees_total, before + 2);
    assert_eq!(a.stats().live_allocations, 0);
    // The block went to the cache once: it comes back once.
    assert_eq!(common::alloc(&a, &mut cache, 32), p);
    assert_ne!(common::alloc(&a, &mut cache, 32), p);
}

#[test]
fn double_free_wins_over_a_size_mismatch() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 100);
    // SAFETY: the first free is valid; the second is the double free under test.
    unsafe {
        a.deallocate_with_size(&mut cache, p, 100).unwrap();
        assert!(is_double_free(a.deallocate_with_size(&mut cache, p, 7), p));
        assert!(is_double_free(a.deallocate_with_size(&mut cache, p, 100), p));
    }
}

#[test]
fn second_free_after_the_block_was_drained_to_central_is_a_double_free() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 5000);
    // SAFETY: the first free is valid; the later ones are the double frees under test.
    unsafe {
        common::free(&a, &mut cache, p);
        a.drain_thread_cache(&mut cache);
        assert_eq!(cache.stats().blocks, 0);
        assert!(is_double_free(a.deallocate_with_cache(&mut cache, p), p));
        let mut other = ThreadCache::new();
        assert!(is_double_free(a.deallocate_with_cache(&mut other, p), p));
        assert!(is_double_free(a.deallocate_uncached(p, None), p));
    }
    assert_eq!(a.stats().inbox_blocks, 0, "a rejected free must not reach an inbox");
    assert_distinct_handouts(&a, &mut cache, 5000, 100, &[]);
    a.check_invariants().unwrap();
}

#[test]
fn second_free_after_a_remote_free_through_the_inbox_is_a_double_free() {
    let a = common::allocator(64 * MIB);
    let mut owner = ThreadCache::new();
    let mut remote = ThreadCache::new();
    let p = common::alloc(&a, &mut owner, 64);
    // SAFETY: the first free is valid; the later ones are the double frees under test.
    unsafe {
        common::free(&a, &mut remote, p);
        assert_eq!(a.stats().inbox_blocks, 1);
        assert!(is_double_free(a.deallocate_with_cache(&mut remote, p), p));
        assert!(is_double_free(a.deallocate_with_cache(&mut owner, p), p));
        assert!(is_double_free(a.deallocate_uncached(p, None), p));
    }
    let stats = a.stats();
    assert_eq!((stats.inbox_blocks, stats.remote_frees_total, stats.rejected_frees_total), (1, 1, 3));
    // The inbox holds the block once: draining it and allocating everything in the class
    // never yields it twice.
    a.drain_thread_cache(&mut owner);
    assert_distinct_handouts(&a, &mut owner, 64, 3000, &[]);
    a.check_invariants().unwrap();
}

#[test]
fn second_free_after_an_uncached_free_is_a_double_free() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let t = a.allocate_tracked(&mut cache, 300).unwrap();
    // SAFETY: the first free is valid; the later ones are the double frees under test.
    unsafe {
        a.deallocate_uncached(t.ptr, Some(t.generation)).unwrap();
        assert!(is_double_free(a.deallocate_uncached(t.ptr, Some(t.generation)), t.ptr));
        assert!(is_double_free(a.deallocate_tracked(&mut cache, t.ptr, t.generation), t.ptr));
    }
    assert_eq!(a.stats().inbox_blocks, 1);
}

#[test]
fn second_free_of_a_large_block_is_a_double_free() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 17 * MIB);
    // SAFETY: the first free is valid; the later ones are the double frees under test.
    unsafe {
        common::free(&a, &mut cache, p);
        assert!(is_double_free(a.deallocate_with_cache(&mut cache, p), p));
        assert!(is_double_free(a.deallocate_with_size(&mut cache, p, 17 * MIB), p));
        assert!(is_double_free(a.deallocate_uncached(p, None), p));
    }
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.frees_total), (0, 1));
    a.check_invariants().unwrap();
}

#[test]
fn never_issued_neighbours_of_a_live_block_are_rejected_and_never_issued_twice() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    let stride = a.block_size(0) as isize;
    assert!(cache.stats().blocks > 0, "the cache holds the rest of the refill");
    // Blocks on both sides: some sit in the cache (initialised, free), some were never
    // initialised (no metadata entry yet), some lie past the slab.
    for k in (-600..=600).filter(|&k| k != 0) {
        let forged = common::offset(p, k * stride);
        if !a.contains(forged.as_ptr()) {
            continue;
        }
        // SAFETY: the forged pointer is in the arena; the free must reject it.
        let result = unsafe { a.deallocate_with_cache(&mut cache, forged) };
        // A never-issued block has no metadata of a hand-out: `ForeignPointer` (no block
        // starts there yet) or `DoubleFree` (a free block in the cache or the slab).
        assert!(
            matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::ForeignPointer { .. })),
            "forged free of block {k} strides away: {result:?}"
        );
    }
    assert_eq!(a.stats().live_allocations, 1);
    assert_distinct_handouts(&a, &mut cache, 64, 5000, &[p]);
    // The real pointer still frees.
    // SAFETY: `p` is live.
    unsafe { common::free(&a, &mut cache, p) };
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn never_issued_block_in_another_cache_is_rejected() {
    // Reference: a forged pointer to the untouched next block is rejected and the real
    // pointer still frees. Here the forged free goes through a second cache too.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut other = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 1000);
    let stride = a.usable_size(1000) as isize;
    for k in [-2, -1, 1, 2] {
        let forged = common::offset(p, k * stride);
        // SAFETY: the forged pointer is in the arena; the free must reject it.
        let result = unsafe { a.deallocate_with_cache(&mut other, forged) };
        assert!(
            matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::ForeignPointer { .. })),
            "{k}: {result:?}"
        );
    }
    assert_eq!(a.stats().inbox_blocks, 0);
    assert_distinct_handouts(&a, &mut cache, 1000, 500, &[p]);
    // SAFETY: `p` is live.
    unsafe { common::free(&a, &mut cache, p) };
    a.check_invariants().unwrap();
}

#[test]
fn stale_generation_after_same_class_reuse_is_rejected_and_the_new_owner_keeps_the_block() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let old = a.allocate_tracked(&mut cache, 48).unwrap();
    // SAFETY: valid free of a live block.
    unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation).unwrap() };
    let new = a.allocate_tracked(&mut cache, 48).unwrap();
    assert_eq!(new.ptr, old.ptr, "the hot block is reused");
    assert_ne!(new.generation, old.generation);
    // SAFETY: the new block is live and 48 bytes long.
    unsafe { common::fill(new.ptr, 48, 0x77) };
    // SAFETY: the stale free must be rejected without touching the block.
    let stale = unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation) };
    assert!(is_double_free(stale, old.ptr));
    // SAFETY: as above.
    let stale = unsafe { a.deallocate_uncached(old.ptr, Some(old.generation)) };
    assert!(is_double_free(stale, old.ptr));
    assert_eq!(a.stats().live_allocations, 1);
    assert_ne!(common::alloc(&a, &mut cache, 48), new.ptr, "still live: not handed out again");
    // SAFETY: the new block is live; freed once with its own generation.
    unsafe {
        assert!(common::check(new.ptr, 48, 0x77));
        a.deallocate_tracked(&mut cache, new.ptr, new.generation).unwrap();
    }
}

#[test]
fn stale_generation_after_reuse_through_another_cache_is_rejected() {
    let a = common::allocator(64 * MIB);
    let mut first = ThreadCache::new();
    let mut second = ThreadCache::new();
    let old = a.allocate_tracked(&mut first, 70_000).unwrap();
    // SAFETY: valid free of a live block.
    unsafe { a.deallocate_tracked(&mut first, old.ptr, old.generation).unwrap() };
    a.drain_thread_cache(&mut first);
    let new = a.allocate_tracked(&mut second, 70_000).unwrap();
    assert_eq!(new.ptr, old.ptr, "the drained block is the one refilled");
    // SAFETY: the stale free must be rejected.
    let stale = unsafe { a.deallocate_tracked(&mut first, old.ptr, old.generation) };
    assert!(is_double_free(stale, old.ptr));
    assert_eq!(a.stats().live_allocations, 1);
    // SAFETY: the new block is live; freed once.
    unsafe { a.deallocate_tracked(&mut first, new.ptr, new.generation).unwrap() };
    assert_eq!(a.stats().live_allocations, 0);
}

#[test]
fn stale_generation_of_a_large_block_is_rejected_after_its_span_is_reissued() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let old = a.allocate_tracked(&mut cache, 20 * MIB).unwrap();
    // SAFETY: valid free of a live block.
    unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation).unwrap() };
    let new = a.allocate_tracked(&mut cache, 18 * MIB).unwrap();
    assert_eq!(new.ptr, old.ptr, "the freed span is reused");
    // SAFETY: the stale free must be rejected.
    let stale = unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation) };
    assert!(is_double_free(stale, old.ptr));
    assert_eq!(a.stats().large_live_allocations, 1);
    // SAFETY: the new block is live; freed once.
    unsafe { a.deallocate_tracked(&mut cache, new.ptr, new.generation).unwrap() };
    assert_eq!(a.stats().large_live_allocations, 0);
}

#[test]
fn stale_generation_of_a_large_block_is_rejected_after_a_small_block_took_its_address() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let old = a.allocate_tracked(&mut cache, 17 * MIB).unwrap();
    // SAFETY: valid free of a live block.
    unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation).unwrap() };
    // A class refilled one block at a time (blocks above 256 KiB) gets a new slab at the
    // freed span's start: its first block's user pointer is the old large pointer.
    let new = a.allocate_tracked(&mut cache, 300_000).unwrap();
    assert_eq!(new.ptr, old.ptr);
    // SAFETY: the stale free must be rejected without freeing the small block.
    let stale = unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation) };
    assert!(is_double_free(stale, old.ptr), "{stale:?}");
    assert_eq!(a.stats().live_allocations, 1);
    // SAFETY: the new block is live; freed once.
    unsafe { a.deallocate_tracked(&mut cache, new.ptr, new.generation).unwrap() };
    a.check_invariants().unwrap();
}

#[test]
fn many_double_frees_never_make_a_block_be_handed_out_twice() {
    let a = common::allocator(64 * MIB);
    let mut caches = [ThreadCache::new(), ThreadCache::new(), ThreadCache::new()];
    let mut rng = common::Rng::new(99);
    for size in [1, 200, 3000, 40_000] {
        let ptrs: Vec<_> = (0..300).map(|_| common::alloc(&a, &mut caches[0], size)).collect();
        for &p in &ptrs {
            let c = rng.below(3);
            // SAFETY: valid first free of a live block.
            unsafe { common::free(&a, &mut caches[c], p) };
        }
        for &p in &ptrs {
            let c = rng.below(3);
            // SAFETY: the second free is the double free under test.
            let result = unsafe { a.deallocate_with_cache(&mut caches[c], p) };
            assert!(is_double_free(result, p), "{result:?}");
            if rng.chance(100) {
                a.drain_thread_cache(&mut caches[c]);
            }
        }
        for cache in &mut caches {
            a.drain_thread_cache(cache);
        }
        let [first, ..] = &mut caches;
        assert_distinct_handouts(&a, first, size, 1200, &[]);
    }
    assert_eq!(a.stats().rejected_frees_total, 4 * 300);
    for cache in &caches {
        cache.check_invariants().unwrap();
    }
    a.check_invariants().unwrap();
}

#[test]
fn reclaim_unreachable_frees_a_live_hand_out_once_and_never_counts_a_stale_one_as_rejected() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    // A never-freed hand-out (small and large): reclaimed, counted as a free.
    for size in [48, 20 * MIB] {
        let t = a.allocate_tracked(&mut cache, size).unwrap();
        let before = a.stats();
        // SAFETY: the hand-out is live and nothing else reaches it.
        assert!(unsafe { a.reclaim_unreachable(t.ptr, t.generation) });
        let after = a.stats();
        assert_eq!(after.live_allocations, before.live_allocations - 1);
        assert_eq!(after.frees_total, before.frees_total + 1);
        assert_eq!(after.rejected_frees_total, 0);
        // SAFETY: already reclaimed: a no-op.
        assert!(!unsafe { a.reclaim_unreachable(t.ptr, t.generation) });
    }
    // Freed explicitly, then handed out again: the late finalizer leaves the new owner alone.
    let old = a.allocate_tracked(&mut cache, 48).unwrap();
    // SAFETY: valid free of a live block.
    unsafe { a.deallocate_tracked(&mut cache, old.ptr, old.generation).unwrap() };
    let new = a.allocate_tracked(&mut cache, 48).unwrap();
    assert_eq!(new.ptr, old.ptr);
    // SAFETY: stale: must change nothing.
    assert!(!unsafe { a.reclaim_unreachable(old.ptr, old.generation) });
    let s = a.stats();
    assert_eq!((s.live_allocations, s.rejected_frees_total), (1, 0), "no rejection counted");
    // SAFETY: the new block is live; freed once.
    unsafe { a.deallocate_tracked(&mut cache, new.ptr, new.generation).unwrap() };
}

#[test]
fn reclaim_unreachable_cached_returns_the_block_to_the_reclaiming_thread_cache() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let t = a.allocate_tracked(&mut cache, 4096).unwrap();
    // SAFETY: the hand-out is live and nothing else reaches it.
    assert!(unsafe { a.reclaim_unreachable_cached(&mut cache, t.ptr, t.generation) });
    assert_eq!(common::alloc(&a, &mut cache, 4096), t.ptr, "reused by this thread at once");
    // SAFETY: stale: changes nothing, counts nothing.
    assert!(!unsafe { a.reclaim_unreachable_cached(&mut cache, t.ptr, t.generation) });
    let s = a.stats();
    assert_eq!((s.live_allocations, s.rejected_frees_total, s.remote_frees_total), (1, 0, 0));
}
