//! Block reuse on one thread: a freed block is the next one handed out for its class
//! (LIFO), classes do not share blocks, and drained blocks come back.

#![cfg(test)]

mod common;

use common::MIB;
use tensor_arena_core::{SizeClass, ThreadCache};

#[test]
fn a_freed_block_is_reused_by_the_next_request_of_its_class() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    for size in [1, 32, 64, 65, 4096, 70_000, 5 * MIB] {
        let p = common::alloc(&a, &mut cache, size);
        // SAFETY: live; freed once (each round).
        unsafe { common::free(&a, &mut cache, p) };
        assert_eq!(common::alloc(&a, &mut cache, size), p, "size {size}");
        // SAFETY: as above.
        unsafe { common::free(&a, &mut cache, p) };
    }
}

#[test]
fn any_size_of_a_class_reuses_the_block() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 1);
    // SAFETY: live; freed once (each round).
    unsafe { common::free(&a, &mut cache, p) };
    assert_eq!(common::alloc(&a, &mut cache, 64), p);
    // SAFETY: as above.
    unsafe { common::free(&a, &mut cache, p) };
    assert_eq!(common::alloc(&a, &mut cache, 33), p);
}

#[test]
fn a_freed_block_is_not_reused_by_another_class() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    let q = common::alloc(&a, &mut cache, 65);
    assert_ne!(q, p);
    assert_eq!(common::alloc(&a, &mut cache, 64), p);
}

#[test]
fn frees_are_reused_last_in_first_out() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let x = common::alloc(&a, &mut cache, 100);
    let y = common::alloc(&a, &mut cache, 100);
    let z = common::alloc(&a, &mut cache, 100);
    // SAFETY: live; freed once.
    unsafe {
        common::free(&a, &mut cache, x);
        common::free(&a, &mut cache, y);
        common::free(&a, &mut cache, z);
    }
    assert_eq!(common::alloc(&a, &mut cache, 100), z);
    assert_eq!(common::alloc(&a, &mut cache, 100), y);
    assert_eq!(common::alloc(&a, &mut cache, 100), x);
}

/// Blocks one slab of the class of `size` holds, found through the API: allocate until
/// the class needs a second slab (exact for classes refilled one block at a time).
fn blocks_per_slab(size: usize) -> usize {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let c = SizeClass::from_request(size).unwrap().index();
    let mut n = 0;
    while a.stats().classes[c].slabs <= 1 {
        let _ = common::alloc(&a, &mut cache, size);
        n += 1;
    }
    n - 1
}

#[test]
fn drained_blocks_come_back_to_the_next_refill() {
    // 20 000 bytes: one block per refill, three per cache, so frees drain one at a time.
    // One slab's worth of blocks comes back exactly; several slabs' worth is served from
    // the same carved memory (fully free slabs beyond one spare go back to the span heap
    // and are cut again, so which blocks of them come back first may differ).
    let per_slab = blocks_per_slab(20_000);
    assert!(per_slab >= 2, "{per_slab} blocks per slab");
    for n in [per_slab, 10.max(2 * per_slab + 2)] {
        let a = common::allocator(64 * MIB);
        let mut cache = ThreadCache::new();
        let carved_before = a.stats().carved_bytes as usize;
        let ptrs: Vec<_> = (0..n).map(|_| common::alloc(&a, &mut cache, 20_000)).collect();
        for &p in &ptrs {
            // SAFETY: live; freed once.
            unsafe { common::free(&a, &mut cache, p) };
        }
        a.drain_thread_cache(&mut cache);
        let carved = a.stats().carved_bytes;
        let again: Vec<_> = (0..n).map(|_| common::alloc(&a, &mut cache, 20_000)).collect();
        assert_eq!(a.stats().carved_bytes, carved, "{n} blocks: served from the drained blocks");
        let mut before: Vec<_> = ptrs.iter().map(|p| p.as_ptr() as usize).collect();
        let mut after: Vec<_> = again.iter().map(|p| p.as_ptr() as usize).collect();
        before.sort_unstable();
        after.sort_unstable();
        after.dedup();
        assert_eq!(after.len(), n);
        if n <= per_slab {
            assert_eq!(before, after);
        } else {
            let first_round = carved_before..carved as usize;
            for &p in &after {
                let offset = a.offset_of(p as *const u8).unwrap();
                assert!(
                    first_round.contains(&offset),
                    "{n} blocks: {offset:#x} outside the drained slabs {first_round:x?}"
                );
            }
        }
        for p in again {
            // SAFETY: live; freed once.
            unsafe { common::free(&a, &mut cache, p) };
        }
        cache.check_invariants().unwrap();
        a.check_invariants().unwrap();
    }
}

#[test]
fn reused_memory_keeps_what_the_new_owner_writes() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut rng = common::Rng::new(4);
    for round in 0..200u64 {
        let size = rng.range(1, 100_000);
        let p = common::alloc(&a, &mut cache, size);
        let tag = common::tag_of(round);
        // SAFETY: `p` is a live block of `size` bytes; freed once.
        unsafe {
            common::fill(p, size, tag);
            let q = common::alloc(&a, &mut cache, size);
            common::fill(q, size, !tag);
            assert!(common::check(p, size, tag), "a neighbour overwrote block {round}");
            common::free(&a, &mut cache, q);
            assert!(common::check(p, size, tag));
            common::free(&a, &mut cache, p);
        }
    }
}
