//! The large path (requests above 16 MiB): accounting, reuse of freed spans, best fit,
//! oversized requests that must not leak arena space, size-checked frees, and
//! concurrent large traffic.

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;

use common::MIB;
use tensor_arena_core::{AllocError, FreeError, MAX_SMALL_SIZE, ThreadCache};

#[test]
fn a_large_request_is_live_in_stats_until_freed() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let sizes = [MAX_SMALL_SIZE + 1, 20 * MIB + 3];
    let ptrs: Vec<_> = sizes.iter().map(|&s| common::alloc(&a, &mut cache, s)).collect();
    for (&p, &size) in ptrs.iter().zip(&sizes) {
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { common::fill(p, size, 0xC3) };
    }
    let stats = a.stats();
    assert_eq!(stats.large_live_allocations, 2);
    assert_eq!(stats.large_live_bytes, sizes.iter().sum::<usize>() as u64);
    assert_eq!(stats.live_bytes, stats.large_live_bytes);
    assert_eq!(stats.live_allocations, 2);
    assert_eq!(stats.slabs, 0, "large requests do not create slabs");
    assert_eq!(cache.stats().blocks, 0);
    for (p, size) in ptrs.into_iter().zip(sizes) {
        // SAFETY: `p` is live; freed once.
        unsafe {
            assert!(common::check(p, size, 0xC3));
            a.deallocate_with_size(&mut cache, p, size).unwrap();
        }
    }
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes, stats.live_bytes), (0, 0, 0));
    assert_eq!((stats.allocations_total, stats.frees_total), (2, 2));
    assert_eq!(stats.free_span_bytes, stats.carved_bytes, "both spans are free again");
    a.check_invariants().unwrap();
}

#[test]
fn an_arena_of_exactly_one_large_block_serves_it_again_after_a_free() {
    let size = MAX_SMALL_SIZE + 1;
    let probe = common::allocator(64 * MIB);
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(probe.usable_size(size));
        c.retain_bytes = 0;
    });
    let mut cache = ThreadCache::new();
    assert_eq!(a.stats().max_bytes, probe.usable_size(size) as u64);
    let p = common::alloc(&a, &mut cache, size);
    let cap = probe.usable_size(size);
    assert_eq!(
        a.allocate_with_cache(&mut cache, size),
        Err(AllocError::OutOfMemory { requested: size, remaining: 0, cap })
    );
    // SAFETY: `p` is live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    let again = common::alloc(&a, &mut cache, size);
    assert_eq!(again, p);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, again) };
    a.check_invariants().unwrap();
}

#[test]
fn a_freed_span_serves_smaller_large_requests_at_the_same_pointer() {
    // Reference: one 20,000,000-byte block serves 17,000,000 then 19,000,000.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let first = common::alloc(&a, &mut cache, 20_000_000);
    let carved = a.stats().carved_bytes;
    for size in [17_000_000, 19_000_000, 20_000_000, MAX_SMALL_SIZE + 1] {
        // SAFETY: the previous block is live; freed once.
        unsafe { common::free(&a, &mut cache, first) };
        let again = common::alloc(&a, &mut cache, size);
        assert_eq!(again, first, "size {size}");
        // SAFETY: `again` is a live block of `size` bytes.
        unsafe { common::fill(again, size, 1) };
    }
    assert_eq!(a.stats().carved_bytes, carved, "reuse does not carve");
    // SAFETY: `first` is live.
    unsafe { common::free(&a, &mut cache, first) };
    a.check_invariants().unwrap();
}

