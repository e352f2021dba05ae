//! Exhaustion and recovery: out-of-memory is reported exactly, and freed memory is
//! reused by the same class, by other classes and by the large path.

#![cfg(test)]

mod common;

use std::ptr::NonNull;

use common::{KIB, MIB};
use tensor_arena_core::{AllocError, Allocator, MAX_SMALL_SIZE, ThreadCache};

fn tiny_arena() -> Allocator {
    common::allocator_with(|c| {
        c.max_bytes = Some(4096);
        c.refill_target_bytes = 4096;
        c.local_cache_target_bytes = 4096;
        c.slab_target_bytes = 4096;
    })
}

/// Allocates `size` until the arena is full; returns the blocks.
fn fill_up(a: &Allocator, cache: &mut ThreadCache, size: usize) -> Vec<NonNull<u8>> {
    let mut ptrs = Vec::new();
    loop {
        match a.allocate_with_cache(cache, size) {
            Ok(p) => ptrs.push(p),
            Err(AllocError::OutOfMemory { requested, .. }) => {
                assert_eq!(requested, size);
                return ptrs;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn free_all(a: &Allocator, cache: &mut ThreadCache, ptrs: Vec<NonNull<u8>>) {
    for p in ptrs {
        // SAFETY: each pointer is live and freed once.
        unsafe { common::free(a, cache, p) };
    }
    a.drain_thread_cache(cache);
}

#[test]
fn a_full_arena_reports_out_of_memory_with_nothing_remaining() {
    // Reference: exactly N blocks fit, the next is OutOfMemory{1, 0}.
    let a = tiny_arena();
    let mut cache = ThreadCache::new();
    let ptrs = fill_up(&a, &mut cache, 1);
    let cap = a.stats().max_bytes as usize;
    assert_eq!(cap, 4096);
    // No header: the blocks fill the whole cap.
    assert_eq!(ptrs.len(), cap / a.block_size(0));
    assert_eq!(a.allocate_with_cache(&mut cache, 1), Err(AllocError::OutOfMemory { requested: 1, remaining: 0, cap }));
    assert_eq!(
        a.allocate_with_cache(&mut cache, 1000),
        Err(AllocError::OutOfMemory { requested: 1000, remaining: 0, cap })
    );
    let stats = a.stats();
    assert_eq!((stats.remaining_bytes, stats.carved_bytes), (0, cap as u64));
    assert_eq!(AllocError::OutOfMemory { requested: 1, remaining: 0, cap }.code(), "ERR_OUT_OF_MEMORY");
    a.check_invariants().unwrap();
}

#[test]
fn a_block_freed_after_exhaustion_is_reused_and_the_others_stay_valid() {
    let a = tiny_arena();
    let mut cache = ThreadCache::new();
    let ptrs = fill_up(&a, &mut cache, 64);
    let victim = ptrs[ptrs.len() / 2];
    // SAFETY: `victim` is live; freed once.
    unsafe { a.deallocate_with_size(&mut cache, victim, 64).unwrap() };
    let again = common::alloc(&a, &mut cache, 64);
    assert_eq!(again, victim);
    assert!(a.allocate_with_cache(&mut cache, 64).is_err());
    for p in ptrs {
        // SAFETY: every block is live again (the victim was re-allocated); freed once.
        unsafe { a.deallocate_with_size(&mut cache, p, 64).unwrap() };
    }
    assert_eq!(a.stats().live_allocations, 0);
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_large_request_in_a_small_arena_is_out_of_memory_with_what_remains() {
    let a = tiny_arena();
    let mut cache = ThreadCache::new();
    assert_eq!(
        a.allocate_with_cache(&mut cache, MAX_SMALL_SIZE + 1),
        Err(AllocError::OutOfMemory { requested: MAX_SMALL_SIZE + 1, remaining: 4096, cap: 4096 })
    );
    let a = common::allocator(16 * MIB);
    assert_eq!(
        a.allocate_with_cache(&mut cache, 16 * MIB + 1),
        Err(AllocError::OutOfMemory { requested: 16 * MIB + 1, remaining: 16 * MIB, cap: 16 * MIB })
    );
    // Without a header the largest class's block is exactly 16 MiB: it fills the cap.
    let p = common::alloc(&a, &mut cache, 16 * MIB);
    assert_eq!(
        a.allocate_with_cache(&mut cache, 1),
        Err(AllocError::OutOfMemory { requested: 1, remaining: 0, cap: 16 * MIB })
    );
    // SAFETY: `p` is live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    a.check_invariants().unwrap();
}

#[test]
fn memory_freed_by_one_class_serves_another_class() {
    let a = common::allocator(32 * MIB);
    let mut cache = ThreadCache::new();
    let first = fill_up(&a, &mut cache, 3000);
    let first_bytes = first.len() * a.usable_size(3000);
    assert!(first_bytes >= 32 * MIB / 100 * 95, "only {first_bytes} bytes of 3000-byte blocks fit");
    free_all(&a, &mut cache, first);
    let second = fill_up(&a, &mut cache, 50_000);
    let second_bytes = second.len() * a.usable_size(50_000);
    assert!(
        second_bytes >= first_bytes / 100 * 95,
        "after freeing {first_bytes} bytes of one class, only {second_bytes} bytes of another fit"
    );
    free_all(&a, &mut cache, second);
    let third = fill_up(&a, &mut cache, 64);
    assert!(third.len() * a.usable_size(64) >= first_bytes / 100 * 95);
    free_all(&a, &mut cache, third);
    assert_eq!(a.stats().live_bytes, 0);
    a.check_invariants().unwrap();
}

#[test]
fn memory_freed_by_small_classes_serves_one_large_block() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut rng = common::Rng::new(11);
    let mut ptrs = Vec::new();
    // Fill the arena with a mix of classes, then free everything.
    loop {
        match a.allocate_with_cache(&mut cache, rng.range(1, 300 * KIB)) {
            Ok(p) => ptrs.push(p),
            Err(AllocError::OutOfMemory { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(a.stats().remaining_bytes < 2 * MIB as u64);
    free_all(&a, &mut cache, ptrs);
    let size = 60 * MIB;
    let p = common::alloc(&a, &mut cache, size);
    // SAFETY: `p` is a live block of `size` bytes; freed once.
    unsafe {
        common::fill(p, size, 9);
        assert!(common::check(p, size, 9));
        common::free(&a, &mut cache, p);
    }
    a.check_invariants().unwrap();
}

#[test]
fn memory_freed_by_large_blocks_serves_small_classes() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let large: Vec<_> = (0..3).map(|_| common::alloc(&a, &mut cache, 20 * MIB)).collect();
    assert!(a.allocate_with_cache(&mut cache, 5 * MIB).is_err());
    free_all(&a, &mut cache, large);
    let small = fill_up(&a, &mut cache, 100_000);
    assert!(small.len() * a.usable_size(100_000) >= 60 * MIB);
    free_all(&a, &mut cache, small);
    a.check_invariants().unwrap();
}

#[test]
fn exhaustion_by_large_blocks_recovers_after_a_free() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut ptrs = fill_up(&a, &mut cache, 17 * MIB);
    assert_eq!(ptrs.len(), 3);
    let freed = ptrs.remove(1);
    // SAFETY: `freed` is live; freed once.
    unsafe { common::free(&a, &mut cache, freed) };
    ptrs.push(common::alloc(&a, &mut cache, 17 * MIB));
    assert!(a.allocate_with_cache(&mut cache, 17 * MIB).is_err());
    free_all(&a, &mut cache, ptrs);
    assert_eq!(a.stats().large_live_allocations, 0);
    a.check_invariants().unwrap();
}