#[test]
fn the_smallest_free_span_that_fits_is_used() {
    // Reference: freed 18 M and 20 M blocks: 17.5 M gets the 18 M one.
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let big = common::alloc(&a, &mut cache, 20 * MIB);
    let separator = common::alloc(&a, &mut cache, 17 * MIB);
    let medium = common::alloc(&a, &mut cache, 18 * MIB);
    let top = common::alloc(&a, &mut cache, 17 * MIB);
    // SAFETY: both are live; freed once.
    unsafe {
        common::free(&a, &mut cache, big);
        common::free(&a, &mut cache, medium);
    }
    // The live separators keep the two freed spans from merging.
    assert_eq!(common::alloc(&a, &mut cache, 17 * MIB + MIB / 2), medium);
    assert_eq!(common::alloc(&a, &mut cache, 19 * MIB), big);
    for p in [big, separator, medium, top] {
        // SAFETY: all four are live again; each freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    assert_eq!(a.stats().large_live_allocations, 0);
    a.check_invariants().unwrap();
}

#[test]
fn repeated_large_churn_does_not_grow_the_arena() {
    // Freed spans merge, so once two spans were carved any later request of at most
    // 20 MiB fits in free space: the arena never grows beyond two of the largest spans,
    // capped or not (uncapped, it never adds a region either).
    for capped in [true, false] {
        let a = common::allocator_with(|c| {
            c.max_bytes = capped.then_some(64 * MIB);
            c.region_bytes = 64 * MIB;
        });
        let mut cache = ThreadCache::new();
        let mut rng = common::Rng::new(3);
        let bound = 2 * a.usable_size(20 * MIB) as u64;
        for _ in 0..200 {
            let size = rng.range(MAX_SMALL_SIZE + 1, 20 * MIB);
            let p = common::alloc(&a, &mut cache, size);
            // SAFETY: `p` is live; freed once.
            unsafe { common::free(&a, &mut cache, p) };
            assert!(a.stats().carved_bytes <= bound, "capped {capped}");
        }
        let stats = a.stats();
        assert_eq!(stats.free_span_bytes, stats.carved_bytes);
        assert_eq!((stats.regions, stats.reserved_bytes), (1, 64 * MIB as u64), "capped {capped}");
        a.check_invariants().unwrap();
    }
}

fn assert_request_leaves_the_arena_unchanged(a: &tensor_arena_core::Allocator, size: usize) -> AllocError {
    let mut cache = ThreadCache::new();
    let before = a.stats();
    let err = a.allocate_with_cache(&mut cache, size).unwrap_err();
    let after = a.stats();
    assert_eq!(after.carved_bytes, before.carved_bytes, "size {size}");
    assert_eq!(after.remaining_bytes, before.remaining_bytes, "size {size}");
    assert_eq!(after.free_span_bytes, before.free_span_bytes, "size {size}");
    assert_eq!(after.large_live_allocations, before.large_live_allocations);
    assert_eq!(after.allocations_total, before.allocations_total);
    err
}

#[test]
fn oversized_requests_fail_without_reserving_anything() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let live = common::alloc(&a, &mut cache, 40 * MIB);
    for size in [65 * MIB, 64 * MIB, 1 << 40, isize::MAX as usize, 25 * MIB] {
        let err = assert_request_leaves_the_arena_unchanged(&a, size);
        match err {
            AllocError::OutOfMemory { requested, remaining, cap } => {
                assert_eq!(requested, size);
                assert_eq!(remaining as u64, a.stats().remaining_bytes);
                assert_eq!(cap, 64 * MIB);
            }
            other => panic!("size {size}: {other:?}"),
        }
    }
    for size in [isize::MAX as usize + 1, usize::MAX - 4096, usize::MAX - 63, usize::MAX] {
        let err = assert_request_leaves_the_arena_unchanged(&a, size);
        assert_eq!(err, AllocError::InvalidSize { requested: size });
    }
    // What is left still serves a request that fits.
    let rest = common::alloc(&a, &mut cache, 20 * MIB);
    // SAFETY: both are live; freed once.
    unsafe {
        common::free(&a, &mut cache, rest);
        common::free(&a, &mut cache, live);
    }
    a.check_invariants().unwrap();
}

#[test]
fn a_large_size_mismatch_leaves_the_block_live() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let size = 17 * MIB + 5;
    let p = common::alloc(&a, &mut cache, size);
    let addr = p.as_ptr() as usize;
    // SAFETY: `p` stays live until the correct free.
    unsafe {
        for wrong in [size - 1, size + 1, 17 * MIB, 1] {
            assert_eq!(
                a.deallocate_with_size(&mut cache, p, wrong),
                Err(FreeError::SizeMismatch { addr, provided: wrong, recorded: size })
            );
        }
        assert_eq!(a.stats().large_live_allocations, 1);
        a.deallocate_with_size(&mut cache, p, size).unwrap();
        assert_eq!(a.deallocate_with_size(&mut cache, p, size), Err(FreeError::DoubleFree { addr }));
    }
    assert_eq!(a.stats().large_live_allocations, 0);
}

#[test]
fn a_large_block_frees_without_a_cache_and_through_any_cache() {
    let a = common::allocator(128 * MIB);
    let mut owner = ThreadCache::new();
    let mut other = ThreadCache::new();
    let p = common::alloc(&a, &mut owner, 18 * MIB);
    let q = common::alloc(&a, &mut owner, 18 * MIB);
    // SAFETY: both are live; freed once.
    unsafe {
        a.deallocate_uncached(p, None).unwrap();
        common::free(&a, &mut other, q);
    }
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.inbox_blocks, stats.remote_frees_total), (0, 0, 0));
    a.check_invariants().unwrap();
}

#[test]
fn concurrent_large_allocations_never_overlap() {
    let a = common::allocator(256 * MIB);
    let live: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (a, live) = (&a, &live);
            s.spawn(move || {
                let mut cache = ThreadCache::new();
                let mut rng = common::Rng::new(t);
                for i in 0..60 {
                    let size = rng.range(MAX_SMALL_SIZE + 1, 20 * MIB);
                    let p = match a.allocate_with_cache(&mut cache, size) {
                        Ok(p) => p,
                        Err(AllocError::OutOfMemory { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    let start = p.as_ptr() as usize;
                    {
                        let mut map = live.lock().unwrap();
                        if let Some((&s, &len)) = map.range(..start).next_back() {
                            assert!(s + len <= start, "overlap");
                        }
                        if let Some((&s, _)) = map.range(start..).next() {
                            assert!(start + size <= s, "overlap");
                        }
                        map.insert(start, size);
                    }
                    let tag = common::tag_of(t * 1000 + i);
                    // SAFETY: `p` is a live block of `size` bytes, freed once below.
                    unsafe {
                        common::fill(p, size, tag);
                        std::thread::yield_now();
                        assert!(common::check(p, size, tag));
                        live.lock().unwrap().remove(&start);
                        a.deallocate_with_size(&mut cache, p, size).unwrap();
                    }
                }
            });
        }
    });
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.live_bytes), (0, 0));
    assert_eq!(stats.allocations_total, stats.frees_total);
    a.check_invariants().unwrap();
}

#[test]
fn concurrent_large_churn_never_runs_out_while_the_memory_is_free() {
    // Two threads each hold at most one 100 MiB block; the 256 MiB arena always has room
    // for both (all spans are multiples of one block's span), so no allocation may fail.
    // A free of a span above the retain limit releases it to the OS; while it is out of
    // the span heap for that, the other thread must not see the arena as full.
    let a = common::allocator(256 * MIB);
    let size = 100 * MIB;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut rounds = 0;
    while std::time::Instant::now() < deadline {
        rounds += 1;
        let failures: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2u8)
                .map(|t| {
                    let a = &a;
                    s.spawn(move || {
                        let mut cache = ThreadCache::new();
                        for i in 0..500 {
                            match a.allocate_with_cache(&mut cache, size) {
                                // SAFETY: a live block; written, then freed once.
                                Ok(p) => unsafe {
                                    p.as_ptr().write(t);
                                    common::free(a, &mut cache, p);
                                },
                                Err(e) => return Some(format!("thread {t}, iteration {i}: {e}")),
                            }
                        }
                        None
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().unwrap()).collect()
        });
        assert!(
            failures.is_empty(),
            "round {rounds}: spurious OutOfMemory with at most {} bytes live in a {} byte arena ({} carved): {failures:?}",
            2 * a.usable_size(size),
            a.stats().max_bytes,
            a.stats().carved_bytes
        );
        a.check_invariants().unwrap();
    }
}
